//! Storage behind traits: users, sessions and the refresh-token blacklist.
//!
//! Two backends implement every trait: [`sqlite`] (embedded, the local default) and [`dynamodb`].
//! Operations that must agree across records (a user and its username claim, a rotation and its
//! blacklist entry) are single trait methods, so each backend makes them atomic in its own way
//! (one SQLite transaction, one DynamoDB `TransactWriteItems`).

pub mod cleanup;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "sqlite")]
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::model::{
    BlacklistEntry, LogoutOutcome, NewUser, RotateOutcome, Rotation, Session, SpentToken, User,
    UserUpdate,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("username already taken")]
    UsernameTaken,
    #[error("e-mail already taken")]
    EmailTaken,
    #[error("user not found")]
    UserNotFound,
    /// The backend could not be reached in time: the request may be retried.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or corrupt data.
    #[error("storage error: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Allocates the next user id and writes the user, its username (and e-mail) claim and its
    /// first session in one atomic step (the session's `user_id` is set to the new id). `UsernameTaken` / `EmailTaken` when a claim exists
    /// (case-insensitively); nothing is written then.
    async fn create_user(&self, user: NewUser, first_session: Session) -> StoreResult<User>;

    /// Writes a user that keeps its id (import from the old service); the id counter moves past it.
    /// Same uniqueness rules as `create_user`; an existing id is `UsernameTaken`.
    async fn insert_user(&self, user: User) -> StoreResult<()>;

    async fn get_user(&self, id: u64) -> StoreResult<Option<User>>;

    /// Case-insensitive.
    async fn find_user_by_username(&self, username: &str) -> StoreResult<Option<User>>;

    /// Case-insensitive.
    async fn email_in_use(&self, email: &str) -> StoreResult<bool>;

    /// The active users with this e-mail address (case-insensitive), for a password reset; none
    /// for an empty address. E-mails are unique in both backends, so this is at most one user
    /// (the import tool leaves a duplicate address of the old service on its first user only).
    async fn find_active_users_by_email(&self, email: &str) -> StoreResult<Vec<User>>;

    /// Applies the update and returns the user afterwards. A username change keeps uniqueness
    /// (`UsernameTaken`, nothing written); `UserNotFound` for a missing user.
    async fn update_user(&self, id: u64, update: UserUpdate) -> StoreResult<User>;

    /// Replaces the password hash (a login that upgrades an imported hash, a password change).
    async fn set_password_hash(&self, id: u64, password_hash: &str) -> StoreResult<()>;
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Starts a session for an existing user and records the login time, atomically.
    /// `UserNotFound` when the user is gone.
    async fn start_session(&self, session: Session, login_at: i64) -> StoreResult<()>;

    /// The user and the live session behind an access token, read together (one round trip).
    /// An expired session reads as `None`.
    async fn session_with_user(
        &self,
        user_id: u64,
        session_id: &str,
        now: i64,
    ) -> StoreResult<(Option<User>, Option<Session>)>;

    /// Spends `old_jti` and makes `new_jti` the session's current refresh token, exactly once:
    /// of several rotations of the same token only one returns `Rotated`.
    async fn rotate_refresh(&self, rotation: Rotation) -> StoreResult<RotateOutcome>;

    /// Blacklists the refresh token and, when it is its session's current token, ends the session.
    async fn logout(&self, token: SpentToken, now: i64) -> StoreResult<LogoutOutcome>;

    /// Ends one session (reuse of a spent refresh token was detected); whether it was live.
    async fn end_session(&self, session_id: &str) -> StoreResult<bool>;

    /// Ends every session of the user except `keep` (password change) or all of them.
    async fn end_sessions(&self, user_id: u64, keep: Option<&str>) -> StoreResult<u64>;
}

#[async_trait]
pub trait BlacklistStore: Send + Sync {
    /// The entry for a refresh `jti`, if it is blacklisted and not yet past its `exp`.
    async fn blacklisted(&self, jti: &str, now: i64) -> StoreResult<Option<BlacklistEntry>>;

    /// Deletes blacklist entries and sessions whose `exp` has passed; returns how many rows went.
    /// DynamoDB leaves this to its TTL and returns 0.
    async fn purge_expired(&self, now: i64) -> StoreResult<u64>;
}

/// A fixed-window counter: its count in the window that contains "now", and when that window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    pub count: u64,
    pub resets_at: i64,
}

/// A named counter over fixed windows of `window` seconds (`login-fail:ip:192.0.2.1`, 60).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterKey {
    pub name: String,
    pub window: u64,
}

impl CounterKey {
    /// The window containing `now`: its start (part of the stored key) and its end.
    pub fn window_at(&self, now: i64) -> (i64, i64) {
        let window = self.window.max(1) as i64;
        let start = now - now.rem_euclid(window);
        (start, start + window)
    }

    /// The stored key: the name and the window's start, so each window counts from zero.
    pub fn storage_key(&self, now: i64) -> String {
        format!("{}@{}", self.name, self.window_at(now).0)
    }
}

/// Throttling counters (decision 5). Rows expire with their window (TTL in DynamoDB).
#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// Adds one to the counter, atomically, and returns its count afterwards.
    async fn hit(&self, key: &CounterKey, now: i64) -> StoreResult<WindowCount>;

    /// The user a login names, read together with the counts of `counters` (one round trip
    /// fewer than reading them apart: a login must look at both before it decides).
    async fn login_lookup(
        &self,
        username: &str,
        counters: &[CounterKey],
        now: i64,
    ) -> StoreResult<(Option<User>, Vec<WindowCount>)>;
}

/// Everything the handlers need from storage.
pub trait Store: UserStore + SessionStore + BlacklistStore + ThrottleStore {}
impl<T: UserStore + SessionStore + BlacklistStore + ThrottleStore> Store for T {}

pub type SharedStore = Arc<dyn Store>;
