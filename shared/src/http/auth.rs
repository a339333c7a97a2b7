//! The authentication layer: every route reads an `Authorization: Bearer <access>` header when
//! one is sent (a bad one is a 401 even where no login is needed, as in the old service).

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::domain::sessions::{self, Authenticated};
use crate::error::Error;
use crate::state::AppState;

/// The token of an `Authorization: Bearer <token>` header; `None` when there is no header or
/// another scheme (treated as no credentials, like simplejwt does).
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<String>, Error> {
    let Some(value) = headers.get(AUTHORIZATION) else { return Ok(None) };
    let text = String::from_utf8_lossy(value.as_bytes());
    let mut parts = text.split_ascii_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some("Bearer"), Some(token), None) => Ok(Some(token.to_string())),
        (Some("Bearer"), _, _) => Err(Error::BadAuthorizationHeader),
        _ => Ok(None),
    }
}

/// Middleware: resolves the Bearer token (if any) into an [`Authenticated`] request extension.
pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    match bearer_token(req.headers()) {
        Ok(None) => {}
        Ok(Some(token)) => match sessions::authenticate(&*state.store, &state.tokens, &token).await {
            Ok(caller) => {
                req.extensions_mut().insert(caller);
            }
            Err(e) => return e.into_response(),
        },
        Err(e) => return e.into_response(),
    }
    next.run(req).await
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        parts.extensions.get::<Authenticated>().cloned().ok_or(Error::NotAuthenticated)
    }
}
