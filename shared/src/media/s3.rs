//! Media in an S3 bucket. The bucket is private; CloudFront reads it (origin access control) and
//! serves `/media/...` in the cloud. Objects carry their content type and cache headers, so
//! CloudFront and the app's image cache keep them.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use bytes::Bytes;

use super::{
    check_key, Bounded, MediaEntry, MediaError, MediaObject, MediaResult, MediaStore, UploadTarget,
    AVATAR_CACHE_CONTROL,
};

/// An S3 client from the usual AWS configuration chain, with bounded timeouts. `endpoint` points
/// it at an emulator (moto), with path-style addressing (`http://host/bucket/key`).
pub async fn client(endpoint: Option<&str>) -> Client {
    let timeouts = crate::aws::Timeouts { attempt: Duration::from_secs(5), operation: Duration::from_secs(10) };
    let shared = crate::aws::sdk_config(endpoint, timeouts).await;
    let config = aws_sdk_s3::config::Builder::from(&shared).force_path_style(endpoint.is_some()).build();
    Client::from_conf(config)
}

#[derive(Clone, Debug)]
pub struct S3Media {
    client: Client,
    bucket: String,
}

impl S3Media {
    pub fn new(client: Client, bucket: String) -> Self {
        Self { client, bucket }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Creates the bucket when missing. For tests and local setups: the cloud gets its bucket
    /// (private, encrypted) from `template.yaml`.
    pub async fn create_bucket(&self) -> MediaResult<()> {
        match self.client.create_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.code(), Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")) => Ok(()),
            Err(e) => Err(sdk_error(e)),
        }
    }
}

/// Timeouts and unreachable endpoints are worth a retry; the rest is a bug or a misconfiguration.
fn sdk_error<E: std::error::Error + 'static, R: std::fmt::Debug>(e: SdkError<E, R>) -> MediaError {
    let message = DisplayErrorContext(&e).to_string();
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => MediaError::Unavailable(message),
        _ => MediaError::Backend(message),
    }
}

#[async_trait]
impl MediaStore for S3Media {
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> MediaResult<()> {
        check_key(key)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .cache_control(AVATAR_CACHE_CONTROL)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    async fn get(&self, key: &str) -> MediaResult<Option<MediaObject>> {
        check_key(key)?;
        let output = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(sdk_error(e)),
        };
        let content_type = output.content_type().unwrap_or("application/octet-stream").to_string();
        let body = output.body.collect().await.map_err(|e| MediaError::Unavailable(format!("reading {key}: {e}")))?;
        Ok(Some(MediaObject { bytes: body.into_bytes(), content_type }))
    }

    async fn size(&self, key: &str) -> MediaResult<Option<u64>> {
        check_key(key)?;
        // A listing of the exact key, not HeadObject: without a bucket-wide s3:ListBucket grant
        // S3 answers a HeadObject of a missing key with 403, indistinguishable from a real denial.
        // The key itself sorts first among the keys it prefixes, so one result is enough.
        let page = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(key)
            .max_keys(1)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(page.contents().iter().find(|o| o.key() == Some(key)).map(|o| o.size().unwrap_or(0).max(0) as u64))
    }

    async fn get_at_most(&self, key: &str, max: u64) -> MediaResult<Option<Bounded>> {
        check_key(key)?;
        // One ranged read: its Content-Range names the whole object's size, and S3 sends no more
        // than the range, whatever the object is by then.
        let request = self.client.get_object().bucket(&self.bucket).key(key).range(format!("bytes=0-{max}"));
        let output = match request.send().await {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            // An empty object has no byte 0 to start a range at.
            Err(e) if e.code() == Some("InvalidRange") => {
                return Ok(Some(Bounded::Within(MediaObject { bytes: Bytes::new(), content_type: String::new() })))
            }
            Err(e) => return Err(sdk_error(e)),
        };
        let size = output
            .content_range()
            .and_then(|range| range.rsplit_once('/'))
            .and_then(|(_, total)| total.parse::<u64>().ok())
            .or(output.content_length().map(|n| n.max(0) as u64))
            .unwrap_or(0);
        if size > max {
            return Ok(Some(Bounded::Over { size }));
        }
        let content_type = output.content_type().unwrap_or("application/octet-stream").to_string();
        // Read in chunks and stop past the bound, should an endpoint ignore the range.
        let mut body = output.body;
        let mut bytes = Vec::with_capacity(size as usize);
        while let Some(chunk) =
            body.try_next().await.map_err(|e| MediaError::Unavailable(format!("reading {key}: {e}")))?
        {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > max {
                return Ok(Some(Bounded::Over { size: size.max(bytes.len() as u64) }));
            }
        }
        Ok(Some(Bounded::Within(MediaObject { bytes: Bytes::from(bytes), content_type })))
    }

    async fn delete(&self, key: &str) -> MediaResult<()> {
        check_key(key)?;
        // S3 answers 204 for a missing key too.
        self.client.delete_object().bucket(&self.bucket).key(key).send().await.map_err(sdk_error)?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> MediaResult<Vec<MediaEntry>> {
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(prefix).into_paginator().send();
        let mut entries = Vec::new();
        while let Some(page) = pages.next().await {
            for object in page.map_err(sdk_error)?.contents() {
                let Some(key) = object.key() else { continue };
                entries.push(MediaEntry {
                    key: key.to_string(),
                    size: object.size().unwrap_or(0).max(0) as u64,
                    last_modified: object.last_modified().map_or(0, |t| t.secs()),
                });
            }
        }
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(entries)
    }

    async fn upload_target(&self, key: &str, length: u64, ttl: Duration, _origin: &str) -> MediaResult<UploadTarget> {
        check_key(key)?;
        let presigning = PresigningConfig::expires_in(ttl).map_err(|e| MediaError::Backend(e.to_string()))?;
        let length = i64::try_from(length).map_err(|_| MediaError::Backend(format!("upload length {length}")))?;
        // A signed header: S3 refuses the PUT (403, SignatureDoesNotMatch) with any other length.
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_length(length)
            .presigned(presigning)
            .await
            .map_err(sdk_error)?;
        Ok(UploadTarget {
            url: request.uri().to_string(),
            method: request.method().to_string(),
            headers: request.headers().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        })
    }
}
