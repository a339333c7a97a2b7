//! The local server's media routes (the cloud has CloudFront and presigned S3 URLs instead):
//! `GET /media/avatar/...` serves stored avatars with their content type and cache headers, from
//! whichever media store is configured; `PUT /media-upload/<key>?token=...` takes a direct upload
//! granted by `POST /api/accounts/profile/avatar/upload/` (local folder only).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use serde::Deserialize;

use crate::error::Error;
use crate::media::folder::{UploadSigner, UPLOAD_ROUTE};
use crate::media::{is_valid_key, AVATAR_CACHE_CONTROL, AVATAR_PREFIX, UPLOAD_PREFIX};
use crate::state::AppState;

/// How long a direct-upload URL stays usable.
pub const UPLOAD_TTL: Duration = Duration::from_secs(15 * 60);

#[derive(Clone)]
struct MediaRoutes {
    state: AppState,
    signer: UploadSigner,
}

/// The media routes of the local server.
pub fn router(state: AppState) -> Router {
    let limit = state.config.media.avatar_max_bytes;
    let signer = UploadSigner::new(&state.config.jwt_secret);
    Router::new()
        .route("/media/{*key}", get(get_media))
        .route(&format!("{UPLOAD_ROUTE}{{*key}}"), put(put_upload).layer(DefaultBodyLimit::max(limit)))
        .with_state(MediaRoutes { state, signer })
}

async fn get_media(State(routes): State<MediaRoutes>, Path(key): Path<String>) -> Result<Response, Error> {
    // Only stored avatars are public; pending uploads and anything else are not found.
    if !key.starts_with(AVATAR_PREFIX) || !is_valid_key(&key) {
        return Err(Error::NotFound);
    }
    let Some(object) = routes.state.media.get(&key).await? else { return Err(Error::NotFound) };
    let content_type =
        HeaderValue::from_str(&object.content_type).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, HeaderValue::from_static(AVATAR_CACHE_CONTROL)),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        object.bytes,
    )
        .into_response())
}

#[derive(Deserialize)]
struct Grant {
    token: Option<String>,
}

/// Like S3 with a bad signature: 403 unless the token grants exactly this key and this body
/// length (S3 signs the `Content-Length`). The body is read up to the route's bound (413 past it)
/// and must then have the granted length.
async fn put_upload(
    State(routes): State<MediaRoutes>,
    Path(key): Path<String>,
    Query(grant): Query<Grant>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, Error> {
    let granted = if key.starts_with(UPLOAD_PREFIX) && is_valid_key(&key) {
        grant.token.and_then(|token| routes.signer.allowed_length(&token, &key))
    } else {
        None
    };
    let Some(granted) = granted else { return Err(Error::UploadForbidden) };
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
        _ => Error::ParseError(rejection.body_text()),
    })?;
    if body.len() as u64 != granted {
        return Err(Error::UploadForbidden);
    }
    routes.state.media.put(&key, body, "application/octet-stream").await?;
    Ok(StatusCode::OK)
}
