//! The behaviour every store backend must show, one function per behaviour, each given a fresh
//! store (see `store_conformance_tests!`). The doc comments of the traits in `accounts::store`
//! are the specification.

pub(super) use accounts::domain::model::{
    LogoutOutcome, NewUser, PasswordReplacement, RotateOutcome, Rotation, Session, SpentToken, User, UserUpdate,
};
pub(super) use accounts::domain::throttle::{Limit, Rule, Usage};
pub(super) use accounts::store::{Admission, Reservation, SharedStore, StoreError};

/// "Now" for every test (Unix seconds): times are passed explicitly, never read from a clock.
pub(super) const NOW: i64 = 1_700_000_000;
pub(super) const HOUR: i64 = 3600;
pub(super) const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

pub(super) fn new_user(username: &str, email: &str) -> NewUser {
    NewUser { username: username.into(), email: email.into(), password_hash: HASH.into(), date_joined: NOW - 10 }
}

/// A session whose `user_id` the store fills in (create) or that belongs to `user_id`.
pub(super) fn session(id: &str, user_id: u64, jti: &str) -> Session {
    Session {
        id: id.into(),
        user_id,
        refresh_jti: jti.into(),
        created_at: NOW,
        expires_at: NOW + HOUR,
        password_version: 0,
        device: format!("device of {id}"),
        ip: "192.0.2.1".into(),
        last_used_at: NOW,
        previous_jti: None,
    }
}

/// A user as imported from the old service, every field set.
pub(super) fn full_user(id: u64, username: &str, email: &str) -> User {
    User {
        id,
        username: username.into(),
        email: email.into(),
        password_hash: "pbkdf2_sha256$260000$salt$hash=".into(),
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        nickname: "ada".into(),
        signature: "Hello, 世界".into(),
        avatar: Some(format!("avatar/{id}/face.png")),
        is_active: true,
        date_joined: NOW - 1000,
        last_login: Some(NOW - 500),
        password_version: 0,
    }
}

/// Registers a user with a first session `<username>-s1` whose refresh token is `<username>-r1`.
pub(super) async fn register(store: &SharedStore, username: &str, email: &str) -> (User, Session) {
    let first = session(&format!("{username}-s1"), 0, &format!("{username}-r1"));
    let user = store
        .create_user(new_user(username, email), first.clone())
        .await
        .unwrap_or_else(|e| panic!("create_user({username:?}): {e}"));
    (user.clone(), Session { user_id: user.id, ..first })
}

/// A session as a version before devices wrote it (created at 1_700_000_000, expiring at
/// 2_000_000_000), read back with the defaults: no device or address, last used when created.
pub(super) fn older_session(id: &str, user_id: u64, jti: &str) -> Session {
    Session {
        id: id.into(),
        user_id,
        refresh_jti: jti.into(),
        created_at: 1_700_000_000,
        expires_at: 2_000_000_000,
        password_version: 0,
        device: String::new(),
        ip: String::new(),
        last_used_at: 1_700_000_000,
        previous_jti: None,
    }
}

pub(super) fn rotation(s: &Session, old_jti: &str, new_jti: &str, now: i64) -> Rotation {
    Rotation {
        user_id: s.user_id,
        session_id: s.id.clone(),
        old_jti: old_jti.into(),
        old_exp: s.expires_at,
        new_jti: new_jti.into(),
        new_exp: now + 2 * HOUR,
        password_version: 0,
        now,
    }
}

pub(super) fn spent(s: &Session, jti: &str, exp: i64) -> SpentToken {
    SpentToken { jti: jti.into(), exp, user_id: s.user_id, session_id: s.id.clone() }
}

pub(super) async fn live_session(store: &SharedStore, s: &Session, now: i64) -> Option<Session> {
    store.session_with_user(s.user_id, &s.id, now).await.unwrap().1
}
