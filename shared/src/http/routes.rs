//! The route table: every endpoint, its Lambda function, its path and its methods, in one place.
//! The Lambdas, the local server and the checks of `template.yaml` all read it.

use axum::extract::Request;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{middleware, Router};

use crate::domain::sessions::Authenticated;
use crate::error::Error;
use crate::http::{auth, handlers, logging};
use crate::state::AppState;

/// One endpoint = one Lambda function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Registration,
    Login,
    Refresh,
    TokenRefresh,
    TokenVerify,
    Logout,
    UserDetails,
    Profile,
    AvatarUpload,
    AvatarConfirm,
    PasswordChange,
    PasswordReset,
    PasswordResetConfirm,
    /// The link in the reset e-mail (`{uid}` and `{token}` are path parameters).
    PasswordResetLink,
    /// The public keys of EdDSA signing.
    Jwks,
    /// The OpenAPI document of the API.
    Schema,
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
}

impl Needs {
    const NOTHING: Needs = Needs { media: false, images: false, mail: false, openapi: false };

    /// The `accounts` features of a Lambda function with these needs (its store is DynamoDB,
    /// its signing keys come from Secrets Manager; the embedded store, `sqlite`, is its crate's
    /// `embedded` feature, for local runs).
    pub fn lambda_features(self) -> Vec<&'static str> {
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
        Endpoint::Profile,
        Endpoint::AvatarUpload,
        Endpoint::AvatarConfirm,
        Endpoint::PasswordChange,
        Endpoint::PasswordReset,
        Endpoint::PasswordResetConfirm,
        Endpoint::PasswordResetLink,
        Endpoint::Jwks,
        Endpoint::Schema,
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
            Endpoint::Profile => "profile",
            Endpoint::AvatarUpload => "avatar-upload",
            Endpoint::AvatarConfirm => "avatar-confirm",
            Endpoint::PasswordChange => "password-change",
            Endpoint::PasswordReset => "password-reset",
            Endpoint::PasswordResetConfirm => "password-reset-confirm",
            Endpoint::PasswordResetLink => "password-reset-link",
            Endpoint::Jwks => "jwks",
            Endpoint::Schema => "schema",
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
            Endpoint::UserDetails => "/api/auth/user/",
            Endpoint::Profile => "/api/accounts/profile/",
            Endpoint::AvatarUpload => "/api/accounts/profile/avatar/upload/",
            Endpoint::AvatarConfirm => "/api/accounts/profile/avatar/confirm/",
            Endpoint::PasswordChange => "/api/auth/password/change/",
            Endpoint::PasswordReset => "/api/auth/password/reset/",
            Endpoint::PasswordResetConfirm => "/api/auth/password/reset/confirm/",
            Endpoint::PasswordResetLink => "/password-reset/confirm/{uid}/{token}/",
            Endpoint::Jwks => "/.well-known/jwks.json",
            Endpoint::Schema => "/api/schema/",
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
        const READ_WRITE: &[Method] = &[Method::GET, Method::PUT, Method::PATCH];
        match self {
            Endpoint::UserDetails | Endpoint::Profile => READ_WRITE,
            Endpoint::PasswordResetLink | Endpoint::Jwks | Endpoint::Schema => GET,
            _ => POST,
        }
    }

    /// Whether every method needs a valid access token.
    pub const fn requires_auth(self) -> bool {
        matches!(self, Endpoint::UserDetails | Endpoint::Profile | Endpoint::AvatarUpload | Endpoint::AvatarConfirm | Endpoint::PasswordChange)
    }

    pub const fn needs(self) -> Needs {
        match self {
            Endpoint::Profile | Endpoint::AvatarConfirm => Needs { media: true, images: true, ..Needs::NOTHING },
            Endpoint::AvatarUpload => Needs { media: true, ..Needs::NOTHING },
            Endpoint::PasswordReset => Needs { mail: true, ..Needs::NOTHING },
            Endpoint::Schema => Needs { openapi: true, ..Needs::NOTHING },
            _ => Needs::NOTHING,
        }
    }

    pub fn from_function(name: &str) -> Option<Endpoint> {
        Endpoint::ALL.iter().copied().find(|e| e.function() == name)
    }

    fn handlers(self) -> MethodRouter<AppState> {
        use handlers as h;
        match self {
            Endpoint::Registration => post(h::registration),
            Endpoint::Login => post(h::login),
            Endpoint::Refresh => post(h::refresh),
            Endpoint::TokenRefresh => post(h::token_refresh),
            Endpoint::TokenVerify => post(h::token_verify),
            Endpoint::Logout => post(h::logout),
            Endpoint::UserDetails => {
                get(h::user_details_get).put(h::user_details_put).patch(h::user_details_patch)
            }
            Endpoint::Profile => get(h::profile_get).put(h::profile_update).patch(h::profile_update),
            Endpoint::AvatarUpload => post(crate::http::avatar::avatar_upload),
            Endpoint::AvatarConfirm => post(crate::http::avatar::avatar_confirm),
            Endpoint::PasswordChange => post(crate::http::passwords::password_change),
            Endpoint::PasswordReset => post(crate::http::passwords::password_reset),
            Endpoint::PasswordResetConfirm => post(crate::http::passwords::password_reset_confirm),
            Endpoint::PasswordResetLink => get(crate::http::passwords::password_reset_link),
            Endpoint::Jwks => get(crate::http::jwks::jwks),
            #[cfg(feature = "openapi")]
            Endpoint::Schema => get(crate::http::openapi::schema),
            // A function built without the document refuses to start as the schema endpoint
            // (`lambda::missing_feature`); the others never route it.
            #[cfg(not(feature = "openapi"))]
            Endpoint::Schema => get(|| async { Error::NotFound }),
        }
    }

    fn method_router(self) -> MethodRouter<AppState> {
        let requires_auth = self.requires_auth();
        self.handlers().fallback(move |req: Request| async move { method_not_allowed(requires_auth, req) })
    }
}

