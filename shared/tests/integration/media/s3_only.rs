//! What only the S3 backend does (a fresh bucket per test in moto at `S3_ENDPOINT`): object
//! headers, and the presigned PUT really working.

use std::time::Duration;

use accounts::media::{new_avatar_key, upload_key, MediaStore, AVATAR_CACHE_CONTROL};
use axum::body::Bytes;
use testkit::s3::fresh_s3;

#[tokio::test]
async fn objects_carry_content_type_and_cache_headers() {
    let media = fresh_s3().await;
    let key = new_avatar_key(1, "jpg");
    media.put(&key, Bytes::from_static(b"jpeg"), "image/jpeg").await.unwrap();
    let client = accounts::media::s3::client(Some(&testkit::s3::endpoint())).await;
    let head = client.head_object().bucket(media.bucket()).key(&key).send().await.unwrap();
    assert_eq!(head.content_type(), Some("image/jpeg"));
    assert_eq!(head.cache_control(), Some(AVATAR_CACHE_CONTROL));
}

#[tokio::test]
async fn a_presigned_put_stores_the_object() {
    let media = fresh_s3().await;
    let key = upload_key(1, "0123456789abcdef0123456789abcdef");
    let target = media.upload_target(&key, 14, Duration::from_secs(300), "http://unused").await.unwrap();
    assert!(target.url.contains("X-Amz-Signature="), "{}", target.url);
    let mut request = reqwest::Client::new().put(&target.url).body(b"uploaded bytes".to_vec());
    for (name, value) in &target.headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{}: {}", response.status(), response.text().await.unwrap());
    assert_eq!(media.size(&key).await.unwrap(), Some(14));
    assert_eq!(media.get(&key).await.unwrap().unwrap().bytes, Bytes::from_static(b"uploaded bytes"));
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable_not_a_bug() {
    testkit::dynamo::fake_aws_environment();
    let client = accounts::media::s3::client(Some("http://127.0.0.1:9")).await;
    let media = accounts::media::s3::S3Media::new(client, "nowhere".into());
    let result = media.get(&new_avatar_key(1, "png")).await;
    assert!(matches!(result, Err(accounts::media::MediaError::Unavailable(_))), "{result:?}");
}
