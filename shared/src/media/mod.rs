//! Media (avatar) storage behind one trait, with two backends: [`folder`] (a local folder, the
//! embedded default) and [`s3`] (a bucket; CloudFront serves it in the cloud). [`picture`] turns an
//! uploaded file into a safe, bounded image, [`gate`] bounds that work per process; [`serve`] is the local server's `/media/...`.
//!
//! Keys are made by the server, never taken from a client: `avatar/<user id>/<random>.<ext>` for
//! stored avatars and `avatar-uploads/<user id>/<upload id>` for direct uploads awaiting their
//! confirmation.

pub mod folder;
pub mod gate;
pub mod picture;
#[cfg(feature = "s3")]
pub mod s3;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

/// Prefix of stored avatars (what the profile points at; public through the media URL).
pub const AVATAR_PREFIX: &str = "avatar/";
/// Prefix of direct uploads waiting for their confirmation (never served; expired by lifecycle).
pub const UPLOAD_PREFIX: &str = "avatar-uploads/";
/// Avatars never change under a key (each upload gets a new one), so caches may keep them.
pub const AVATAR_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The backend did not answer in time: worth retrying.
    #[error("media storage unavailable: {0}")]
    Unavailable(String),
    #[error("media storage error: {0}")]
    Backend(String),
    /// A key that is not one the server makes (`..`, empty segments, odd characters).
    #[error("invalid media key {0:?}")]
    InvalidKey(String),
}

pub type MediaResult<T> = Result<T, MediaError>;

/// A stored object, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaObject {
    pub bytes: Bytes,
    pub content_type: String,
}

/// An object read up to a bound: its bytes when it is within it, else only its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bounded {
    Within(MediaObject),
    Over { size: u64 },
}

/// A listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaEntry {
    pub key: String,
    pub size: u64,
    /// Unix seconds.
    pub last_modified: i64,
}

/// Where and how a client sends a direct upload: `method url` with `headers`, the file as body;
/// the grant holds only for a body of exactly the length it was made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadTarget {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
}

#[async_trait]
pub trait MediaStore: Send + Sync {
    /// Writes (or replaces) an object with its content type and the avatar cache headers.
    async fn put(&self, key: &str, bytes: Bytes, content_type: &str) -> MediaResult<()>;

    /// The object, or `None` when there is none.
    async fn get(&self, key: &str) -> MediaResult<Option<MediaObject>>;

    /// The object's size without reading it.
    async fn size(&self, key: &str) -> MediaResult<Option<u64>>;

    /// The object when it has at most `max` bytes, else its size, reading no more than `max + 1`
    /// bytes either way (one read, so an object replaced meanwhile cannot make it read more).
    async fn get_at_most(&self, key: &str, max: u64) -> MediaResult<Option<Bounded>>;

    /// Deletes the object; a missing one is not an error.
    async fn delete(&self, key: &str) -> MediaResult<()>;

    /// Every object whose key starts with `prefix`, in key order.
    async fn list(&self, prefix: &str) -> MediaResult<Vec<MediaEntry>>;

    /// A URL the client may `PUT` exactly `length` bytes to for `ttl`, without other credentials
    /// (S3: `Content-Length` is a signed header). `origin` (`scheme://host` of the current request)
    /// is where a local server answers.
    async fn upload_target(&self, key: &str, length: u64, ttl: Duration, origin: &str) -> MediaResult<UploadTarget>;
}

pub type SharedMedia = Arc<dyn MediaStore>;

/// Whether `key` is one the server could have made: `/`-separated segments of ASCII letters,
/// digits, `-`, `_` and `.`, none empty or starting with a dot (so no `..`, no hidden files).
pub fn is_valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 512
        && key.split('/').all(|segment| {
            !segment.is_empty()
                && !segment.starts_with('.')
                && segment.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

pub(crate) fn check_key(key: &str) -> MediaResult<()> {
    if is_valid_key(key) {
        Ok(())
    } else {
        Err(MediaError::InvalidKey(key.to_string()))
    }
}

/// 32 hex digits from the OS random source: unguessable names and upload ids.
pub fn random_name() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A fresh key for a user's avatar: `avatar/<user id>/<random>.<extension>`.
pub fn new_avatar_key(user_id: u64, extension: &str) -> String {
    format!("{AVATAR_PREFIX}{user_id}/{}.{extension}", random_name())
}

/// The folder of a user's avatars (what the orphan sweep lists).
pub fn avatar_prefix_of(user_id: u64) -> String {
    format!("{AVATAR_PREFIX}{user_id}/")
}

/// Where a direct upload of `user_id` waits for its confirmation.
pub fn upload_key(user_id: u64, upload_id: &str) -> String {
    format!("{UPLOAD_PREFIX}{user_id}/{upload_id}")
}

/// The content type of a key, from its extension (what the folder backend serves).
pub fn content_type_of(key: &str) -> &'static str {
    match key.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()).as_deref() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        _ => "application/octet-stream",
    }
}

/// The absolute URL of a media key: under `base_url` when configured, else under the request's
/// own origin (`scheme://host`), at `/media/<key>`.
pub fn media_url(base_url: Option<&str>, origin: &str, key: &str) -> String {
    match base_url {
        Some(base) => format!("{base}{key}"),
        None => format!("{origin}/media/{key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_the_server_makes_are_valid_and_traversal_is_not() {
        assert!(is_valid_key(&new_avatar_key(7, "png")));
        assert!(is_valid_key(&upload_key(7, &random_name())));
        for bad in [
            "",
            "../etc/passwd",
            "avatar/../x",
            "avatar//x",
            "/avatar/x",
            "avatar/.hidden",
            "a\\b",
            "avatar/x y",
            "avatar/é",
        ] {
            assert!(!is_valid_key(bad), "{bad:?}");
        }
    }

    #[test]
    fn urls_and_content_types() {
        assert_eq!(media_url(None, "http://h:8000", "avatar/1/a.png"), "http://h:8000/media/avatar/1/a.png");
        assert_eq!(
            media_url(Some("https://cdn.x/media/"), "http://h", "avatar/1/a.png"),
            "https://cdn.x/media/avatar/1/a.png"
        );
        assert_eq!(content_type_of("avatar/1/a.JPG"), "image/jpeg");
        assert_eq!(content_type_of("avatar-uploads/1/abc"), "application/octet-stream");
    }
}
