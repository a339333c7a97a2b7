//! Password-reset links: the user id in base 36 (`uid`, as allauth writes it) and a token
//! `<timestamp in base 36>-<HMAC>` in the shape of Django's `PasswordResetTokenGenerator`.
//!
//! The HMAC-SHA256 (truncated to 128 bits) covers the user id, the current password hash, the
//! last login, the e-mail address and the timestamp, under a key derived from the JWT secret.
//! So a token is:
//! - unforgeable without the secret, and checked in constant time;
//! - single-use: a new password (a reset, a change, a login that upgrades an imported hash) or a
//!   login changes what it covers, and it stops working; a failed confirm changes nothing, so the
//!   token stays usable;
//! - bounded in time: refused once `timeout` seconds have passed since it was made.

use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::domain::model::User;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Bytes of the HMAC kept in the token (32 hex characters, the length of Django's).
const MAC_BYTES: usize = 16;
/// Separates this key from every other use of the JWT secret.
const KEY_LABEL: &[u8] = b"accounts/password-reset/v1";

pub struct ResetTokens {
    key: [u8; 32],
    /// Keys derived from retired secrets (key rotation): links they made still work until they expire.
    previous: Vec<[u8; 32]>,
    /// Seconds a token stays valid.
    pub timeout: i64,
}

fn derive(secret: &[u8]) -> [u8; 32] {
    let mut derive = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    derive.update(KEY_LABEL);
    derive.finalize().into_bytes().into()
}

impl ResetTokens {
    pub fn new(secret: &[u8], timeout_seconds: u64) -> Self {
        Self { key: derive(secret), previous: Vec::new(), timeout: timeout_seconds as i64 }
    }

    /// Tokens made under these retired secrets are still accepted.
    pub fn with_previous<'a>(mut self, secrets: impl IntoIterator<Item = &'a [u8]>) -> Self {
        self.previous = secrets.into_iter().map(derive).collect();
        self
    }

    fn mac(&self, user: &User, timestamp: i64) -> HmacSha256 {
        Self::mac_with(&self.key, user, timestamp)
    }

    fn mac_with(key: &[u8; 32], user: &User, timestamp: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
        // Length-prefixed fields, so no two different users/states can produce the same input.
        let last_login = user.last_login.map(|t| t.to_string()).unwrap_or_default();
        for field in [
            user.id.to_string().as_str(),
            &user.password_hash,
            &last_login,
            &user.email.to_lowercase(),
            &timestamp.to_string(),
        ] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        mac
    }

    /// A token for `user`, made at `now` (Unix seconds).
    pub fn make(&self, user: &User, now: i64) -> String {
        let tag = self.mac(user, now).finalize().into_bytes();
        format!("{}-{}", to_base36(now.max(0) as u64), hex::encode(&tag[..MAC_BYTES]))
    }

    /// Whether `token` was made for `user` in its current state and has not expired at `now`.
    pub fn check(&self, user: &User, token: &str, now: i64) -> bool {
        let Some((timestamp, tag)) = token.split_once('-') else { return false };
        let Some(timestamp) = from_base36(timestamp).and_then(|t| i64::try_from(t).ok()) else { return false };
        let Ok(tag) = hex::decode(tag) else { return false };
        if tag.len() != MAC_BYTES || now.saturating_sub(timestamp) > self.timeout {
            return false;
        }
        std::iter::once(&self.key)
            .chain(&self.previous)
            .any(|key| Self::mac_with(key, user, timestamp).verify_truncated_left(&tag).is_ok())
    }
}

/// `35` → `"z"`: lower-case base 36, as Django's `int_to_base36`.
pub fn to_base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII digits")
}

/// `"Z"` or `"z"` → 35; `None` for anything but 1 to 13 base-36 digits that fit in a `u64`.
pub fn from_base36(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 13 || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    u64::from_str_radix(s, 36).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User {
            id: 42,
            username: "ada".into(),
            email: "ada@example.com".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            first_name: String::new(),
            last_name: String::new(),
            nickname: String::new(),
            signature: String::new(),
            avatar: None,
            is_active: true,
            date_joined: 1_000,
            last_login: Some(2_000),
            password_version: 0,
        }
    }

    const DAY: i64 = 86_400;

    #[test]
    fn base36_like_django() {
        assert_eq!(to_base36(0), "0");
        assert_eq!(to_base36(35), "z");
        assert_eq!(to_base36(36), "10");
        assert_eq!(from_base36("10"), Some(36));
        assert_eq!(from_base36("Z"), Some(35));
        assert_eq!(from_base36(&to_base36(u64::MAX)), Some(u64::MAX));
        for bad in ["", "-1", "+1", " 1", "1_0", "zzzzzzzzzzzzzz", "3w5e11264sgsh", "é"] {
            assert_eq!(from_base36(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn token_shape_and_round_trip() {
        let tokens = ResetTokens::new(b"secret-secret-secret-secret-secret", 3 * DAY as u64);
        let now = 1_800_000_000;
        let token = tokens.make(&user(), now);
        let (ts, tag) = token.split_once('-').unwrap();
        assert_eq!(from_base36(ts), Some(now as u64));
        assert_eq!(tag.len(), 32);
        assert!(tokens.check(&user(), &token, now));
        assert!(tokens.check(&user(), &token, now + 3 * DAY), "valid for exactly the timeout");
        assert!(!tokens.check(&user(), &token, now + 3 * DAY + 1), "expired");
    }

    #[test]
    fn token_is_bound_to_the_user_state_and_the_secret() {
        let tokens = ResetTokens::new(b"secret-secret-secret-secret-secret", 3 * DAY as u64);
        let now = 1_800_000_000;
        let token = tokens.make(&user(), now);
        let changed = [
            User { password_hash: "other".into(), ..user() },
            User { last_login: Some(2_001), ..user() },
            User { last_login: None, ..user() },
            User { email: "new@example.com".into(), ..user() },
            User { id: 43, ..user() },
        ];
        for u in changed {
            assert!(!tokens.check(&u, &token, now), "{u:?}");
        }
        let other_secret = ResetTokens::new(b"another-secret-another-secret-xx", 3 * DAY as u64);
        assert!(!other_secret.check(&user(), &token, now));
        // After a key rotation the link still works while the retired secret is kept.
        let rotated = ResetTokens::new(b"another-secret-another-secret-xx", 3 * DAY as u64)
            .with_previous([b"secret-secret-secret-secret-secret".as_slice()]);
        assert!(rotated.check(&user(), &token, now));
        assert!(!rotated.check(&user(), &token, now + 3 * DAY + 1), "still bounded in time");
        // A timestamp moved forward (to extend the token) breaks the HMAC.
        let (_, tag) = token.split_once('-').unwrap();
        assert!(!tokens.check(&user(), &format!("{}-{tag}", to_base36((now + DAY) as u64)), now + 3 * DAY + 10));
        for bad in ["", "-", "x", "abc-", "-abc", &format!("{token}0"), &token[..token.len() - 2], "1-zz"] {
            assert!(!tokens.check(&user(), bad, now), "{bad:?}");
        }
    }
}