/// 405 JSON; on a protected endpoint an anonymous caller hears 401 first, as in the old service.
fn method_not_allowed(requires_auth: bool, req: Request) -> Response {
    if requires_auth && req.extensions().get::<Authenticated>().is_none() {
        return Error::NotAuthenticated.into_response();
    }
    Error::MethodNotAllowed(req.method().clone()).into_response()
}

/// The router of some endpoints: what one Lambda serves (one endpoint) or the local server (all).
pub fn router(endpoints: &[Endpoint], state: AppState) -> Router {
    let mut router = Router::new();
    for endpoint in endpoints {
        for path in endpoint.paths() {
            router = router.route(path, endpoint.method_router());
        }
    }
    router
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::authenticate))
        // Outside the authentication layer, so refused credentials are logged too.
        .route_layer(middleware::from_fn(logging::log_request))
        .fallback(|| async { Error::NotFound })
        .layer(axum::extract::DefaultBodyLimit::max(state.config.max_body_bytes))
        // Outermost: whatever answers (a route, the fallback, a refused body) logs in the span.
        .layer(middleware::from_fn(logging::request_span))
        .with_state(state)
}

/// The function of the API's catch-all route (`$default` in API Gateway, the fallback routes of
/// `cargo lambda watch`): what no endpoint's route takes, a path of no endpoint or a method an
/// endpoint does not answer, is answered from the route table as the local server answers it.
pub const CATCH_ALL_FUNCTION: &str = "not-found";

/// The catch-all function's router: every path of the route table with no method of its own
/// (405 JSON, or 401 first on a protected endpoint without a valid token, as the local server),
/// and 404 JSON for every other path.
pub fn catch_all_router(state: AppState) -> Router {
    let mut router = Router::new();
    for endpoint in Endpoint::ALL {
        let requires_auth = endpoint.requires_auth();
        for path in endpoint.paths() {
            let refuse = move |req: Request| async move { method_not_allowed(requires_auth, req) };
            router = router.route(path, MethodRouter::new().fallback(refuse));
        }
    }
    router
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .route_layer(middleware::from_fn(logging::log_request))
        .fallback(|| async { Error::NotFound })
        .layer(axum::extract::DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state)
}

/// The whole API, as the local server serves it, with the media routes (`/media/...`) that
/// CloudFront and S3 answer in the cloud.
pub fn app(state: AppState) -> Router {
    router(Endpoint::ALL, state.clone()).merge(crate::media::serve::router(state))
}
