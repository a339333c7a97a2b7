//! The authentication layer: every route reads an `Authorization: Bearer <access>` header when
//! one is sent (a bad one is a 401 even where no login is needed, as in the old service).

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::domain::sessions::{self, Authenticated};
use crate::error::Error;
use crate::http::logging::RequestLine;
use crate::state::AppState;
use tower::{Layer, Service};

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

/// The layer of every API route: resolves the Bearer token (if any) into an [`Authenticated`]
/// request extension, inside the request's log line, so refused credentials are logged too.
///
/// One tower layer for both, rather than two `middleware::from_fn`s: each `from_fn` boxes and
/// clones the route inside it and boxes its future again on every request (issue 17,
/// bench/README.md: the reads).
#[derive(Clone)]
pub(crate) struct AuthenticationLayer(pub(crate) AppState);

impl<S> Layer<S> for AuthenticationLayer {
    type Service = Authentication<S>;

    fn layer(&self, inner: S) -> Authentication<S> {
        Authentication { inner, state: self.0.clone() }
    }
}

/// The service of [`AuthenticationLayer`].
#[derive(Clone)]
pub(crate) struct Authentication<S> {
    inner: S,
    state: AppState,
}

impl<S> Service<Request> for Authentication<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The service that was polled ready answers; a clone stays for the next request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move {
            let line = RequestLine::of(&req);
            let response = authenticated(&state, req, inner).await;
            line.log(&response);
            Ok(response)
        })
    }
}

/// `inner`'s answer (it was polled ready) with the caller in the request, or the refusal.
async fn authenticated<S>(state: &AppState, mut req: Request, mut inner: S) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
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
    let Ok(response) = inner.call(req).await;
    response
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        // Taken, not cloned (a user, a session and claims: about twenty strings): a handler
        // extracts its caller once.
        parts.extensions.remove::<Authenticated>().ok_or(Error::NotAuthenticated)
    }
}
