//! The account model: what the stores keep and the handlers return.

/// A user account. Profile fields live on the user, as in the old service's model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: u64,
    /// As registered (case kept); matched case-insensitively through [`username_key`].
    pub username: String,
    /// Empty when none was given (stored lowercased, like allauth does).
    pub email: String,
    /// PHC string (`$argon2id$...`) or an imported Django hash.
    pub password_hash: String,
    /// Goes up by one with every new password (not with a rehash of the same one). A session
    /// remembers the version it was opened under and is over once the user's has moved on.
    pub password_version: u64,
    pub first_name: String,
    pub last_name: String,
    pub nickname: String,
    pub signature: String,
    /// Media key of the avatar (`avatar/<id>/<file>`), not a URL.
    pub avatar: Option<String>,
    pub is_active: bool,
    /// Unix seconds.
    pub date_joined: i64,
    pub last_login: Option<i64>,
}

/// A user about to be created: the store allocates the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub date_joined: i64,
}

/// Changes to a user; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserUpdate {
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub nickname: Option<String>,
    pub signature: Option<String>,
    /// `Some(None)` clears the avatar.
    pub avatar: Option<Option<String>>,
}

impl UserUpdate {
    pub fn is_empty(&self) -> bool {
        *self == UserUpdate::default()
    }
}

/// One signed-in device: login or registration starts it, refresh rotates inside it, logout ends it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub user_id: u64,
    /// The `jti` of the one refresh token of this session that may still be used.
    pub refresh_jti: String,
    pub created_at: i64,
    /// The current refresh token's `exp`: after it the session is over (and DynamoDB's TTL removes it).
    pub expires_at: i64,
    /// The user's password version when the session was opened (or kept by a password change).
    pub password_version: u64,
    /// The device as the client named it at login or registration (`X-Device-Name`, else its
    /// `User-Agent`; at most 200 characters, no control characters); empty when unknown.
    pub device: String,
    /// The client's address at login or registration; empty when unknown.
    pub ip: String,
    /// The last refresh (the session's start before one): Unix seconds.
    pub last_used_at: i64,
    /// The `jti` that `refresh_jti` replaced (written by the rotation): presented again while
    /// `refresh_jti` has not been used, it gets the current pair (a lost refresh answer).
    pub previous_jti: Option<String>,
}

impl Session {
    pub fn is_live(&self, now: i64) -> bool {
        self.expires_at > now
    }

    /// Live, and opened under the user's current password: a session of an older password is
    /// over, even before the password change has deleted it.
    pub fn is_valid_for(&self, user: &User, now: i64) -> bool {
        self.is_live(now) && self.user_id == user.id && self.password_version == user.password_version
    }
}

/// A new password hash (or a rehash of the same password), written only if the stored hash is
/// still `expected` (compare-and-set: of two changes made from the same state, one wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordReplacement {
    pub user_id: u64,
    pub expected_hash: String,
    pub new_hash: String,
    /// A new password: the version goes up by one, so every session opened under the old one is
    /// over at once. `false` for a rehash of the same password (an imported hash upgraded at login).
    pub new_version: bool,
    /// With `new_version`: this session (the caller's, on a password change) follows the user to
    /// the new version in the same write.
    pub keep_session: Option<String>,
}

/// A refresh token that may never be used again (rotated or logged out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlacklistEntry {
    pub jti: String,
    pub user_id: u64,
    pub session_id: String,
    /// The token's own `exp`: the entry is useless afterwards and is purged (TTL in DynamoDB).
    pub expires_at: i64,
    pub blacklisted_at: i64,
}

/// A refresh rotation: `old_jti` is spent, `new_jti` becomes the session's current token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub user_id: u64,
    pub session_id: String,
    pub old_jti: String,
    pub old_exp: i64,
    pub new_jti: String,
    pub new_exp: i64,
    /// The password version the refresh token names (its `pwv` claim): the rotation checks it
    /// against the session and the user in the same atomic write, without reading them first.
    pub password_version: u64,
    pub now: i64,
}

/// What a rotation found, checked in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateOutcome {
    Rotated,
    /// `old_jti` is on the blacklist (already rotated or logged out).
    Blacklisted,
    UserMissing,
    UserInactive,
    /// The session is gone or expired, `old_jti` is not its current token, or the session was
    /// opened under an older password than the user's.
    SessionEnded,
    /// Nothing written: the session is valid, but under this password version, not the one the
    /// rotation named (the caller's session kept by a password change). Rotate again with it.
    PasswordVersion(u64),
}

/// What a logout found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutOutcome {
    /// The token is now blacklisted and its session (if it was the current token) is over.
    LoggedOut,
    AlreadyBlacklisted,
}

/// The spent refresh token handed to logout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpentToken {
    pub jti: String,
    pub exp: i64,
    pub user_id: u64,
    pub session_id: String,
}

/// The case-insensitive key of a username or e-mail: what uniqueness and login match on.
pub fn username_key(username: &str) -> String {
    username.to_lowercase()
}
