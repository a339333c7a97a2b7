//! Avatars: the profile update that carries a file (multipart), and the direct upload for large
//! files and slow networks (a presigned PUT, then a confirmation).
//!
//! Order of writes, so the profile never points at a missing object: the new object first, then
//! the profile, then the old object is deleted. A failure after the profile write only leaves
//! garbage, which the per-user sweep removes at the user's next avatar change.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use crate::domain::fields::{Data, FieldErrors, FieldKind};
use crate::domain::model::{User, UserUpdate};
use crate::domain::requests;
use crate::domain::{now, profile};
use crate::error::Error;
use crate::media::gate;
use crate::media::picture::{self, AvatarBounds, Picture, PictureProblem};
use crate::media::{avatar_prefix_of, new_avatar_key, random_name, upload_key, Bounded, MediaStore, UploadTarget};
use crate::store::Store;

type Result<T> = std::result::Result<T, Error>;

/// Objects of a user's avatar folder that the profile does not point at are deleted once they
/// are this old: younger ones may belong to an upload still on its way to the profile.
pub const ORPHAN_GRACE_SECONDS: i64 = 3600;
pub const UNKNOWN_UPLOAD: &str = "No uploaded file is waiting under this upload id.";

/// `PUT|PATCH /api/accounts/profile/`: the text fields, `avatar: null`, and an avatar file when
/// the multipart body has one. Every failing field is reported together; nothing is written then.
pub async fn update_profile(
    store: &dyn Store,
    media: &dyn MediaStore,
    bounds: AvatarBounds,
    me: &User,
    data: &Data,
    file: Option<Bytes>,
) -> Result<User> {
    let mut errors = FieldErrors::new();
    let mut update = if file.is_some() {
        // The file part is the avatar; a text part of the same name does not count.
        let mut data = data.clone();
        data.remove(requests::profile::AVATAR.name);
        profile::read_profile_fields(&data, &mut errors)
    } else {
        profile::read_profile_fields(data, &mut errors)
    };
    let picture = match file {
        None => None,
        Some(bytes) => match process(bytes, bounds).await? {
            Ok(picture) => Some(picture),
            Err(problem) => {
                errors.add(requests::profile::AVATAR.name, problem.message());
                None
            }
        },
    };
    errors.into_result()?;
    if let Some(picture) = picture {
        update.avatar = Some(Some(store_picture(media, me.id, picture).await?));
    }
    point_profile(store, media, me, update).await
}

/// Decoding and encoding are CPU-bound and take memory in proportion to the pixels: beside the
/// async runtime, and under the process's image gate (one job per CPU, within a memory budget),
/// weighed from the image's header first. A job that does not get in within the gate's wait is
/// a 503.
async fn process(bytes: Bytes, bounds: AvatarBounds) -> Result<std::result::Result<Picture, PictureProblem>> {
    let (bytes, cost) = blocking(move || {
        let cost = picture::cost(&bytes, bounds);
        (bytes, cost)
    })
    .await?;
    let cost = match cost {
        Ok(cost) => cost,
        Err(problem) => return Ok(Err(problem)),
    };
    match gate::images().run(cost, gate::MAX_WAIT, move || picture::process(&bytes, bounds)).await {
        Some(done) => done.map_err(|e| Error::Internal(format!("image task failed: {e}"))),
        None => Err(Error::Unavailable(format!("image work: no turn within {:?}", gate::MAX_WAIT))),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Internal(format!("image task failed: {e}")))
}

async fn store_picture(media: &dyn MediaStore, user_id: u64, picture: Picture) -> Result<String> {
    let key = new_avatar_key(user_id, picture.extension);
    media.put(&key, Bytes::from(picture.bytes), picture.content_type).await?;
    Ok(key)
}

/// Writes the profile; then (avatar changes only) deletes the previous object and sweeps.
async fn point_profile(store: &dyn Store, media: &dyn MediaStore, me: &User, update: UserUpdate) -> Result<User> {
    let new_key = update.avatar.clone().flatten();
    let user = match profile::apply_update(store, me, update.clone()).await {
        Ok(user) => user,
        Err(e) => {
            if let Some(key) = new_key {
                // Never referenced: safe to remove at once.
                delete_logged(media, &key).await;
            }
            return Err(e);
        }
    };
    if update.avatar.is_some() {
        if let Some(old) = me.avatar.as_deref().filter(|old| *old != user.avatar.as_deref().unwrap_or_default()) {
            delete_logged(media, old).await;
        }
        if let Err(e) = sweep_orphans(media, me.id, user.avatar.as_deref(), now()).await {
            tracing::warn!(user_id = me.id, error = %e, "avatar sweep failed");
        }
    }
    Ok(user)
}

async fn delete_logged(media: &dyn MediaStore, key: &str) {
    if let Err(e) = media.delete(key).await {
        tracing::warn!(key, error = %e, "avatar object not deleted: left for the sweep");
    }
}

