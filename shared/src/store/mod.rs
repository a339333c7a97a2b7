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
    BlacklistEntry, LogoutOutcome, NewUser, PasswordReplacement, RotateOutcome, Rotation, Session, SpentToken, User,
    UserUpdate,
};
use crate::domain::throttle::{Rule, Usage};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("username already taken")]
    UsernameTaken,
    #[error("e-mail already taken")]
    EmailTaken,
    #[error("user not found")]
    UserNotFound,
    /// A compare-and-set lost: the record changed since it was read (a password replaced from a
    /// hash that is no longer stored, a session started under a password version that moved on).
    #[error("changed since it was read")]
    Stale,
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

    /// Enables or disables the account (a disabled one cannot log in, refresh or authenticate);
    /// `UserNotFound` for a missing user.
    async fn set_active(&self, id: u64, active: bool) -> StoreResult<()>;

    /// Replaces the password hash if it is still the expected one; returns the user's password
    /// version afterwards. `Stale` when the hash changed meanwhile (nothing written),
    /// `UserNotFound` for a missing user.
    async fn replace_password_hash(&self, replacement: PasswordReplacement) -> StoreResult<u64>;
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Starts a session for an existing user and records the login time, atomically, if the
    /// user's password version is still the session's. `UserNotFound` when the user is gone,
    /// `Stale` when the password changed since it was checked (nothing written).
    async fn start_session(&self, session: Session, login_at: i64) -> StoreResult<()>;

    /// The user and the live session behind an access token, read together (one round trip).
    /// An expired session reads as `None`; the caller checks the password versions
    /// ([`Session::is_valid_for`]).
    async fn session_with_user(
        &self,
        user_id: u64,
        session_id: &str,
        now: i64,
    ) -> StoreResult<(Option<User>, Option<Session>)>;

    /// Whether the session is live, the user's, and of the user's current password
    /// ([`Session::is_valid_for`]): what a token verification asks, without the records. A
    /// store may answer it with a narrower read (the embedded store does: issue 17).
    async fn session_is_valid(&self, user_id: u64, session_id: &str, now: i64) -> StoreResult<bool> {
        let (user, session) = self.session_with_user(user_id, session_id, now).await?;
        Ok(matches!((user, session), (Some(user), Some(session)) if session.is_valid_for(&user, now)))
    }

    /// Spends `old_jti` and makes `new_jti` the session's current refresh token, exactly once:
    /// of several rotations of the same token only one returns `Rotated`. Only while the user
    /// is active and the session's and the user's password versions are the rotation's. The
    /// same write sets the session's `previous_jti` to `old_jti` and `last_used_at` to `now`.
    async fn rotate_refresh(&self, rotation: Rotation) -> StoreResult<RotateOutcome>;

    /// Blacklists the refresh token and, when it is its session's current token, ends the session.
    async fn logout(&self, token: SpentToken, now: i64) -> StoreResult<LogoutOutcome>;

    /// Starts `session` and blacklists `spent` in one atomic step (a legacy refresh token
    /// exchanged for a session: `domain::legacy`), while the user exists, is active and is at the
    /// session's password version; of several calls for one `spent` token only one starts it.
    /// Outcomes: `Rotated` (started), `Blacklisted` (`spent` is on the blacklist already: nothing
    /// written), `UserMissing`, `UserInactive`, `PasswordVersion(the user's)`; `SessionEnded` when the
    /// session exists already although `spent` is not blacklisted.
    async fn start_session_spending(
        &self,
        session: Session,
        spent: BlacklistEntry,
        now: i64,
    ) -> StoreResult<RotateOutcome>;

    /// Ends one session (reuse of a spent refresh token was detected); whether it was live.
    async fn end_session(&self, session_id: &str) -> StoreResult<bool>;

    /// Ends every session of the user except `keep` (password change) or all of them.
    async fn end_sessions(&self, user_id: u64, keep: Option<&str>) -> StoreResult<u64>;

    /// The user's sessions that are not expired at `now` (in no order; the caller checks the
    /// password versions). DynamoDB finds them through an eventually consistent index, so a
    /// session started a moment ago may be missing; the sessions read are current.
    async fn user_sessions(&self, user_id: u64, now: i64) -> StoreResult<Vec<Session>>;

    /// Ends the session if it is the user's and not expired, in one conditional write (never
    /// another user's); whether it did.
    async fn end_user_session(&self, user_id: u64, session_id: &str, now: i64) -> StoreResult<bool>;
}

