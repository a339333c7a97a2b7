//! `DELETE /api/auth/user/`: the caller deletes its own account (`domain::account`).

use axum::extract::State;
use axum::http::StatusCode;

use crate::domain::account;
use crate::domain::sessions::Authenticated;
use crate::error::Error;
use crate::http::body::Payload;
use crate::http::client_ip::ClientIp;
use crate::state::AppState;

/// 204 with no body once the account is gone.
pub(crate) async fn account_delete(
    State(state): State<AppState>,
    me: Authenticated,
    ClientIp(ip): ClientIp,
    payload: Payload,
) -> Result<StatusCode, Error> {
    let limits = &state.config.limits;
    account::delete_own_account(&*state.store, &*state.media, &me, &payload.data, limits, ip).await?;
    Ok(StatusCode::NO_CONTENT)
}
