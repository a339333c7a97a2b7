//! What only the local media folder does: files under the folder, signed upload grants.

use std::time::Duration;

use accounts::media::folder::{FolderMedia, UploadSigner};
use accounts::media::{upload_key, MediaStore};
use axum::body::Bytes;

const SECRET: &[u8] = b"media-folder-tests-secret-0123456789";

pub(super) fn fresh_folder() -> (FolderMedia, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap().keep();
    (FolderMedia::new(&dir.join("media"), SECRET), dir)
}

#[tokio::test]
async fn objects_are_files_under_the_folder_and_temporary_files_are_not_listed() {
    let (media, dir) = fresh_folder();
    media.put("avatar/1/a.png", Bytes::from_static(b"png"), "image/png").await.unwrap();
    assert_eq!(std::fs::read(dir.join("media/avatar/1/a.png")).unwrap(), b"png");
    // What a crashed write leaves behind is no object.
    std::fs::write(dir.join("media/avatar/1/.tmp-123"), b"half").unwrap();
    let keys: Vec<String> = media.list("avatar/").await.unwrap().into_iter().map(|e| e.key).collect();
    assert_eq!(keys, ["avatar/1/a.png"]);
    // The folder appears at the first write, not before (functions may start read-only).
    let (lazy, lazy_dir) = fresh_folder();
    assert!(!lazy_dir.join("media").exists());
    assert_eq!(lazy.list("avatar/").await.unwrap(), vec![]);
}

#[tokio::test]
async fn upload_grants_allow_exactly_their_key_and_length_until_they_expire() {
    let (media, _dir) = fresh_folder();
    let key = upload_key(1, "0123456789abcdef0123456789abcdef");
    let target = media.upload_target(&key, 1234, Duration::from_secs(60), "http://localhost:8000").await.unwrap();
    assert_eq!(target.headers, [("content-length".to_string(), "1234".to_string())]);
    let (path, token) = target.url.split_once("?token=").unwrap();
    assert_eq!(path, format!("http://localhost:8000/media-upload/{key}"));
    let signer = UploadSigner::new(SECRET);
    assert_eq!(signer.allowed_length(token, &key), Some(1234));
    assert_eq!(signer.allowed_length(token, &upload_key(2, "0123456789abcdef0123456789abcdef")), None, "another key");
    assert_eq!(
        UploadSigner::new(b"another-secret-another-secret-0123").allowed_length(token, &key),
        None,
        "another secret"
    );
    let expired = signer.sign(&key, 1234, Duration::ZERO).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(signer.allowed_length(&expired, &key), None, "expired");
}
