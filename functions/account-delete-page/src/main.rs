//! The `account-delete-page` Lambda function: the account deletion web page (`accounts::http::pages`).

#[tokio::main]
async fn main() -> Result<(), accounts::lambda::Error> {
    accounts::lambda::serve(accounts::http::Endpoint::AccountDeletePage).await
}
