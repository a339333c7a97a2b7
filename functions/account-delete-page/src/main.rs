//! The `account-delete-page` Lambda function: the account deletion web page (`accounts::http::pages`).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), accounts::lambda::Error> {
    accounts::lambda::serve(accounts::http::Endpoint::AccountDeletePage).await
}
