//! The one error type of the service and its mapping to HTTP: every failure a client can see,
//! with the old service's status codes, keys and messages (docs/api.md#error-catalogue).

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::domain::fields::{FieldErrors, NON_FIELD};
use crate::domain::tokens::TokenProblem;
use crate::http::wire::{self, Detail, ErrorBody, TokenMessage};
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

    /// Status, body, and whether the 401 carries `WWW-Authenticate`.
    fn parts(&self) -> (StatusCode, ErrorBody, bool) {
        use StatusCode as S;
        let detail = |text: &str| ErrorBody::Detail(Detail::new(text));
        match self {
            Error::Validation(errors) => (S::BAD_REQUEST, ErrorBody::Fields(wire::FieldErrors(errors.to_map())), false),
            Error::ParseError(text) => (S::BAD_REQUEST, detail(text), false),
            Error::NotAuthenticated => (S::UNAUTHORIZED, detail("Authentication credentials were not provided."), true),
            Error::BadAuthorizationHeader => (
                S::UNAUTHORIZED,
                ErrorBody::Detail(
                    Detail::new("Authorization header must contain two space-delimited values").code("bad_authorization_header"),
                ),
                true,
            ),
            Error::AccessTokenRejected(problem) => (
                S::UNAUTHORIZED,
                ErrorBody::Detail(Detail {
                    messages: Some(vec![TokenMessage { token_class: "AccessToken", token_type: "access", message: problem.message() }]),
                    ..Detail::new("Given token not valid for any token type").code("token_not_valid")
                }),
                true,
            ),
            Error::UserNotFound => (S::UNAUTHORIZED, ErrorBody::Detail(Detail::new("User not found").code("user_not_found")), true),
            Error::UserInactive => (S::UNAUTHORIZED, ErrorBody::Detail(Detail::new("User is inactive").code("user_inactive")), true),
            Error::TokenRejected(problem) => {
                (S::UNAUTHORIZED, ErrorBody::Detail(Detail::new(problem.message()).code("token_not_valid")), true)
            }
            Error::NoActiveAccount => (S::UNAUTHORIZED, detail("No active account found for the given token."), true),
            Error::NoValidRefreshToken => {
                (S::UNAUTHORIZED, ErrorBody::Detail(Detail::new("No valid refresh token found.").code("token_not_valid")), true)
            }
            Error::LogoutTokenRejected(problem) => (S::UNAUTHORIZED, detail(problem.message()), false),
            Error::LogoutMissingRefresh => (S::UNAUTHORIZED, detail("Refresh token was not included in request data."), false),
            Error::VerifyBlacklisted => {
                (S::BAD_REQUEST, ErrorBody::Fields(wire::FieldErrors(FieldErrors::single(NON_FIELD, "Token is blacklisted").to_map())), false)
            }
            Error::NotFound => (S::NOT_FOUND, detail("Not found."), false),
            Error::MethodNotAllowed(method) => (S::METHOD_NOT_ALLOWED, detail(&format!("Method \"{method}\" not allowed.")), false),
            Error::UnsupportedMediaType(ct) => {
                (S::UNSUPPORTED_MEDIA_TYPE, detail(&format!("Unsupported media type \"{ct}\" in request.")), false)
            }
            Error::PayloadTooLarge => (S::PAYLOAD_TOO_LARGE, detail("Request body is too large."), false),
            Error::Throttled { retry_after } => (
                S::TOO_MANY_REQUESTS,
                detail(&format!("Request was throttled. Expected available in {retry_after} seconds.")),
                false,
            ),
            Error::UploadForbidden => (S::FORBIDDEN, detail("This upload URL is invalid or has expired."), false),
            Error::Unavailable(_) | Error::Overloaded => {
                (S::SERVICE_UNAVAILABLE, detail("Service temporarily unavailable, try again later."), false)
            }
            Error::Internal(_) => (S::INTERNAL_SERVER_ERROR, detail("A server error occurred."), false),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match &self {
            Error::Internal(msg) => tracing::error!(error = %msg, "internal error"),
            Error::Unavailable(msg) => tracing::warn!(error = %msg, "storage unavailable"),
            _ => {}
        }
        let (status, body, www_authenticate) = self.parts();
        let mut response = (status, Json(body)).into_response();
        if www_authenticate {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"api\""));
        }
        match self {
            Error::Unavailable(_) | Error::Overloaded => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Error::Throttled { retry_after } => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            _ => {}
        }
        response
    }
}
