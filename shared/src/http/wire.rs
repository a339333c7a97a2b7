//! The bodies the API answers, as types: the handlers and the error mapping serialize these, and
//! the OpenAPI document (`openapi.rs`) takes their schemas from the derived `ToSchema`. Fields are
//! in the order they go on the wire (the old service's); every object is exactly these keys.

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::domain::model::User;
use crate::domain::tokens;

/// A signed token: a compact JWS (header.payload.signature).
#[derive(Debug, Serialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$"))]
pub(crate) struct Jwt(pub String);

/// dj-rest-auth's `UserDetailsSerializer`.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct UserDetails {
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub pk: u64,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

impl From<&User> for UserDetails {
    fn from(user: &User) -> Self {
        Self {
            pk: user.id,
            username: user.username.clone(),
            email: user.email.clone(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
        }
    }
}

/// Login and registration: a new session's pair and its user.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct Login {
    pub access: Jwt,
    pub refresh: Jwt,
    pub user: UserDetails,
}

#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct TokenPair {
    pub access: Jwt,
    pub refresh: Jwt,
}

impl From<tokens::TokenPair> for TokenPair {
    fn from(pair: tokens::TokenPair) -> Self {
        Self { access: Jwt(pair.access), refresh: Jwt(pair.refresh) }
    }
}

/// The library refresh route's pair, with dj-rest-auth's expiration timestamps.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct TokenPairWithExpiration {
    pub access: Jwt,
    pub refresh: Jwt,
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub access_expiration: String,
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub refresh_expiration: String,
}

/// token/verify's answer: `{}` (braces, not a unit struct, which would be `null`).
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct Verified {}

/// A success that only says what happened.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct Message {
    pub detail: &'static str,
}

/// The profile: exactly the old service's six keys; `avatar` an absolute URL or null.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct Profile {
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub id: u64,
    pub username: String,
    pub email: String,
    pub nickname: String,
    pub signature: String,
    #[cfg_attr(feature = "openapi", schema(required = true, format = "uri"))]
    pub avatar: Option<String>,
}

/// A grant to upload an avatar file directly.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct DirectUpload {
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9a-f]{32}$"))]
    pub upload_id: String,
    #[cfg_attr(feature = "openapi", schema(format = "uri"))]
    pub upload_url: String,
    pub method: String,
    /// Every header the upload must send (in this order).
    #[serde(serialize_with = "as_map")]
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::BTreeMap<String, String>))]
    pub headers: Vec<(String, String)>,
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub expires_in: u64,
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub max_bytes: u64,
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub size: u64,
}

fn as_map<S: Serializer>(pairs: &[(String, String)], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

/// One of the caller's sessions (a signed-in device), as `GET /api/auth/sessions/` lists them.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct SessionInfo {
    /// The session's id: the `sid` claim of its tokens.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[-_0-9A-Za-z]+$"))]
    pub id: String,
    /// `X-Device-Name` at login or registration, else the `User-Agent` (at most 200
    /// characters); empty when neither was sent.
    #[cfg_attr(feature = "openapi", schema(max_length = 200))]
    pub device: String,
    /// The client's address at login or registration; empty when unknown.
    pub ip: String,
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub created_at: String,
    /// The last refresh (the login, before one).
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub last_used_at: String,
    /// The session of the token this request was made with.
    pub current: bool,
}

/// The caller's sessions, most recently used first.
#[derive(Debug, Serialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = Vec<SessionInfo>))]
pub(crate) struct Sessions(pub Vec<SessionInfo>);

/// The reset link's target echoes its two path parameters.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct ResetLink {
    pub uid: String,
    pub token: String,
}

// ---- errors ------------------------------------------------------------------------------------

/// An error that is not about one field (simplejwt adds `code` and `messages`).
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct Detail {
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<TokenMessage>>,
}

impl Detail {
    pub fn new(detail: impl Into<String>) -> Self {
        Self { detail: detail.into(), code: None, messages: None }
    }

    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
}

/// simplejwt's account of why an access token was refused.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub(crate) struct TokenMessage {
    pub token_class: &'static str,
    pub token_type: &'static str,
    pub message: &'static str,
}

/// Messages by field, in the order found; errors of no one field under `non_field_errors`.
#[derive(Debug, Serialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = std::collections::BTreeMap<String, Vec<String>>))]
pub(crate) struct FieldErrors(pub Map<String, Value>);

/// The body of an error answer: field errors (400) or a detail.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum ErrorBody {
    Fields(FieldErrors),
    Detail(Detail),
}