#[async_trait]
pub trait BlacklistStore: Send + Sync {
    /// The entry for a refresh `jti`, if it is blacklisted and not yet past its `exp`.
    async fn blacklisted(&self, jti: &str, now: i64) -> StoreResult<Option<BlacklistEntry>>;

    /// Blacklists a token unless it is already (idempotent: an import run twice, a repeated
    /// logout); whether it was written.
    async fn blacklist(&self, entry: BlacklistEntry, now: i64) -> StoreResult<bool>;

    /// The user and the blacklist entry of `jti`, read together (one round trip): what a token
    /// without a session (the old service's, `domain::legacy`) is checked against.
    async fn user_and_blacklist_entry(
        &self,
        user_id: u64,
        jti: &str,
        now: i64,
    ) -> StoreResult<(Option<User>, Option<BlacklistEntry>)>;

    /// Deletes blacklist entries and sessions whose `exp` has passed; returns how many rows went.
    /// DynamoDB leaves this to its TTL and returns 0.
    async fn purge_expired(&self, now: i64) -> StoreResult<u64>;
}

/// What [`ThrottleStore::reserve`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// A place was taken in every counter; [`ThrottleStore::release`] gives them back.
    Admitted(Reservation),
    /// A counter is at its limit and nothing was counted: the seconds until one more event
    /// would be admitted.
    Refused { retry_after: u64 },
}

/// The places an admitted attempt took: the stored keys of the counters' windows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reservation {
    pub keys: Vec<String>,
}

/// Throttling counters (`domain::throttle`): one row per counter and fixed window, gone with its
/// window's successor (TTL in DynamoDB).
#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// Takes one place in the counter of every rule in one atomic step, unless one of them is at
    /// its limit (sliding window): then nothing is counted. `known` are usages the caller read
    /// moments ago (`login_lookup`, same `now`): a backend that cannot read and write in one step
    /// takes the previous windows from them instead of reading again.
    async fn reserve(&self, rules: &[Rule], known: Option<&[Usage]>, now: i64) -> StoreResult<Admission>;

    /// Gives back the places of a reservation (a password check that succeeded).
    async fn release(&self, reservation: &Reservation) -> StoreResult<()>;

    /// Deletes these counter windows (`Rule::keys`): an operator unlocking an account.
    async fn clear_counters(&self, keys: &[String]) -> StoreResult<()>;

    /// The user a login names, read together with the usage of the rules' counters (one round
    /// trip fewer than reading them apart: a login must look at both before it decides).
    async fn login_lookup(&self, username: &str, rules: &[Rule], now: i64) -> StoreResult<(Option<User>, Vec<Usage>)>;
}

/// Deleting an account (`domain::account`): the records of one user, in one atomic write.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Deletes `user` as it was read: its record with its username, look-alike (skeleton) and
    /// e-mail claims, in one atomic write, only while its username, e-mail and password hash
    /// are still the ones read (`Stale` otherwise, `UserNotFound` when it is gone; nothing is
    /// deleted then). From that write on every session of the user is refused (each use reads
    /// the user) and the name and address are free. SQLite deletes the sessions and blacklist
    /// entries in the same transaction; DynamoDB leaves the sessions to
    /// [`SessionStore::end_sessions`] (see `dynamodb/deletion.rs`) and the blacklist to its TTL.
    async fn delete_user(&self, user: &User) -> StoreResult<()>;
}

/// Everything the handlers need from storage.
pub trait Store: UserStore + SessionStore + BlacklistStore + ThrottleStore + AccountStore {}
impl<T: UserStore + SessionStore + BlacklistStore + ThrottleStore + AccountStore> Store for T {}

pub type SharedStore = Arc<dyn Store>;
