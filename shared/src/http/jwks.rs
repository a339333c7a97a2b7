//! `GET /.well-known/jwks.json`: the public keys that verify our tokens (EdDSA mode), so other
//! services can check an access token without our secret. Empty with HS256.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;

use crate::state::AppState;

pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    // Short caching: a rotation publishes the new key before it signs anything (docs/operations.md, key rotation).
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(state.tokens.public_keys().clone()))
}
