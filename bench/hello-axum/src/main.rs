//! The limit of the read benchmarks: a bare axum server (same axum, tokio and release profile as
//! the local server) answering the paths bench/run measures with a small JSON body, no state,
//! no middleware. `bench/run` runs it under the same wrk settings as the local server, in the
//! same run, and reports profile GET and token verify as a fraction of its rate.
//!
//!     BIND=127.0.0.1:8712 hello-axum

use axum::routing::{get, post};
use axum::Router;

const BODY: &str = r#"{"id":1,"username":"hello","email":"","nickname":"","signature":"","avatar":null}"#;

async fn small_json() -> ([(&'static str, &'static str); 1], &'static str) {
    ([("content-type", "application/json")], BODY)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8712".into());
    let app = Router::new()
        .route("/api/accounts/profile/", get(small_json))
        .route("/api/auth/token/verify/", post(small_json));
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    axum::serve(listener, app).await
}
