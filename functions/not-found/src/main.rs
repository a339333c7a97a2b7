//! The `not-found` Lambda function: the API's catch-all route (`$default`), answering what no
//! endpoint's route takes with the contract's JSON 404 or 405 (see `accounts::http::routes`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), accounts::lambda::Error> {
    accounts::lambda::serve_catch_all().await
}
