//! What the tests of the workspace (and the benchmark tools) share: an in-process API with a small
//! client that calls the router directly ([`TestApp`]), stores and buckets on the emulator
//! ([`dynamo`], [`s3`]), the local outbox ([`outbox`]), and a Lambda Runtime API with API Gateway
//! events ([`lambda`]). Real parts only: SQLite, moto with the real SDK clients, real processes.

use std::sync::Arc;

pub mod dynamo;
pub mod lambda;
pub mod outbox;
pub mod s3;

use accounts::config::Config;
use accounts::state::AppState;
use accounts::store::sqlite::SqliteStore;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// The store an in-process app runs on: the embedded SQLite store, or DynamoDB on the emulator
/// (fresh tables each time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Dynamo,
}

impl Backend {
    /// The API on a fresh, empty store of this backend, with extra configuration.
    pub async fn app(self, env: &[(&str, &str)]) -> TestApp {
        match self {
            Backend::Sqlite => TestApp::with_env(env),
            Backend::Dynamo => {
                let (store, _) = dynamo::fresh_dynamo().await;
                TestApp::with_store(Arc::new(store), tempfile::tempdir().unwrap(), env)
            }
        }
    }
}

/// Every [`Backend`], for suites that run on each (`conformance!([sqlite, dynamodb] { .. })`).
pub mod backends {
    use super::Backend;

    pub async fn sqlite() -> Backend {
        Backend::Sqlite
    }

    pub async fn dynamodb() -> Backend {
        Backend::Dynamo
    }
}

pub const SECRET: &str = "http-tests-secret-http-tests-secret-0123";
pub const STRONG: &str = "xk29!pLm#q";

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    _dir: tempfile::TempDir,
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn www_authenticate(&self) -> Option<&str> {
        self.headers.get("www-authenticate").and_then(|v| v.to_str().ok())
    }
}

impl Default for TestApp {
    fn default() -> Self {
        Self::new()
    }
}

impl TestApp {
    pub fn new() -> Self {
        Self::with_env(&[])
    }

    pub fn with_env(extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        Self::with_store(store, dir, extra)
    }

    /// The API on the given store (`dir` is kept alive as the data folder).
    pub fn with_store(store: accounts::store::SharedStore, dir: tempfile::TempDir, extra: &[(&str, &str)]) -> Self {
        let data_dir = dir.path().to_str().unwrap().to_string();
        let mut vars: Vec<(String, String)> =
            vec![("DATA_DIR".into(), data_dir.clone()), ("JWT_SECRET".into(), SECRET.into())];
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = Config::from_lookup(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())).unwrap();
        let state = AppState::new(store, config);
        Self { router: accounts::http::app(state.clone()), state, _dir: dir }
    }

    /// The same API with another media store (a test double around the configured one).
    pub fn with_media(mut self, media: accounts::media::SharedMedia) -> Self {
        self.state = self.state.changed(|state| state.media = media);
        self.router = accounts::http::app(self.state.clone());
        self
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        // A web page (`accounts::http::pages`) is HTML: its text as a string.
        let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
        if content_type == Some("text/html; charset=utf-8") {
            return Reply { status, headers, body: Value::String(String::from_utf8_lossy(&bytes).into_owned()) };
        }
        if !bytes.is_empty() {
            assert_eq!(
                content_type,
                Some("application/json"),
                "every answer is JSON: {status} {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        Reply { status, headers, body }
    }

    /// A JSON request, with a Bearer token when given.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>, bearer: Option<&str>) -> Reply {
        let mut builder = Request::builder().method(Method::from_bytes(method.as_bytes()).unwrap()).uri(path);
        if let Some(token) = bearer {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some(v) => builder.header("content-type", "application/json").body(Body::from(v.to_string())),
            None => builder.body(Body::empty()),
        };
        self.send(request.unwrap()).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call("POST", path, Some(body), None).await
    }

    /// Registers `username` with the strong password; returns (access, refresh, user id).
    pub async fn register(&self, username: &str) -> (String, String, u64) {
        let r = self
            .post(
                "/api/auth/registration/",
                serde_json::json!({"username": username, "password1": STRONG, "password2": STRONG}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        (
            r.body["access"].as_str().unwrap().to_string(),
            r.body["refresh"].as_str().unwrap().to_string(),
            r.body["user"]["pk"].as_u64().unwrap(),
        )
    }
}

/// The payload of a JWT, unverified (tests look at the claims).
pub fn claims(token: &str) -> Value {
    jsonwebtoken::dangerous::insecure_decode::<Value>(token).unwrap().claims
}

/// Signs arbitrary claims with the test secret.
pub fn forge(claims: &Value) -> String {
    accounts::jwt_crypto::install();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// The old service's Django `SECRET_KEY` in the tests (`LEGACY_JWT_SECRET`).
pub const LEGACY_SECRET: &str = "django-insecure-legacy-test-key-0123456789-abcdefghijklmnop";

/// simplejwt 5.5's claims, in its order: `user_id` is the id as a string.
#[derive(serde::Serialize)]
struct SimplejwtClaims<'a> {
    token_type: &'a str,
    exp: i64,
    iat: i64,
    jti: String,
    user_id: String,
}

/// A token as the old service signs it (simplejwt: HS256, header without `kid`, no `sid`) with
/// `secret`, issued now and expiring `lifetime` seconds later (negative: expired); and its `jti`.
pub fn legacy_token_with(secret: &str, token_type: &str, user_id: u64, lifetime: i64) -> (String, String) {
    let now = accounts::domain::now();
    let jti = uuid::Uuid::new_v4().simple().to_string();
    let claims = SimplejwtClaims {
        token_type,
        exp: now + lifetime,
        iat: now.min(now + lifetime - 1),
        jti: jti.clone(),
        user_id: user_id.to_string(),
    };
    accounts::jwt_crypto::install();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    (token, jti)
}

/// [`legacy_token_with`] the test's legacy secret.
pub fn legacy_token(token_type: &str, user_id: u64, lifetime: i64) -> (String, String) {
    legacy_token_with(LEGACY_SECRET, token_type, user_id, lifetime)
}
