//! Sessions and their tokens: starting one, refresh with rotation and reuse detection, verify,
//! logout, and the authentication of a Bearer access token.

use crate::domain::devices::SessionOrigin;
use crate::domain::fields::{Data, FieldErrors};
use crate::domain::legacy::{self, Decoded};
use crate::domain::model::{LogoutOutcome, RotateOutcome, Rotation, Session, SpentToken, User};
use crate::domain::requests;
use crate::domain::tokens::{Claims, TokenPair, TokenProblem, TokenService, TokenType};
use crate::domain::{now, Result};
use crate::error::Error;
use crate::store::{Store, StoreError};
use crate::telemetry::{self, names};

/// The caller behind a valid access token.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user: User,
    /// `None` for a legacy access token (the old service's, `domain::legacy`): it has no session.
    pub session: Option<Session>,
    pub claims: Option<Claims>,
}

pub(crate) fn new_session_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A new session of an existing user and its first token pair, of no known device (the
/// benchmark's token minter calls it). See [`start_session_from`].
pub async fn start_session(
    store: &dyn Store,
    tokens: &TokenService,
    user_id: u64,
    password_version: u64,
    now: i64,
) -> std::result::Result<TokenPair, StoreError> {
    start_session_from(store, tokens, user_id, password_version, SessionOrigin::default(), now).await
}

/// A new session of an existing user, started from `origin`, and its first token pair: what a
/// login does once the password matched. `UserNotFound` when the user is gone, `Stale` when the
/// user's password version is no longer `password_version`.
pub async fn start_session_from(
    store: &dyn Store,
    tokens: &TokenService,
    user_id: u64,
    password_version: u64,
    origin: SessionOrigin,
    now: i64,
) -> std::result::Result<TokenPair, StoreError> {
    let session_id = new_session_id();
    let pair = tokens.issue_pair(user_id, &session_id, password_version, now);
    store.start_session(new_session(&pair.refresh_claims, origin, now), now).await?;
    Ok(pair)
}

/// The record of a session whose first refresh token has these claims.
pub(crate) fn new_session(refresh: &Claims, origin: SessionOrigin, now: i64) -> Session {
    Session {
        id: refresh.sid.clone(),
        user_id: refresh.user_id(),
        refresh_jti: refresh.jti.clone(),
        created_at: now,
        expires_at: refresh.exp,
        password_version: refresh.pwv,
        device: origin.device,
        ip: origin.ip,
        last_used_at: now,
        previous_jti: None,
    }
}

/// How the refresh routes read a missing `refresh` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingRefresh {
    /// `/api/auth/refresh/`: 400 `{"refresh": ["This field is required."]}`.
    FieldError,
    /// `/api/auth/token/refresh/`: 401 "No valid refresh token found.".
    Unauthorized,
}

/// Both refresh routes: spends the refresh token and returns a new pair of the same session.
///
/// A token spent less than `grace` ago answers with the session's current pair (apps on bad
/// networks refresh several times at once); spent longer ago, it is a stolen or replayed token:
/// the whole session ends (RFC 9700 §4.14 reuse detection; docs/api.md#reuse-detection).
pub async fn refresh(
    store: &dyn Store,
    tokens: &TokenService,
    data: &Data,
    missing: MissingRefresh,
    grace: std::time::Duration,
) -> Result<TokenPair> {
    if missing == MissingRefresh::Unauthorized && !data.contains_key(requests::refresh::REFRESH.name) {
        return Err(Error::NoValidRefreshToken);
    }
    let mut errors = FieldErrors::new();
    let token = requests::refresh::REFRESH.read(data, &mut errors);
    errors.into_result()?;
    let token = token.unwrap_or_default();
    let now = now();
    let claims = match legacy::decode(tokens, &token, Some(TokenType::Refresh), now).map_err(Error::TokenRejected)? {
        Decoded::Ordinary(claims) => claims,
        Decoded::Legacy(claims) => return legacy::refresh(store, tokens, claims, now, grace).await,
    };
    // The token's password version first; a session kept by a password change learns its new
    // one from the store and rotates again (once).
    let mut password_version = claims.pwv;
    for _ in 0..2 {
        let pair = tokens.issue_pair(claims.user_id(), &claims.sid, password_version, now);
        let outcome = store
            .rotate_refresh(Rotation {
                user_id: claims.user_id(),
                session_id: claims.sid.clone(),
                old_jti: claims.jti.clone(),
                old_exp: claims.exp,
                new_jti: pair.refresh_claims.jti.clone(),
                new_exp: pair.refresh_claims.exp,
                password_version,
                now,
            })
            .await?;
        return match outcome {
            RotateOutcome::Rotated => Ok(pair),
            RotateOutcome::Blacklisted => reused_refresh(store, tokens, &claims, now, grace).await,
            RotateOutcome::UserMissing | RotateOutcome::UserInactive => Err(Error::NoActiveAccount),
            RotateOutcome::SessionEnded => Err(Error::TokenRejected(TokenProblem::Invalid)),
            RotateOutcome::PasswordVersion(version) if version != password_version => {
                password_version = version;
                continue;
            }
            RotateOutcome::PasswordVersion(_) => Err(Error::TokenRejected(TokenProblem::Invalid)),
        };
    }
    Err(Error::TokenRejected(TokenProblem::Invalid))
}

