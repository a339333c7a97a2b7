//! The handlers: parse, call the domain, answer the contract's bodies (`wire.rs`).

use axum::extract::FromRequestParts;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::Json;
use chrono::{TimeZone, Utc};
use serde_json::Value;

use crate::domain::model::User;
use crate::domain::requests;
use crate::domain::sessions::{self, Authenticated, MissingRefresh};
use crate::domain::tokens::TokenPair;
use crate::domain::{login, profile, registration};
use crate::error::Error;
use crate::http::body::Payload;
use crate::http::client_ip::ClientIp;
use crate::http::devices::DeviceName;
use crate::http::wire::{self, Jwt, Message, UserDetails};
use crate::state::AppState;

type JsonResult<T> = Result<Json<T>, Error>;

/// The profile; `avatar` an absolute URL (under `MEDIA_BASE_URL`, else under the request's
/// origin) or null.
pub(crate) fn profile(state: &AppState, user: User, origin: &Origin) -> wire::Profile {
    let base_url = state.config.media.base_url.as_deref();
    wire::Profile {
        avatar: user.avatar.as_ref().map(|key| crate::media::media_url(base_url, &origin.url(), key)),
        id: user.id,
        username: user.username,
        email: user.email,
        nickname: user.nickname,
        signature: user.signature,
    }
}

/// The request's `X-Forwarded-Proto` and `Host`, from which Django's `build_absolute_uri`
/// derives absolute URLs. Only these two are kept: a `HeaderMap` extractor copies every header
/// of every request (issue 17).
pub(crate) struct Origin {
    scheme: Option<HeaderValue>,
    host: Option<HeaderValue>,
}

impl Origin {
    /// `scheme://host`.
    pub(crate) fn url(&self) -> String {
        fn text(value: &Option<HeaderValue>) -> Option<&str> {
            value.as_ref().and_then(|v| v.to_str().ok())
        }
        format!("{}://{}", text(&self.scheme).unwrap_or("http"), text(&self.host).unwrap_or("localhost"))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let header = |name| parts.headers.get(name).cloned();
        Ok(Self { scheme: header("x-forwarded-proto"), host: header(header::HOST.as_str()) })
    }
}

fn login_body(user: &User, pair: TokenPair) -> wire::Login {
    wire::Login { access: Jwt(pair.access), refresh: Jwt(pair.refresh), user: user.into() }
}

/// ISO-8601 UTC with microseconds, as dj-rest-auth prints expirations.
pub(crate) fn iso_timestamp(unix: i64) -> String {
    Utc.timestamp_opt(unix, 0).single().unwrap_or_default().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub(crate) async fn registration(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    DeviceName(device): DeviceName,
    payload: Payload,
) -> Result<(StatusCode, Json<wire::Login>), Error> {
    let limits = &state.config.limits;
    let (user, pair) = registration::register(&*state.store, &state.tokens, &payload.data, limits, ip, &device).await?;
    Ok((StatusCode::CREATED, Json(login_body(&user, pair))))
}

pub(crate) async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    DeviceName(device): DeviceName,
    payload: Payload,
) -> JsonResult<wire::Login> {
    let limits = &state.config.limits;
    let (user, pair) = login::login(&*state.store, &state.tokens, &payload.data, limits, ip, &device).await?;
    Ok(Json(login_body(&user, pair)))
}

pub(crate) async fn refresh(State(state): State<AppState>, payload: Payload) -> JsonResult<wire::TokenPair> {
    let pair = sessions::refresh(
        &*state.store,
        &state.tokens,
        &payload.data,
        MissingRefresh::FieldError,
        state.config.refresh_reuse_grace,
    )
    .await?;
    Ok(Json(pair.into()))
}

pub(crate) async fn token_refresh(
    State(state): State<AppState>,
    payload: Payload,
) -> JsonResult<wire::TokenPairWithExpiration> {
    let pair = sessions::refresh(
        &*state.store,
        &state.tokens,
        &payload.data,
        MissingRefresh::Unauthorized,
        state.config.refresh_reuse_grace,
    )
    .await?;
    Ok(Json(wire::TokenPairWithExpiration {
        access_expiration: iso_timestamp(pair.access_claims.exp),
        refresh_expiration: iso_timestamp(pair.refresh_claims.exp),
        access: Jwt(pair.access),
        refresh: Jwt(pair.refresh),
    }))
}

pub(crate) async fn token_verify(State(state): State<AppState>, payload: Payload) -> JsonResult<wire::Verified> {
    sessions::verify(&*state.store, &state.tokens, &payload.data).await?;
    Ok(Json(wire::Verified {}))
}

pub(crate) async fn logout(State(state): State<AppState>, payload: Payload) -> JsonResult<Message> {
    sessions::logout(&*state.store, &state.tokens, &payload.data).await?;
    Ok(Json(Message { detail: "Successfully logged out." }))
}

pub(crate) async fn user_details_get(me: Authenticated) -> JsonResult<UserDetails> {
    Ok(Json((&me.user).into()))
}

pub(crate) async fn user_details_put(
    State(state): State<AppState>,
    me: Authenticated,
    payload: Payload,
) -> JsonResult<UserDetails> {
    let user = profile::update_user_details(&*state.store, &me.user, &payload.data, false).await?;
    Ok(Json((&user).into()))
}

pub(crate) async fn user_details_patch(
    State(state): State<AppState>,
    me: Authenticated,
    payload: Payload,
) -> JsonResult<UserDetails> {
    let user = profile::update_user_details(&*state.store, &me.user, &payload.data, true).await?;
    Ok(Json((&user).into()))
}

pub(crate) async fn profile_get(
    State(state): State<AppState>,
    me: Authenticated,
    origin: Origin,
) -> JsonResult<wire::Profile> {
    Ok(Json(profile(&state, me.user, &origin)))
}

/// PUT and PATCH alike: every profile field is optional.
pub(crate) async fn profile_update(
    State(state): State<AppState>,
    me: Authenticated,
    origin: Origin,
    mut payload: Payload,
) -> JsonResult<wire::Profile> {
    let avatar = requests::profile::AVATAR.name;
    if payload.is_form && payload.data.get(avatar).and_then(Value::as_str) == Some("") {
        payload.data.insert(avatar.into(), Value::Null);
    }
    // The last `avatar` file part, as Django keeps the last value of a repeated key.
    let file = payload.files.into_iter().rev().find(|f| f.field == avatar).map(|f| f.bytes);
    let bounds = (&state.config.media).into();
    let user =
        crate::domain::avatars::update_profile(&*state.store, &*state.media, bounds, &me.user, &payload.data, file)
            .await?;
    Ok(Json(profile(&state, user, &origin)))
}
