//! The account service: everything the Lambdas and the local server share.
//!
//! - [`domain`]: the model and the account operations, plain functions over the store traits;
//! - [`store`]: the store traits and their two backends (SQLite embedded, DynamoDB);
//! - [`media`]: avatar storage (local folder, S3) and image processing;
//! - [`http`]: the axum handlers, the route table, request parsing and the one error mapping;
//! - [`config`]: every environment variable;
//! - [`jwt_crypto`]: the signature algorithms of the JWTs (HS256, EdDSA);
//! - [`lambda`]: what each function's `main` calls;
//! - [`telemetry`]: the business metrics (CloudWatch embedded metric format in the Lambdas).

#[cfg(feature = "aws")]
pub mod aws;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod jwt_crypto;
pub mod lambda;
pub mod mail;
pub mod media;
pub mod private_files;
#[cfg(feature = "secrets-manager")]
pub mod secrets;
pub mod state;
pub mod store;
pub mod telemetry;
