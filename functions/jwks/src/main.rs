//! The `jwks` Lambda function: one endpoint of the account API (see `accounts::http::routes`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), accounts::lambda::Error> {
    accounts::lambda::serve(accounts::http::Endpoint::Jwks).await
}
