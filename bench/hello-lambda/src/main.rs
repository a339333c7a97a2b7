//! A minimal `lambda_http` function, built with the same profile as the real ones, so the
//! cold-start benchmark can compare each function with what the runtime alone costs.

use lambda_http::{service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_request: Request| async { Ok::<_, Error>("hello") })).await
}
