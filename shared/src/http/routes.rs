//! The routers, built from the route table (`http::endpoints`): what one Lambda serves (its one
//! endpoint), the catch-all function, and the whole API as the local server serves it.

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::{middleware, Router};

use crate::domain::sessions::Authenticated;
use crate::error::Error;
use crate::http::endpoints::Endpoint;
use crate::http::{auth, handlers, logging, pages};
use crate::state::AppState;

/// The handlers of each endpoint, by method.
///
/// Always inlined: a function's `main` calls `lambda::serve` with its endpoint as a constant, so
/// this `match` folds away there and the Lambda links its own endpoint's handlers (and the domain
/// code behind them) and no other's. A run-time choice linked every endpoint into every function
/// (issue 17: 3.46 MB zipped for profile, over the 3 MB aim; `scripts/build-lambdas` prints them).
#[inline(always)]
pub(crate) fn handlers(endpoint: Endpoint) -> MethodRouter<AppState> {
    use handlers as h;
    match endpoint {
        Endpoint::Registration => post(h::registration),
        Endpoint::Login => post(h::login),
        Endpoint::Refresh => post(h::refresh),
        Endpoint::TokenRefresh => post(h::token_refresh),
        Endpoint::TokenVerify => post(h::token_verify),
        Endpoint::Logout => post(h::logout),
        Endpoint::UserDetails => get(h::user_details_get).put(h::user_details_put).patch(h::user_details_patch),
        Endpoint::AccountDeletion => delete(crate::http::account::account_delete),
        Endpoint::Profile => get(h::profile_get).put(h::profile_update).patch(h::profile_update),
        Endpoint::AvatarUpload => post(crate::http::avatar::avatar_upload),
        Endpoint::AvatarConfirm => post(crate::http::avatar::avatar_confirm),
        Endpoint::PasswordChange => post(crate::http::passwords::password_change),
        Endpoint::Sessions => get(crate::http::devices::list).delete(crate::http::devices::end_others),
        Endpoint::Session => delete(crate::http::devices::end),
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
        // Pages are routed by `page_router`, outside the API's layers (no store, no keys).
        Endpoint::AccountDeletePage => MethodRouter::new(),
    }
}

/// The endpoints by path, in route-table order: two endpoints may share a path with different
/// methods (`UserDetails` and `AccountDeletion`), and a path is routed once.
fn by_path(endpoints: &[Endpoint]) -> Vec<(&'static str, Vec<Endpoint>)> {
    let mut paths: Vec<(&'static str, Vec<Endpoint>)> = Vec::new();
    for endpoint in endpoints {
        match paths.iter_mut().find(|(path, _)| *path == endpoint.path()) {
            Some((_, on_path)) => on_path.push(*endpoint),
            None => paths.push((endpoint.path(), vec![*endpoint])),
        }
    }
    paths
}

/// The handlers of the endpoints of one path, and the 405 (or 401) of every other method.
fn method_router(on_path: &[Endpoint]) -> MethodRouter<AppState> {
    let requires_auth = on_path.iter().any(|e| e.requires_auth());
    let handlers = on_path.iter().fold(MethodRouter::new(), |methods, e| methods.merge(handlers(*e)));
    refusing_other_methods(handlers, requires_auth)
}

/// `methods`, and the 405 (or 401) of every other method.
fn refusing_other_methods(methods: MethodRouter<AppState>, requires_auth: bool) -> MethodRouter<AppState> {
    methods.fallback(move |req: Request| async move { method_not_allowed(requires_auth, req) })
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
    let (pages, api): (Vec<Endpoint>, Vec<Endpoint>) = endpoints.iter().copied().partition(|e| e.needs().static_page);
    if api.is_empty() {
        // A page's own function: no state, no authentication layer.
        return page_router(&pages).fallback(|| async { Error::NotFound });
    }
    let mut router = Router::new();
    for (_, on_path) in by_path(&api) {
        for path in on_path[0].paths() {
            router = router.route(path, method_router(&on_path));
        }
    }
    with_layers(router, state).merge(page_router(&pages))
}

/// What one Lambda serves: its endpoint's paths with `methods`, the endpoint's handlers
/// (`handlers(endpoint)`, which the caller resolves where `endpoint` is a constant). The same
/// router as `router(&[endpoint], state)`, which tests and the local server use.
pub(crate) fn endpoint_router(endpoint: Endpoint, methods: MethodRouter<AppState>, state: AppState) -> Router {
    let methods = refusing_other_methods(methods, endpoint.requires_auth());
    let router = endpoint.paths().into_iter().fold(Router::new(), |router, path| router.route(path, methods.clone()));
    with_layers(router, state)
}

/// The routes of static pages (`http::pages`): no state, so no authentication layer; the request
/// log and span as everywhere. Without a fallback, so it merges into the API's router.
pub fn page_router(pages: &[Endpoint]) -> Router {
    let mut router = Router::new();
    for page in pages {
        let Some(handlers) = pages::handlers(*page) else { continue };
        let handlers = handlers.fallback(|req: Request| async move { method_not_allowed(false, req) });
        for path in page.paths() {
            router = router.route(path, handlers.clone());
        }
    }
    if pages.is_empty() {
        return router;
    }
    router.route_layer(middleware::from_fn(logging::log_request)).layer(logging::RequestSpanLayer)
}

/// What every router has around its routes: authentication and the request log, the JSON 404,
/// the body limit and the request span.
/// As few layers as can be: axum boxes a route again at every `layer` call and clones each box
/// on every request, and each `from_fn` layer boxes and clones again (issue 17: 66 of a profile
/// GET's allocations with four calls and three `from_fn`s; tower layers instead need none).
fn with_layers(router: Router<AppState>, state: AppState) -> Router {
    // The request log is taken around authentication, so refused credentials are logged too.
    let per_route = auth::AuthenticationLayer(state.clone());
    let outer = tower::ServiceBuilder::new()
        // Outermost: whatever answers (a route, the fallback, a refused body) logs in the span.
        .layer(logging::RequestSpanLayer)
        .layer(axum::extract::DefaultBodyLimit::max(state.config.max_body_bytes));
    router.route_layer(per_route).fallback(|| async { Error::NotFound }).layer(outer).with_state(state)
}

/// The catch-all function's router: every path of the route table with no method of its own
/// (405 JSON, or 401 first on a protected endpoint without a valid token, as the local server),
/// and 404 JSON for every other path.
pub fn catch_all_router(state: AppState) -> Router {
    let mut router = Router::new();
    for (_, on_path) in by_path(Endpoint::ALL) {
        let requires_auth = on_path.iter().any(|e| e.requires_auth());
        for path in on_path[0].paths() {
            let refuse = move |req: Request| async move { method_not_allowed(requires_auth, req) };
            router = router.route(path, MethodRouter::new().fallback(refuse));
        }
    }
    with_layers(router, state)
}

/// The whole API, as the local server serves it, with the media routes (`/media/...`) that
/// CloudFront and S3 answer in the cloud.
pub fn app(state: AppState) -> Router {
    router(Endpoint::ALL, state.clone()).merge(crate::http::media::router(state))
}
