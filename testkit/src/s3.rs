//! S3 in tests: the emulator at `S3_ENDPOINT` (moto serves S3 and DynamoDB on one port, so
//! `DYNAMODB_ENDPOINT` is the fallback; `scripts/test` sets both). Without either the tests fail.

use accounts::media::s3::{self, S3Media};

pub fn endpoint() -> String {
    ["S3_ENDPOINT", "DYNAMODB_ENDPOINT"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| {
            panic!("S3_ENDPOINT is not set: the S3 media tests need an emulator. Run `scripts/test`, which starts moto and sets it.")
        })
}

/// An `S3Media` on a new, empty bucket of the emulator.
pub async fn fresh_s3() -> S3Media {
    super::dynamo::fake_aws_environment();
    let client = s3::client(Some(&endpoint())).await;
    let media = S3Media::new(client, format!("t{}", uuid::Uuid::new_v4().simple()));
    media.create_bucket().await.unwrap_or_else(|e| panic!("creating a bucket at {}: {e}", endpoint()));
    media
}
