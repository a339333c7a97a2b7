//! The direct avatar upload: `POST .../avatar/upload/` with the file's `size` grants a URL to `PUT`
//! exactly that many bytes at (a presigned S3 URL with a signed `Content-Length`, or the local
//! server's equivalent), `POST .../avatar/confirm/` checks and
//! processes the uploaded file and points the profile at it (the answer is the profile).

use axum::extract::State;
use axum::Json;

use crate::domain::avatars;
use crate::domain::sessions::Authenticated;
use crate::error::Error;
use crate::http::body::Payload;
use crate::http::handlers::{profile, Origin};
use crate::http::media::UPLOAD_TTL;
use crate::http::wire;
use crate::state::AppState;

/// The client must send exactly `size` bytes (the declared one) with every header of `headers`
/// (`content-length` among them): the URL is signed for that length.
pub(crate) async fn avatar_upload(
    State(state): State<AppState>,
    me: Authenticated,
    origin: Origin,
    payload: Payload,
) -> Result<Json<wire::DirectUpload>, Error> {
    let bounds = (&state.config.media).into();
    let origin = origin.url();
    let upload =
        avatars::start_direct_upload(&*state.media, bounds, &me.user, &payload.data, UPLOAD_TTL, &origin).await?;
    Ok(Json(wire::DirectUpload {
        upload_id: upload.upload_id,
        upload_url: upload.target.url,
        method: upload.target.method,
        headers: upload.target.headers,
        expires_in: upload.expires_in.as_secs(),
        max_bytes: upload.max_bytes as u64,
        size: upload.size,
    }))
}

pub(crate) async fn avatar_confirm(
    State(state): State<AppState>,
    me: Authenticated,
    origin: Origin,
    payload: Payload,
) -> Result<Json<wire::Profile>, Error> {
    let bounds = (&state.config.media).into();
    let user = avatars::confirm_direct_upload(&*state.store, &*state.media, bounds, &me.user, &payload.data).await?;
    Ok(Json(profile(&state, user, &origin)))
}
