//! The account domain: model, validation, passwords, tokens and the operations the endpoints run.

pub mod accounts;
pub mod avatars;
pub mod credentials;
pub mod fields;
pub mod model;
pub mod password;
pub mod requests;
pub mod reset_token;
pub mod throttle;
pub mod tokens;
pub mod user;
