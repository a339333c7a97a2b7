//! Business metrics: counters the domain bumps at the moments an operator cares about, written by
//! the Lambdas as CloudWatch embedded metric format (EMF) lines on stdout. CloudWatch Logs turns
//! those lines into metrics, so a metric costs no API call, no latency and no IAM grant.
//!
//! The names are the one list the template's alarms and dashboard use (`checks/src/operations.rs`
//! checks them). Namespace `Accounts`, dimensions `Stage` (`STAGE`) and `Function` (the function's
//! name in the route table: `login`, `refresh`...).
//!
//! Only the Lambdas install the EMF recorder (`init_emf`, from `lambda::serve`); elsewhere (the
//! local server, tests) no recorder is installed and counting is a no-op, so local logs stay
//! plain.

use std::sync::OnceLock;

pub const NAMESPACE: &str = "Accounts";
pub const STAGE_DIMENSION: &str = "Stage";
pub const FUNCTION_DIMENSION: &str = "Function";

/// The metric names (each a count per request it happened in).
pub mod names {
    /// A login that started a session.
    pub const LOGIN_SUCCEEDED: &str = "LoginSucceeded";
    /// A login refused for its credentials (wrong password, unknown or inactive user).
    pub const LOGIN_FAILED: &str = "LoginFailed";
    /// A request answered 429 by the attempt counters (login, registration, reset, password change).
    pub const REQUEST_THROTTLED: &str = "RequestThrottled";
    /// A spent refresh token presented after the grace window: its session was ended.
    pub const REFRESH_REUSE_DETECTED: &str = "RefreshReuseDetected";
    pub const PASSWORD_RESET_MAIL_SENT: &str = "PasswordResetMailSent";
    /// A reset e-mail the mail backend refused or failed to take (the client hears nothing).
    pub const PASSWORD_RESET_MAIL_FAILED: &str = "PasswordResetMailFailed";
    /// A new account.
    pub const USER_REGISTERED: &str = "UserRegistered";
    /// A request with a token of the old service (`domain::legacy`): a Bearer access token
    /// accepted or a refresh token exchanged for a session. Down to zero: the cutover is over.
    pub const LEGACY_TOKEN_USED: &str = "LegacyTokenUsed";

    pub const ALL: &[&str] = &[
        LOGIN_SUCCEEDED,
        LOGIN_FAILED,
        REQUEST_THROTTLED,
        REFRESH_REUSE_DETECTED,
        PASSWORD_RESET_MAIL_SENT,
        PASSWORD_RESET_MAIL_FAILED,
        USER_REGISTERED,
        LEGACY_TOKEN_USED,
    ];
}

/// Counts one occurrence of `name` (one of `names`).
pub(crate) fn count(name: &'static str) {
    metrics::counter!(name).increment(1);
}

static COLLECTOR: OnceLock<&'static metrics_cloudwatch_embedded::Collector> = OnceLock::new();

/// Installs the EMF recorder for this process, with the `Stage` and `Function` dimensions.
/// A second call keeps the first recorder (there is one per process).
pub fn init_emf(stage: &str, function: &str) -> Result<(), String> {
    if COLLECTOR.get().is_some() {
        return Ok(());
    }
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .with_dimension(STAGE_DIMENSION, stage.to_string())
        .with_dimension(FUNCTION_DIMENSION, function.to_string())
        .init()
        .map_err(|e| format!("metrics recorder: {e}"))?;
    let _ = COLLECTOR.set(collector);
    Ok(())
}

/// Writes what was counted since the last flush as EMF lines (one per dimension set, none when
/// nothing was counted): after each request, so a frozen Lambda holds no unwritten counts.
pub fn flush(writer: impl std::io::Write) {
    if let Some(collector) = COLLECTOR.get() {
        if let Err(e) = collector.flush(writer) {
            tracing::warn!(error = %e, "metrics not written");
        }
    }
}
