//! The account domain: model, validation, passwords, tokens and the operations the endpoints run.

pub mod account;
pub mod avatars;
pub mod credentials;
pub mod devices;
pub mod fields;
pub mod legacy;
pub mod login;
pub mod model;
pub mod password;
pub mod profile;
pub mod registration;
pub mod requests;
pub mod reset_token;
pub mod sessions;
pub mod throttle;
pub mod tokens;
pub mod user;
pub(crate) mod verified_tokens;

pub type Result<T> = std::result::Result<T, crate::error::Error>;

/// Now, in Unix seconds (the stores and tokens take time as an argument, never read a clock).
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
