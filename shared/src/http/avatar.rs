//! The direct avatar upload: `POST .../avatar/upload/` grants a URL to `PUT` the file at (a
//! presigned S3 URL, or the local server's equivalent), `POST .../avatar/confirm/` checks and
//! processes the uploaded file and points the profile at it (the answer is the profile).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Map, Value};

use crate::domain::accounts::Authenticated;
use crate::domain::avatars;
use crate::error::Error;
use crate::http::body::Payload;
use crate::http::handlers::{profile, request_origin};
use crate::media::serve::UPLOAD_TTL;
use crate::state::AppState;

pub async fn avatar_upload(State(state): State<AppState>, me: Authenticated, headers: HeaderMap) -> Result<Json<Value>, Error> {
    let bounds = (&state.config.media).into();
    let upload =
        avatars::start_direct_upload(&*state.media, bounds, &me.user, UPLOAD_TTL, &request_origin(&headers)).await?;
    let upload_headers: Map<String, Value> =
        upload.target.headers.into_iter().map(|(name, value)| (name, Value::String(value))).collect();
    Ok(Json(json!({
        "upload_id": upload.upload_id,
        "upload_url": upload.target.url,
        "method": upload.target.method,
        "headers": upload_headers,
        "expires_in": upload.expires_in.as_secs(),
        "max_bytes": upload.max_bytes,
    })))
}

pub async fn avatar_confirm(
    State(state): State<AppState>,
    me: Authenticated,
    headers: HeaderMap,
    payload: Payload,
) -> Result<Json<Value>, Error> {
    let bounds = (&state.config.media).into();
    let user = avatars::confirm_direct_upload(&*state.store, &*state.media, bounds, &me.user, &payload.data).await?;
    Ok(Json(profile(&state, &user, &headers)))
}