/// A spent refresh token presented again: the session's current pair when the token is the
/// one the current token replaced (that token has not been used yet: the answer of the
/// rotation was lost) or when it was spent within the grace window; otherwise the end of the
/// session.
pub(crate) async fn reused_refresh(
    store: &dyn Store,
    tokens: &TokenService,
    claims: &Claims,
    now: i64,
    grace: std::time::Duration,
) -> Result<TokenPair> {
    let grace = grace.as_secs() as i64;
    let usable = match store.session_with_user(claims.user_id(), &claims.sid, now).await? {
        (Some(user), Some(session))
            if user.is_active && session.is_valid_for(&user, now) && session.refresh_jti != claims.jti =>
        {
            Some(session)
        }
        _ => None,
    };
    if let Some(session) = &usable {
        // The rotation that spent this token wrote `last_used_at`: past the grace window, the
        // access token of the pair is a fresh one (the rotation's has likely expired).
        if session.previous_jti.as_deref() == Some(claims.jti.as_str()) {
            return Ok(if now - session.last_used_at < grace {
                tokens.current_pair(session)
            } else {
                tokens.current_pair_with_fresh_access(session, now)
            });
        }
    }
    let spent = store.blacklisted(&claims.jti, now).await?;
    let within_grace =
        spent.as_ref().is_some_and(|entry| entry.session_id == claims.sid && now - entry.blacklisted_at < grace);
    if within_grace {
        if let Some(session) = &usable {
            return Ok(tokens.current_pair(session));
        }
    } else if store.end_session(&claims.sid).await? {
        telemetry::count(names::REFRESH_REUSE_DETECTED);
        tracing::warn!(user_id = claims.user_id(), "spent refresh token reused: session ended");
    }
    Err(Error::TokenRejected(TokenProblem::Blacklisted))
}

/// `POST /api/auth/token/verify/`: any live token of a live session.
pub async fn verify(store: &dyn Store, tokens: &TokenService, data: &Data) -> Result<()> {
    let mut errors = FieldErrors::new();
    let token = requests::token_verify::TOKEN.read(data, &mut errors);
    errors.into_result()?;
    let now = now();
    let claims = match legacy::decode(tokens, &token.unwrap_or_default(), None, now).map_err(Error::TokenRejected)? {
        Decoded::Ordinary(claims) => claims,
        Decoded::Legacy(claims) => return legacy::verify(store, claims, now).await,
    };
    if claims.token_type == TokenType::Refresh && store.blacklisted(&claims.jti, now).await?.is_some() {
        return Err(Error::VerifyBlacklisted);
    }
    if !store.session_is_valid(claims.user_id(), &claims.sid, now).await? {
        return Err(Error::TokenRejected(TokenProblem::Invalid));
    }
    Ok(())
}

/// `POST /api/auth/logout/`: blacklists the refresh token and ends its session. A token spent
/// already still ends its session, then answers 401: the victim of a stolen, rotated token who
/// taps "log out" ends the thief's session too (as reuse detection would at a refresh).
pub async fn logout(store: &dyn Store, tokens: &TokenService, data: &Data) -> Result<()> {
    let token = match data.get(requests::logout::REFRESH.name) {
        None => return Err(Error::LogoutMissingRefresh),
        Some(serde_json::Value::String(s)) => s.trim().to_string(),
        Some(_) => return Err(Error::LogoutTokenRejected(TokenProblem::Invalid)),
    };
    let now = now();
    let claims =
        match legacy::decode(tokens, &token, Some(TokenType::Refresh), now).map_err(Error::LogoutTokenRejected)? {
            Decoded::Ordinary(claims) => claims,
            Decoded::Legacy(claims) => return legacy::logout(store, claims, now).await,
        };
    let spent =
        SpentToken { jti: claims.jti.clone(), exp: claims.exp, user_id: claims.user_id(), session_id: claims.sid };
    let (session_id, user_id) = (spent.session_id.clone(), spent.user_id);
    match store.logout(spent, now).await? {
        LogoutOutcome::LoggedOut => Ok(()),
        LogoutOutcome::AlreadyBlacklisted => {
            if store.end_session(&session_id).await? {
                telemetry::count(names::REFRESH_REUSE_DETECTED);
                tracing::warn!(user_id, "logout with a spent refresh token: session ended");
            }
            Err(Error::LogoutTokenRejected(TokenProblem::Blacklisted))
        }
    }
}

/// The authentication layer: the user and session behind a Bearer access token.
pub async fn authenticate(store: &dyn Store, tokens: &TokenService, token: &str) -> Result<Authenticated> {
    let now = now();
    let claims =
        match legacy::decode(tokens, token, Some(TokenType::Access), now).map_err(Error::AccessTokenRejected)? {
            Decoded::Ordinary(claims) => claims,
            Decoded::Legacy(claims) => return legacy::authenticate(store, claims, now).await,
        };
    let (user, session) = store.session_with_user(claims.user_id(), &claims.sid, now).await?;
    let Some(session) = session else { return Err(Error::AccessTokenRejected(TokenProblem::Invalid)) };
    let Some(user) = user else { return Err(Error::UserNotFound) };
    // A session of an older password is over, even if the change has not deleted it yet.
    if !session.is_valid_for(&user, now) {
        return Err(Error::AccessTokenRejected(TokenProblem::Invalid));
    }
    if !user.is_active {
        return Err(Error::UserInactive);
    }
    Ok(Authenticated { user, session: Some(session), claims: Some(claims) })
}
