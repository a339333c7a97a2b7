//! The sessions endpoints: the caller's signed-in devices, ending one, ending all the others;
//! and the device name a login or registration records.

use std::convert::Infallible;

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;

use crate::domain::devices;
use crate::domain::sessions::Authenticated;
use crate::error::Error;
use crate::http::handlers::iso_timestamp;
use crate::http::wire::{SessionInfo, Sessions};
use crate::state::AppState;

/// The client's name for its device: `X-Device-Name`, else `User-Agent`, as sent (the domain
/// cleans it: `devices::device_name`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceName(pub String);

impl<S: Send + Sync> FromRequestParts<S> for DeviceName {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .map(|v| devices::device_name(&String::from_utf8_lossy(v.as_bytes())))
                .filter(|v| !v.is_empty())
        };
        Ok(DeviceName(header("x-device-name").or_else(|| header("user-agent")).unwrap_or_default()))
    }
}

/// `GET /api/auth/sessions/`.
pub(crate) async fn list(State(state): State<AppState>, me: Authenticated) -> Result<Json<Sessions>, Error> {
    let sessions = devices::list(&*state.store, &me).await?;
    Ok(Json(Sessions(
        sessions
            .into_iter()
            .map(|s| SessionInfo {
                current: me.session.as_ref().is_some_and(|mine| mine.id == s.id),
                created_at: iso_timestamp(s.created_at),
                last_used_at: iso_timestamp(s.last_used_at),
                id: s.id,
                device: s.device,
                ip: s.ip,
            })
            .collect(),
    )))
}

/// `DELETE /api/auth/sessions/`: "log out other devices".
pub(crate) async fn end_others(State(state): State<AppState>, me: Authenticated) -> Result<StatusCode, Error> {
    devices::end_others(&*state.store, &me).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/auth/sessions/<id>/`.
pub(crate) async fn end(
    State(state): State<AppState>,
    me: Authenticated,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, Error> {
    let Ok(Path(id)) = id else { return Err(Error::NotFound) };
    devices::end(&*state.store, &me, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
