//! The route table: every endpoint, its Lambda function, its paths and methods and what it needs,
//! in one place. The Lambdas, the local server, the OpenAPI document, `cargo lambda watch`'s
//! router and the checks of `template.yaml` all read it; `http::routes` builds the routers from it.

use axum::http::Method;

/// One endpoint = one Lambda function. Two endpoints may share a path with different methods
/// (`UserDetails` and `AccountDeletion`): the routers merge them, API Gateway routes each method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Registration,
    Login,
    Refresh,
    TokenRefresh,
    TokenVerify,
    Logout,
    UserDetails,
    /// `DELETE /api/auth/user/`: the caller's account (its own function beside `UserDetails`).
    AccountDeletion,
    Profile,
    AvatarUpload,
    AvatarConfirm,
    PasswordChange,
    /// The caller's sessions: the list (GET), "log out other devices" (DELETE).
    Sessions,
    /// One of the caller's sessions (`{id}`): DELETE ends it.
    Session,
    PasswordReset,
    PasswordResetConfirm,
    /// The link in the reset e-mail (`{uid}` and `{token}` are path parameters).
    PasswordResetLink,
    /// The public keys of EdDSA signing.
    Jwks,
    /// The OpenAPI document of the API.
    Schema,
    /// The web page that deletes an account (HTML; it calls the API from the browser).
    AccountDeletePage,
}

/// What an endpoint uses besides the store and the signing keys, so what its function must be
/// built with: the `accounts` features its crate under `functions/` enables (checked by
/// `checks/src/template.rs`, and by the function itself when it starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    /// Avatar storage: the bucket (feature `s3`) when `MEDIA_BUCKET` is set.
    pub media: bool,
    /// Decoding uploaded images (feature `images`).
    pub images: bool,
    /// Sending e-mail: SES (feature `ses`) when the mail backend is SES.
    pub mail: bool,
    /// The OpenAPI document (feature `openapi`).
    pub openapi: bool,
    /// A static web page: HTML from the binary alone, so its function opens no store, reads no
    /// signing keys and has no AWS permission at all (no `accounts` feature). Not an operation
    /// of the API: it is left out of the OpenAPI document.
    pub static_page: bool,
}

impl Needs {
    const NOTHING: Needs = Needs { media: false, images: false, mail: false, openapi: false, static_page: false };

    /// The `accounts` features of a Lambda function with these needs (its store is DynamoDB,
    /// its signing keys come from Secrets Manager; the embedded store, `sqlite`, is its crate's
    /// `embedded` feature, for local runs).
    pub fn lambda_features(self) -> Vec<&'static str> {
        if self.static_page {
            return Vec::new();
        }
        let mut features = vec!["dynamodb", "secrets-manager"];
        if self.media {
            features.push("s3");
        }
        if self.images {
            features.push("images");
        }
        if self.mail {
            features.push("ses");
        }
        if self.openapi {
            features.push("openapi");
        }
        features
    }
}

