//! The one error type of the service: every failure a client can see (its HTTP rendering is
//! `http::errors`),
//! with the old service's status codes, keys and messages (docs/api.md#error-catalogue).

use axum::http::Method;

use crate::domain::fields::{FieldErrors, NON_FIELD};
use crate::domain::tokens::TokenProblem;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400 with a field → messages map.
    #[error("validation failed")]
    Validation(FieldErrors),
    /// A body that could not be parsed: 400 with the parser's message as `detail`.
    #[error("unparseable body: {0}")]
    ParseError(String),
    /// No (Bearer) credentials where they are needed.
    #[error("not authenticated")]
    NotAuthenticated,
    /// `Bearer` with no token, or with more than one value.
    #[error("bad authorization header")]
    BadAuthorizationHeader,
    /// A Bearer token that is not a usable access token (the authentication layer's shape).
    #[error("access token rejected: {0:?}")]
    AccessTokenRejected(TokenProblem),
    #[error("user not found")]
    UserNotFound,
    #[error("user inactive")]
    UserInactive,
    /// A token in a request body rejected by refresh or verify.
    #[error("token rejected: {0:?}")]
    TokenRejected(TokenProblem),
    /// Refresh for an inactive or deleted user.
    #[error("no active account")]
    NoActiveAccount,
    /// The library refresh route without a `refresh` field.
    #[error("no valid refresh token")]
    NoValidRefreshToken,
    /// Logout's own 401s: just a detail, no code, no `WWW-Authenticate`.
    #[error("logout rejected: {0:?}")]
    LogoutTokenRejected(TokenProblem),
    #[error("logout without refresh token")]
    LogoutMissingRefresh,
    /// token/verify with a blacklisted refresh token: a 400, as in the old service.
    #[error("verified token is blacklisted")]
    VerifyBlacklisted,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed(Method),
    #[error("unsupported media type")]
    UnsupportedMediaType(String),
    #[error("request body too large")]
    PayloadTooLarge,
    /// Over a throttling limit: 429 with `Retry-After`.
    #[error("throttled for {retry_after} s")]
    Throttled { retry_after: u64 },
    /// A direct upload without a valid grant for its key (what S3 answers a bad presigned URL).
    #[error("upload not allowed")]
    UploadForbidden,
    /// Storage did not answer in time: worth retrying.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Too many password checks already waiting for a CPU (`domain::password::blocking`):
    /// refused at once rather than queued without bound.
    #[error("overloaded")]
    Overloaded,
    /// A bug or corrupt data; the details go to the log, not to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<FieldErrors> for Error {
    fn from(errors: FieldErrors) -> Self {
        Error::Validation(errors)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(msg) => Error::Unavailable(msg),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<crate::media::MediaError> for Error {
    fn from(e: crate::media::MediaError) -> Self {
        match e {
            crate::media::MediaError::Unavailable(msg) => Error::Unavailable(msg),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl Error {
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Error::Validation(FieldErrors::single(field, message))
    }

    pub fn non_field(message: impl Into<String>) -> Self {
        Self::field(NON_FIELD, message)
    }
}
