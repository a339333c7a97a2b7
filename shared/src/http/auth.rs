//! The authentication layer: every route reads an `Authorization: Bearer <access>` header when
//! one is sent (a bad one is a 401 even where no login is needed, as in the old service).

use std::borrow::Cow;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::domain::sessions::{self, Authenticated};
use crate::error::Error;
use crate::http::logging::RequestLine;
use crate::state::AppState;

/// The token of an `Authorization: Bearer <token>` header; `None` when there is no header or
/// another scheme (treated as no credentials, like simplejwt does). Borrowed from the header
/// unless it is not UTF-8 (then read lossily, as before: such a token is invalid anyway).
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<Cow<'_, str>>, Error> {
    let Some(value) = headers.get(AUTHORIZATION) else { return Ok(None) };
    fn token_of(text: &str) -> Result<Option<&str>, Error> {
        let mut parts = text.split_ascii_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some("Bearer"), Some(token), None) => Ok(Some(token)),
            (Some("Bearer"), _, _) => Err(Error::BadAuthorizationHeader),
            _ => Ok(None),
        }
    }
    match std::str::from_utf8(value.as_bytes()) {
        Ok(text) => Ok(token_of(text)?.map(Cow::Borrowed)),
        Err(_) => Ok(token_of(&String::from_utf8_lossy(value.as_bytes()))?.map(|t| Cow::Owned(t.to_string()))),
    }
}

/// Middleware of every API route: resolves the Bearer token (if any) into an [`Authenticated`]
/// request extension, inside the request's log line, so refused credentials are logged too.
/// One layer for both: each `from_fn` layer boxes and clones the route inside it and boxes its
/// future on every request (issue 17, bench/README.md: the reads).
pub async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let line = RequestLine::of(&req);
    let response = authenticated(&state, req, next).await;
    line.log(&response);
    response
}

async fn authenticated(state: &AppState, mut req: Request, next: Next) -> Response {
    let caller = match bearer_token(req.headers()) {
        Ok(None) => None,
        Ok(Some(token)) => match sessions::authenticate(&*state.store, &state.tokens, &token).await {
            Ok(caller) => Some(caller),
            Err(e) => return e.into_response(),
        },
        Err(e) => return e.into_response(),
    };
    if let Some(caller) = caller {
        req.extensions_mut().insert(caller);
    }
    next.run(req).await
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        // Taken, not cloned (a user, a session and claims: about twenty strings): a handler
        // extracts its caller once.
        parts.extensions.remove::<Authenticated>().ok_or(Error::NotAuthenticated)
    }
}