impl Endpoint {
    pub const ALL: &'static [Endpoint] = &[
        Endpoint::Registration,
        Endpoint::Login,
        Endpoint::Refresh,
        Endpoint::TokenRefresh,
        Endpoint::TokenVerify,
        Endpoint::Logout,
        Endpoint::UserDetails,
        Endpoint::AccountDeletion,
        Endpoint::Profile,
        Endpoint::AvatarUpload,
        Endpoint::AvatarConfirm,
        Endpoint::PasswordChange,
        Endpoint::Sessions,
        Endpoint::Session,
        Endpoint::PasswordReset,
        Endpoint::PasswordResetConfirm,
        Endpoint::PasswordResetLink,
        Endpoint::Jwks,
        Endpoint::Schema,
        Endpoint::AccountDeletePage,
    ];

    /// The function's crate and binary name under `functions/`.
    pub const fn function(self) -> &'static str {
        match self {
            Endpoint::Registration => "registration",
            Endpoint::Login => "login",
            Endpoint::Refresh => "refresh",
            Endpoint::TokenRefresh => "token-refresh",
            Endpoint::TokenVerify => "token-verify",
            Endpoint::Logout => "logout",
            Endpoint::UserDetails => "user-details",
            Endpoint::AccountDeletion => "account-deletion",
            Endpoint::Profile => "profile",
            Endpoint::AvatarUpload => "avatar-upload",
            Endpoint::AvatarConfirm => "avatar-confirm",
            Endpoint::PasswordChange => "password-change",
            Endpoint::Sessions => "sessions",
            Endpoint::Session => "session",
            Endpoint::PasswordReset => "password-reset",
            Endpoint::PasswordResetConfirm => "password-reset-confirm",
            Endpoint::PasswordResetLink => "password-reset-link",
            Endpoint::Jwks => "jwks",
            Endpoint::Schema => "schema",
            Endpoint::AccountDeletePage => "account-delete-page",
        }
    }

    /// The canonical path (with the trailing slash, where it has one: the path without it answers too).
    pub const fn path(self) -> &'static str {
        match self {
            Endpoint::Registration => "/api/auth/registration/",
            Endpoint::Login => "/api/auth/login/",
            Endpoint::Refresh => "/api/auth/refresh/",
            Endpoint::TokenRefresh => "/api/auth/token/refresh/",
            Endpoint::TokenVerify => "/api/auth/token/verify/",
            Endpoint::Logout => "/api/auth/logout/",
            Endpoint::UserDetails | Endpoint::AccountDeletion => "/api/auth/user/",
            Endpoint::Profile => "/api/accounts/profile/",
            Endpoint::AvatarUpload => "/api/accounts/profile/avatar/upload/",
            Endpoint::AvatarConfirm => "/api/accounts/profile/avatar/confirm/",
            Endpoint::PasswordChange => "/api/auth/password/change/",
            Endpoint::Sessions => "/api/auth/sessions/",
            Endpoint::Session => "/api/auth/sessions/{id}/",
            Endpoint::PasswordReset => "/api/auth/password/reset/",
            Endpoint::PasswordResetConfirm => "/api/auth/password/reset/confirm/",
            Endpoint::PasswordResetLink => "/password-reset/confirm/{uid}/{token}/",
            Endpoint::Jwks => "/.well-known/jwks.json",
            Endpoint::Schema => "/api/schema/",
            Endpoint::AccountDeletePage => "/account/delete/",
        }
    }

    /// Every spelling of the path: with and without the trailing slash (a file-like path such
    /// as `/.well-known/jwks.json` has only the one).
    pub fn paths(self) -> Vec<&'static str> {
        let path = self.path();
        let bare = path.trim_end_matches('/');
        if bare == path {
            vec![path]
        } else {
            vec![path, bare]
        }
    }

    /// The methods the endpoint answers (HEAD goes with GET).
    pub fn methods(self) -> &'static [Method] {
        const POST: &[Method] = &[Method::POST];
        const GET: &[Method] = &[Method::GET];
        const DELETE: &[Method] = &[Method::DELETE];
        const READ_WRITE: &[Method] = &[Method::GET, Method::PUT, Method::PATCH];
        match self {
            Endpoint::UserDetails | Endpoint::Profile => READ_WRITE,
            Endpoint::Sessions => &[Method::GET, Method::DELETE],
            Endpoint::Session => &[Method::DELETE],
            Endpoint::PasswordResetLink | Endpoint::Jwks | Endpoint::Schema | Endpoint::AccountDeletePage => GET,
            Endpoint::AccountDeletion => DELETE,
            _ => POST,
        }
    }

    /// Whether every method needs a valid access token.
    pub const fn requires_auth(self) -> bool {
        matches!(
            self,
            Endpoint::UserDetails
                | Endpoint::AccountDeletion
                | Endpoint::Profile
                | Endpoint::AvatarUpload
                | Endpoint::AvatarConfirm
                | Endpoint::PasswordChange
                | Endpoint::Sessions
                | Endpoint::Session
        )
    }

    pub const fn needs(self) -> Needs {
        match self {
            Endpoint::Profile | Endpoint::AvatarConfirm => Needs { media: true, images: true, ..Needs::NOTHING },
            Endpoint::AvatarUpload | Endpoint::AccountDeletion => Needs { media: true, ..Needs::NOTHING },
            Endpoint::AccountDeletePage => Needs { static_page: true, ..Needs::NOTHING },
            Endpoint::PasswordReset => Needs { mail: true, ..Needs::NOTHING },
            Endpoint::Schema => Needs { openapi: true, ..Needs::NOTHING },
            _ => Needs::NOTHING,
        }
    }

    pub fn from_function(name: &str) -> Option<Endpoint> {
        Endpoint::ALL.iter().copied().find(|e| e.function() == name)
    }
}

/// The function of the API's catch-all route (`$default` in API Gateway, the fallback routes of
/// `cargo lambda watch`): what no endpoint's route takes, a path of no endpoint or a method an
/// endpoint does not answer, is answered from the route table as the local server answers it.
pub const CATCH_ALL_FUNCTION: &str = "not-found";
