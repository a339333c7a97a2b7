//! The HTTP rendering of [`Error`]: the old service's status codes, bodies (`http::wire`) and
//! headers (`WWW-Authenticate`, `Retry-After`) for every failure (docs/api.md#error-catalogue).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::domain::fields::{FieldErrors, NON_FIELD};
use crate::error::Error;
use crate::http::wire::{self, Detail, ErrorBody, TokenMessage};

/// Status, body, and whether the 401 carries `WWW-Authenticate`.
fn parts(error: &Error) -> (StatusCode, ErrorBody, bool) {
    use StatusCode as S;
    let detail = |text: &str| ErrorBody::Detail(Detail::new(text));
    match error {
        Error::Validation(errors) => (S::BAD_REQUEST, ErrorBody::Fields(wire::FieldErrors(errors.to_map())), false),
        Error::ParseError(text) => (S::BAD_REQUEST, detail(text), false),
        Error::NotAuthenticated => (S::UNAUTHORIZED, detail("Authentication credentials were not provided."), true),
        Error::BadAuthorizationHeader => (
            S::UNAUTHORIZED,
            ErrorBody::Detail(
                Detail::new("Authorization header must contain two space-delimited values")
                    .code("bad_authorization_header"),
            ),
            true,
        ),
        Error::AccessTokenRejected(problem) => (
            S::UNAUTHORIZED,
            ErrorBody::Detail(Detail {
                messages: Some(vec![TokenMessage {
                    token_class: "AccessToken",
                    token_type: "access",
                    message: problem.message(),
                }]),
                ..Detail::new("Given token not valid for any token type").code("token_not_valid")
            }),
            true,
        ),
        Error::UserNotFound => {
            (S::UNAUTHORIZED, ErrorBody::Detail(Detail::new("User not found").code("user_not_found")), true)
        }
        Error::UserInactive => {
            (S::UNAUTHORIZED, ErrorBody::Detail(Detail::new("User is inactive").code("user_inactive")), true)
        }
        Error::TokenRejected(problem) => {
            (S::UNAUTHORIZED, ErrorBody::Detail(Detail::new(problem.message()).code("token_not_valid")), true)
        }
        Error::NoActiveAccount => (S::UNAUTHORIZED, detail("No active account found for the given token."), true),
        Error::NoValidRefreshToken => (
            S::UNAUTHORIZED,
            ErrorBody::Detail(Detail::new("No valid refresh token found.").code("token_not_valid")),
            true,
        ),
        Error::LogoutTokenRejected(problem) => (S::UNAUTHORIZED, detail(problem.message()), false),
        Error::LogoutMissingRefresh => {
            (S::UNAUTHORIZED, detail("Refresh token was not included in request data."), false)
        }
        Error::VerifyBlacklisted => (
            S::BAD_REQUEST,
            ErrorBody::Fields(wire::FieldErrors(FieldErrors::single(NON_FIELD, "Token is blacklisted").to_map())),
            false,
        ),
        Error::NotFound => (S::NOT_FOUND, detail("Not found."), false),
        Error::MethodNotAllowed(method) => {
            (S::METHOD_NOT_ALLOWED, detail(&format!("Method \"{method}\" not allowed.")), false)
        }
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

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match &self {
            Error::Internal(msg) => tracing::error!(error = %msg, "internal error"),
            Error::Unavailable(msg) => tracing::warn!(error = %msg, "storage unavailable"),
            _ => {}
        }
        let (status, body, www_authenticate) = parts(&self);
        let mut response = (status, Json(body)).into_response();
        if www_authenticate {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"api\""));
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
