//! The password endpoints: change, reset request, reset confirm, and the e-mail link's target.

use axum::extract::{Path, State};
use axum::Json;
use tokio::time::Instant;

use crate::domain::credentials::{self, PASSWORD_CHANGED, RESET_DONE, RESET_SENT};
use crate::domain::sessions::Authenticated;
use crate::error::Error;
use crate::http::body::Payload;
use crate::http::client_ip::ClientIp;
use crate::http::wire::{Message, ResetLink};
use crate::state::AppState;

type JsonResult<T> = Result<Json<T>, Error>;

pub(crate) async fn password_change(
    State(state): State<AppState>,
    me: Authenticated,
    ClientIp(ip): ClientIp,
    payload: Payload,
) -> JsonResult<Message> {
    credentials::change_password(&*state.store, &me, &payload.data, &state.config.limits, ip).await?;
    Ok(Json(Message { detail: PASSWORD_CHANGED }))
}

/// Answers no sooner than `PASSWORD_RESET_MIN_RESPONSE_MS` after the request came in, whatever
/// happened (an e-mail sent, none, or a failure): the time tells nothing about the address.
/// The e-mail is sent before the answer, not in the background: a Lambda is frozen once it has
/// answered, and a message left half-sent would be lost.
pub(crate) async fn password_reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    payload: Payload,
) -> JsonResult<Message> {
    let deadline = Instant::now() + state.config.password_reset.min_response;
    let result = credentials::request_reset(
        &*state.store,
        &*state.mailer,
        &state.reset_tokens,
        &state.config.password_reset,
        &state.config.mail.from,
        &payload.data,
        &state.config.limits,
        ip,
    )
    .await;
    // A malformed or throttled request is refused at once: its answer depends only on what the
    // client sent, not on whether the address has an account.
    if !matches!(result, Err(Error::Validation(_) | Error::Throttled { .. })) {
        if !state.config.password_reset.min_response.is_zero() && Instant::now() > deadline {
            tracing::warn!("password reset took longer than PASSWORD_RESET_MIN_RESPONSE_MS");
        }
        tokio::time::sleep_until(deadline).await;
    }
    result?;
    Ok(Json(Message { detail: RESET_SENT }))
}

pub(crate) async fn password_reset_confirm(State(state): State<AppState>, payload: Payload) -> JsonResult<Message> {
    credentials::confirm_reset(&*state.store, &state.reset_tokens, &payload.data).await?;
    Ok(Json(Message { detail: RESET_DONE }))
}

/// `GET /password-reset/confirm/<uid>/<token>/`, the link in the e-mail: echoes both values, as
/// the old service's page did (`uid` is `[0-9A-Za-z]+`, `token` is `[-:\w]+`; else 404).
pub(crate) async fn password_reset_link(Path((uid, token)): Path<(String, String)>) -> JsonResult<ResetLink> {
    let uid_ok = !uid.is_empty() && uid.chars().all(|c| c.is_ascii_alphanumeric());
    let token_ok = !token.is_empty() && token.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ':'));
    if !uid_ok || !token_ok {
        return Err(Error::NotFound);
    }
    Ok(Json(ResetLink { uid, token }))
}