/// Deletes the objects of the user's avatar folder other than `keep` that are older than the
/// grace period (left by a failed delete or by concurrent replacements). Returns how many went.
pub async fn sweep_orphans(
    media: &dyn MediaStore,
    user_id: u64,
    keep: Option<&str>,
    now: i64,
) -> crate::media::MediaResult<u64> {
    let mut deleted = 0;
    for entry in media.list(&avatar_prefix_of(user_id)).await? {
        if Some(entry.key.as_str()) != keep && entry.last_modified < now - ORPHAN_GRACE_SECONDS {
            media.delete(&entry.key).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

pub const NOT_AN_INTEGER: &str = "A valid integer is required.";

/// A direct upload granted to a client: `PUT` the file (of exactly the declared size) to
/// `target`, then confirm `upload_id`.
#[derive(Debug, Clone)]
pub struct DirectUpload {
    pub upload_id: String,
    pub target: UploadTarget,
    pub expires_in: Duration,
    pub max_bytes: usize,
    /// The declared file size: the only body length the target takes.
    pub size: u64,
}

/// `POST /api/accounts/profile/avatar/upload/` with `{"size": <bytes>}`: a URL to put a file of
/// exactly that many bytes at (1 to the avatar bound), valid for `ttl`. The grant binds the length
/// (a signed `Content-Length`), so no larger object can be put through it.
pub async fn start_direct_upload(
    media: &dyn MediaStore,
    bounds: AvatarBounds,
    me: &User,
    data: &Data,
    ttl: Duration,
    origin: &str,
) -> Result<DirectUpload> {
    let size = read_size(data, bounds.max_bytes as u64)?;
    let upload_id = random_name();
    let target = media.upload_target(&upload_key(me.id, &upload_id), size, ttl, origin).await?;
    Ok(DirectUpload { upload_id, target, expires_in: ttl, max_bytes: bounds.max_bytes, size })
}

/// The declared file size, as DRF's `IntegerField(min_value=1, max_value=max)` reads it.
fn read_size(data: &Data, max: u64) -> Result<u64> {
    let field = requests::avatar_upload::SIZE;
    let FieldKind::Integer { min } = field.kind else { unreachable!("size is an integer field") };
    let size = match data.get(field.name) {
        None => return Err(Error::field(field.name, crate::domain::fields::REQUIRED)),
        Some(Value::Null) => return Err(Error::field(field.name, crate::domain::fields::NULL)),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(_) => None,
    };
    let Some(size) = size else { return Err(Error::field(field.name, NOT_AN_INTEGER)) };
    if size < min {
        return Err(Error::field(field.name, format!("Ensure this value is greater than or equal to {min}.")));
    }
    if size as u64 > max {
        return Err(Error::field(field.name, format!("Ensure this value is less than or equal to {max}.")));
    }
    Ok(size as u64)
}

/// `POST /api/accounts/profile/avatar/confirm/`: takes the uploaded file of `upload_id` through the
/// same checks and processing as a multipart upload, points the profile at the result and drops
/// the upload. A refused file is dropped too (the client starts a new upload).
pub async fn confirm_direct_upload(
    store: &dyn Store,
    media: &dyn MediaStore,
    bounds: AvatarBounds,
    me: &User,
    data: &Data,
) -> Result<User> {
    let mut errors = FieldErrors::new();
    let upload_id = requests::avatar_confirm::UPLOAD_ID.read(data, &mut errors);
    errors.into_result()?;
    let upload_id = upload_id.unwrap_or_default();
    let is_id = upload_id.len() == 32 && upload_id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !is_id {
        return Err(Error::field(requests::avatar_confirm::UPLOAD_ID.name, UNKNOWN_UPLOAD));
    }
    let staged = upload_key(me.id, &upload_id);
    // One bounded read: an oversized upload is refused without being read, also one swapped in
    // after any earlier look at it.
    let Some(object) = media.get_at_most(&staged, bounds.max_bytes as u64).await? else {
        return Err(Error::field(requests::avatar_confirm::UPLOAD_ID.name, UNKNOWN_UPLOAD));
    };
    let picture = match object {
        Bounded::Over { size } => {
            Err(PictureProblem::TooLarge { size: usize::try_from(size).unwrap_or(usize::MAX), max: bounds.max_bytes })
        }
        Bounded::Within(object) => process(object.bytes, bounds).await?,
    };
    let result = match picture {
        Err(problem) => Err(Error::field(requests::profile::AVATAR.name, problem.message())),
        Ok(picture) => {
            let key = store_picture(media, me.id, picture).await?;
            point_profile(store, media, me, UserUpdate { avatar: Some(Some(key)), ..Default::default() }).await
        }
    };
    if !matches!(&result, Err(Error::Unavailable(_)) | Err(Error::Internal(_))) {
        delete_logged(media, &staged).await;
    }
    result
}
