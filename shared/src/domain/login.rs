//! `POST /api/auth/login/`: credentials checked behind the throttling counters, then a new session.

use crate::domain::devices::SessionOrigin;
use crate::domain::fields::{Data, FieldErrors};
use crate::domain::model::username_key;
use crate::domain::model::{PasswordReplacement, User};
use crate::domain::password;
use crate::domain::requests;
use crate::domain::sessions;
use crate::domain::throttle::{self, Limits};
use crate::domain::tokens::{TokenPair, TokenService};
use crate::domain::user::normalize_username;
use crate::domain::{now, Result};
use crate::error::Error;
use crate::store::{Store, StoreError};
use crate::telemetry::{self, names};

use std::net::IpAddr;

pub const BAD_CREDENTIALS: &str = "Unable to log in with provided credentials.";
pub const MUST_INCLUDE: &str = "Must include \"username\" and \"password\".";

/// A login refused for its credentials, counted for the dashboard.
fn bad_credentials() -> Error {
    telemetry::count(names::LOGIN_FAILED);
    Error::non_field(BAD_CREDENTIALS)
}

/// `POST /api/auth/login/`: checks the credentials and starts a session. Every attempt takes a
/// place per account and per client IP before the password is checked (at a limit even the
/// right password is refused, without hashing); a successful one gives its places back. The
/// session records `device` (the client's name for it) and the address.
pub async fn login(
    store: &dyn Store,
    tokens: &TokenService,
    data: &Data,
    limits: &Limits,
    client_ip: Option<IpAddr>,
    device: &str,
) -> Result<(User, TokenPair)> {
    let mut errors = FieldErrors::new();
    let username = requests::login::USERNAME.read(data, &mut errors);
    let password = requests::login::PASSWORD.read(data, &mut errors);
    errors.into_result()?;
    let (Some(username), Some(password)) = (username.filter(|u| !u.is_empty()), password) else {
        return Err(Error::non_field(MUST_INCLUDE));
    };

    let username = normalize_username(&username);
    let now = now();
    let rules = limits.password_check(&username_key(&username), client_ip);
    let (user, usages) = store.login_lookup(&username, &rules, now).await?;
    // Already over a limit: refused without a write.
    if let Some(retry_after) = throttle::refusal(&rules, &usages, now) {
        return Err(throttle::throttled(retry_after));
    }
    let reservation = throttle::reserve(store, &rules, Some(&usages), now).await?;
    // Unknown users are checked against a dummy hash so that they cost the same time.
    let stored_hash = user.as_ref().map_or_else(|| password::dummy_hash().to_string(), |u| u.password_hash.clone());
    let matched = {
        let (password, stored_hash) = (password.clone(), stored_hash.clone());
        password::blocking(move || password::verify(&password, &stored_hash)).await?
    };
    // A failure keeps its places in the counters.
    let mut user = match user {
        Some(user) if matched && user.is_active => user,
        _ => return Err(bad_credentials()),
    };
    // A success gives its places back, beside the session's write rather than before it.
    let release = store.release(&reservation);
    if password::needs_rehash(&user.password_hash) {
        let fresh = password::blocking(move || password::hash(&password)).await?;
        let upgrade = PasswordReplacement {
            user_id: user.id,
            expected_hash: stored_hash,
            new_hash: fresh.clone(),
            new_version: false,
            keep_session: None,
        };
        match store.replace_password_hash(upgrade).await {
            Ok(_) => user.password_hash = fresh,
            // The password changed since it was checked: this login is refused.
            Err(StoreError::Stale | StoreError::UserNotFound) => return Err(bad_credentials()),
            Err(e) => return Err(e.into()),
        }
    }

    // The session is opened under the password version just checked; if the password changed
    // meanwhile, the store refuses it (a login racing a change never outlives it).
    let origin = SessionOrigin::new(device, client_ip);
    let started = sessions::start_session_from(store, tokens, user.id, user.password_version, origin, now);
    let (released, started) = tokio::join!(release, started);
    released?;
    let pair = match started {
        Ok(pair) => pair,
        Err(StoreError::UserNotFound | StoreError::Stale) => return Err(bad_credentials()),
        Err(e) => return Err(e.into()),
    };
    telemetry::count(names::LOGIN_SUCCEEDED);
    Ok((User { last_login: Some(now), ..user }, pair))
}
