//! SDK errors and transaction cancellations as `StoreError`s (transient ones as `Unavailable`).

use super::*;

// ----- errors --------------------------------------------------------------------------------

pub(super) fn built<T, E: std::fmt::Display>(result: Result<T, E>) -> StoreResult<T> {
    result.map_err(|e| StoreError::Backend(format!("building a DynamoDB request: {e}")))
}

/// Cancellation reasons that mean "try again later".
pub(super) const TRANSIENT_REASONS: &[&str] =
    &[TRANSACTION_CONFLICT, "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"];

pub(super) fn cancelled(codes: &[String]) -> StoreError {
    let message = format!("transaction cancelled ({})", codes.join(", "));
    if codes.iter().any(|c| TRANSIENT_REASONS.contains(&c.as_str())) {
        StoreError::Unavailable(message)
    } else {
        StoreError::Backend(message)
    }
}

pub(super) fn error_code<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<&str> {
    err.as_service_error().and_then(|e| e.code())
}

pub(super) fn is_condition_failure<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    error_code(err) == Some("ConditionalCheckFailedException")
}

/// The result of a single conditional write: whether its condition held (and it was written).
pub(super) fn condition_held<T, E>(result: Result<T, SdkError<E, HttpResponse>>) -> StoreResult<bool>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_condition_failure(&e) => Ok(false),
        Err(e) => Err(sdk_error(e)),
    }
}

/// Error codes that mean "try again later" rather than "this request is wrong".
pub(super) const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TransactionConflictException",
    "TransactionInProgressException",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
];

/// `Unavailable` for what a retry may fix (timeouts, connection failures, throttling, 5xx),
/// `Backend` for the rest.
pub(super) fn sdk_error<E>(err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let transient = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => true,
        SdkError::ResponseError(e) => e.raw().status().is_server_error(),
        SdkError::ServiceError(e) => {
            e.raw().status().is_server_error() || e.err().code().is_some_and(|code| TRANSIENT_CODES.contains(&code))
        }
        _ => false,
    };
    let message = match &err {
        SdkError::ServiceError(e) => {
            format!("DynamoDB {}: {}", e.err().code().unwrap_or("error"), e.err().message().unwrap_or("(no message)"))
        }
        _ => format!("DynamoDB: {}", DisplayErrorContext(&err)),
    };
    if transient {
        StoreError::Unavailable(message)
    } else {
        StoreError::Backend(message)
    }
}
