//! DynamoDB in tests: the emulator at `DYNAMODB_ENDPOINT` (moto; `scripts/test` starts it and
//! sets the variable) and stores on fresh tables. Without the variable the tests fail: a skipped
//! backend must never look like a passing one.

use std::sync::Once;

use accounts::config::DynamoTables;
use accounts::store::dynamodb::{self, DynamoStore};

pub fn endpoint() -> String {
    match std::env::var("DYNAMODB_ENDPOINT") {
        Ok(endpoint) if !endpoint.trim().is_empty() => endpoint,
        _ => panic!(
            "DYNAMODB_ENDPOINT is not set: the DynamoDB store tests need an emulator. \
             Run `scripts/test`, which starts moto and sets it (or start `moto_server -p 5055` \
             yourself and set DYNAMODB_ENDPOINT=http://127.0.0.1:5055)."
        ),
    }
}

/// Fake credentials and region for the emulator, unless the environment has its own. Set once,
/// before any client is built, so no thread reads the environment while it changes.
pub fn fake_aws_environment() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (name, value) in [
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
        ] {
            if std::env::var_os(name).is_none() {
                std::env::set_var(name, value);
            }
        }
    });
}

pub fn unique_tables() -> DynamoTables {
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    DynamoTables {
        users: format!("{prefix}-users"),
        sessions: format!("{prefix}-sessions"),
        blacklist: format!("{prefix}-blacklist"),
    }
}

pub async fn fresh_client() -> aws_sdk_dynamodb::Client {
    let endpoint = endpoint();
    fake_aws_environment();
    dynamodb::client(Some(&endpoint)).await
}

/// A `DynamoStore` on three new, empty tables; also the raw client, to look behind its back.
pub async fn fresh_dynamo() -> (DynamoStore, aws_sdk_dynamodb::Client) {
    let client = fresh_client().await;
    let store = DynamoStore::new(client.clone(), unique_tables());
    store
        .create_tables()
        .await
        .unwrap_or_else(|e| panic!("creating tables at {}: {e}", endpoint()));
    (store, client)
}

