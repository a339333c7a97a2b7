//! HTTP: the route table, request parsing, authentication and the handlers, as axum routers.
//! Each Lambda serves the router of its one endpoint; the local server merges them all.

pub mod account;
pub mod auth;
pub mod avatar;
pub mod body;
pub mod client_ip;
pub mod devices;
pub mod endpoints;
mod errors;
pub mod handlers;
pub mod jwks;
pub mod logging;
pub mod media;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod pages;
pub mod passwords;
pub mod routes;
pub(crate) mod wire;

pub use endpoints::{Endpoint, CATCH_ALL_FUNCTION};
pub use routes::{app, catch_all_router, page_router, router};
