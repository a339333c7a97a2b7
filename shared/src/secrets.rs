//! The signing keys from AWS Secrets Manager: one `GetSecretValue` of the secret `JWT_SECRET_ID`
//! names, at start (a Lambda's cold start), through the shared SDK configuration
//! (`crate::aws`). The value never goes to an environment variable or a log line.
//!
//! Why Secrets Manager and not an SSM SecureString: the key set is JSON that an operator edits
//! as a whole (`put-secret-value`), every version is kept with its staging labels
//! (`AWSCURRENT`, `AWSPREVIOUS`: a bad edit is undone by moving the label back), the IAM grant
//! is one action on one resource (a SecureString also needs `kms:Decrypt`), and the deploy guide
//! has always created the key there.

use std::time::Duration;

use aws_sdk_secretsmanager::error::DisplayErrorContext;
pub use aws_sdk_secretsmanager::Client;

/// A Secrets Manager client; `endpoint` points it at an emulator (moto).
pub async fn client(endpoint: Option<&str>) -> Client {
    // Read once per cold start, before the first answer: short, like the other clients.
    let timeouts = crate::aws::Timeouts { attempt: Duration::from_secs(2), operation: Duration::from_secs(5) };
    Client::new(&crate::aws::sdk_config(endpoint, timeouts).await)
}

/// The `SecretString` of the secret's current version.
pub async fn secret_string(secret_id: &str, endpoint: Option<&str>) -> Result<String, String> {
    read(&client(endpoint).await, secret_id).await
}

/// The `SecretString` of `secret_id` with `client` (the tests record its calls).
pub async fn read(client: &Client, secret_id: &str) -> Result<String, String> {
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        // The SDK's error names the operation, the service's code and message, never the value.
        .map_err(|e| format!("reading secret {secret_id:?}: {}", DisplayErrorContext(&e)))?;
    output.secret_string.ok_or_else(|| format!("secret {secret_id:?} has no SecretString (a binary secret?)"))
}
