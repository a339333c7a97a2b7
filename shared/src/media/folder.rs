//! Media in a local folder (the embedded default): `<folder>/<key>`, written through a temporary
//! file and a rename so a reader never sees half an object. Direct uploads go to the local
//! server's `PUT /media-upload/<key>?token=...`, the token a short-lived signed grant for that key
//! and one body length (what a presigned S3 PUT with a signed `Content-Length` allows).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{
    check_key, content_type_of, is_valid_key, random_name, Bounded, MediaEntry, MediaError, MediaObject, MediaResult,
    MediaStore, UploadTarget,
};

/// The local server's direct-upload route (the stand-in for a presigned S3 PUT).
pub const UPLOAD_ROUTE: &str = "/media-upload/";

/// Signs and checks local upload grants. The key is derived from the service's signing key with
/// a label, so a grant is never an access token and no access token is ever a grant.
#[derive(Clone)]
pub struct UploadSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

#[derive(Debug, Serialize, Deserialize)]
struct Grant {
    /// The one key the grant allows writing.
    key: String,
    /// The one body length it allows.
    len: u64,
    aud: String,
    exp: u64,
}

const GRANT_AUDIENCE: &str = "media-upload";

impl UploadSigner {
    pub fn new(secret: &[u8]) -> Self {
        crate::jwt_crypto::install();
        let mut key = b"accounts media-upload grant\0".to_vec();
        key.extend_from_slice(secret);
        Self { encoding: EncodingKey::from_secret(&key), decoding: DecodingKey::from_secret(&key) }
    }

    pub fn sign(&self, key: &str, length: u64, ttl: Duration) -> MediaResult<String> {
        let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() + ttl.as_secs();
        let grant = Grant { key: key.to_string(), len: length, aud: GRANT_AUDIENCE.into(), exp };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &grant, &self.encoding)
            .map_err(|e| MediaError::Backend(format!("signing an upload grant: {e}")))
    }

    /// The body length `token` grants for `key`: `None` unless it is a live grant for exactly `key`.
    pub fn allowed_length(&self, token: &str, key: &str) -> Option<u64> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[GRANT_AUDIENCE]);
        validation.leeway = 0;
        let grant = jsonwebtoken::decode::<Grant>(token, &self.decoding, &validation).ok()?.claims;
        (grant.key == key).then_some(grant.len)
    }
}

pub struct FolderMedia {
    root: PathBuf,
    signer: UploadSigner,
}

impl FolderMedia {
    /// Media under `root`, created at the first write (so a function that never writes media
    /// starts on a read-only file system); upload grants signed with `secret`.
    pub fn new(root: &Path, secret: &[u8]) -> Self {
        Self { root: root.to_path_buf(), signer: UploadSigner::new(secret) }
    }

    fn path(&self, key: &str) -> MediaResult<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

/// File system calls block: run them beside the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> MediaResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| MediaError::Backend(format!("blocking task failed: {e}")))?
        .map_err(|e| MediaError::Backend(e.to_string()))
}

fn missing_is_none<T>(result: std::io::Result<T>) -> std::io::Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every file under `dir`, as keys relative to `root`.
fn walk(root: &Path, dir: &Path, out: &mut Vec<MediaEntry>) -> std::io::Result<()> {
    let Some(entries) = missing_is_none(std::fs::read_dir(dir))? else { return Ok(()) };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let meta = entry.metadata()?;
        if meta.is_dir() {
            walk(root, &path, out)?;
        } else if let Ok(relative) = path.strip_prefix(root) {
            let key = relative.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/");
            // Temporary files of a write in progress (dot names) are no objects.
            if is_valid_key(&key) {
                let modified = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok());
                out.push(MediaEntry {
                    key,
                    size: meta.len(),
                    last_modified: modified.map_or(0, |d| d.as_secs() as i64),
                });
            }
        }
    }
    Ok(())
}

#[async_trait]
impl MediaStore for FolderMedia {
    async fn put(&self, key: &str, bytes: Bytes, _content_type: &str) -> MediaResult<()> {
        // The folder keeps no metadata: the content type comes back from the key's extension.
        let path = self.path(key)?;
        blocking(move || {
            let dir = path.parent().expect("a key has a folder");
            std::fs::create_dir_all(dir)?;
            let temporary = dir.join(format!(".tmp-{}", random_name()));
            std::fs::write(&temporary, &bytes)?;
            std::fs::rename(&temporary, &path).inspect_err(|_| {
                let _ = std::fs::remove_file(&temporary);
            })
        })
        .await
    }

    async fn get(&self, key: &str) -> MediaResult<Option<MediaObject>> {
        let path = self.path(key)?;
        let content_type = content_type_of(key).to_string();
        let bytes = blocking(move || missing_is_none(std::fs::read(&path))).await?;
        Ok(bytes.map(|bytes| MediaObject { bytes: Bytes::from(bytes), content_type }))
    }

    async fn size(&self, key: &str) -> MediaResult<Option<u64>> {
        let path = self.path(key)?;
        blocking(move || missing_is_none(std::fs::metadata(&path)).map(|m| m.filter(|m| m.is_file()).map(|m| m.len())))
            .await
    }

    async fn get_at_most(&self, key: &str, max: u64) -> MediaResult<Option<Bounded>> {
        let path = self.path(key)?;
        let content_type = content_type_of(key).to_string();
        blocking(move || {
            let Some(file) = missing_is_none(std::fs::File::open(&path))? else { return Ok(None) };
            let size = file.metadata()?.len();
            if size > max {
                return Ok(Some(Bounded::Over { size }));
            }
            // The file may have grown since: read one byte past the bound at most.
            let mut bytes = Vec::with_capacity(size as usize);
            file.take(max + 1).read_to_end(&mut bytes)?;
            Ok(Some(if bytes.len() as u64 > max {
                Bounded::Over { size: bytes.len() as u64 }
            } else {
                Bounded::Within(MediaObject { bytes: Bytes::from(bytes), content_type })
            }))
        })
        .await
    }

    async fn delete(&self, key: &str) -> MediaResult<()> {
        let path = self.path(key)?;
        blocking(move || missing_is_none(std::fs::remove_file(&path)).map(|_| ())).await
    }

    async fn list(&self, prefix: &str) -> MediaResult<Vec<MediaEntry>> {
        let root = self.root.clone();
        // Walk only the deepest folder the prefix names.
        let folder = prefix.rsplit_once('/').map_or(String::new(), |(dir, _)| dir.to_string());
        if !folder.is_empty() {
            check_key(&folder)?;
        }
        let prefix = prefix.to_string();
        let mut entries = blocking(move || {
            let mut out = Vec::new();
            walk(&root, &root.join(&folder), &mut out)?;
            Ok(out)
        })
        .await?;
        entries.retain(|e| e.key.starts_with(&prefix));
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(entries)
    }

    async fn upload_target(&self, key: &str, length: u64, ttl: Duration, origin: &str) -> MediaResult<UploadTarget> {
        check_key(key)?;
        let token = self.signer.sign(key, length, ttl)?;
        Ok(UploadTarget {
            url: format!("{origin}{UPLOAD_ROUTE}{key}?token={token}"),
            method: "PUT".into(),
            headers: vec![("content-length".into(), length.to_string())],
        })
    }
}
