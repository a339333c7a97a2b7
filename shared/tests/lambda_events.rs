//! The sample events under `events/` (API Gateway HTTP API, payload v2.0; for `sam local invoke -e`
//! and `cargo lambda invoke --data-file`) go through `lambda_http`'s event parsing into the very
//! router a function serves, and get the answer they are meant to show.
//!
//! Events that need a signed-in user carry placeholders, replaced here by real tokens:
//! `REPLACE_WITH_ACCESS_TOKEN` and `REPLACE_WITH_REFRESH_TOKEN`.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use accounts::http::Endpoint;
use axum::http::StatusCode;
use http_body_util::BodyExt;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use serde_json::Value;
use support::TestApp;
use tower::ServiceExt;

const ACCESS_PLACEHOLDER: &str = "REPLACE_WITH_ACCESS_TOKEN";
const REFRESH_PLACEHOLDER: &str = "REPLACE_WITH_REFRESH_TOKEN";

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").join("events")
}

/// `(endpoint, file text)` of every `events/*.json`.
fn events() -> Vec<(Endpoint, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(events_dir()).expect("events/") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let endpoint = Endpoint::from_function(&stem)
            .unwrap_or_else(|| panic!("{}: {stem:?} is not a function name", path.display()));
        found.push((endpoint, std::fs::read_to_string(&path).unwrap()));
    }
    found.sort_by_key(|(e, _)| e.function());
    found
}

/// The status each event's request is expected to get.
fn expected_status(endpoint: Endpoint) -> StatusCode {
    match endpoint {
        Endpoint::Registration => StatusCode::CREATED,
        _ => StatusCode::OK,
    }
}

/// The JSON body of an event (its `body` field, itself JSON text).
fn event_body(event: &str) -> Value {
    let event: Value = serde_json::from_str(event).unwrap();
    match event["body"].as_str() {
        Some(body) => serde_json::from_str(body).expect("the event body is JSON"),
        None => Value::Null,
    }
}

/// Feeds an event to the router the endpoint's Lambda serves, as `lambda_http::run` would:
/// the parsed `lambda_http::Request` goes to the axum router unchanged.
async fn invoke(app: &TestApp, endpoint: Endpoint, event: &str) -> (StatusCode, Value) {
    let request = lambda_http::request::from_str(event).expect("a Lambda HTTP event");
    assert!(
        matches!(request.request_context_ref(), Some(RequestContext::ApiGatewayV2(_))),
        "{}: not an HTTP API payload v2.0 event",
        endpoint.function()
    );
    assert!(endpoint.paths().contains(&request.uri().path()), "{}: path {}", endpoint.function(), request.uri());
    assert!(endpoint.methods().contains(request.method()), "{}: method {}", endpoint.function(), request.method());
    let router = accounts::http::router(&[endpoint], app.state.clone());
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
    (status, body)
}

#[test]
fn every_function_has_an_event() {
    let have: BTreeSet<&str> = events().iter().map(|(e, _)| e.function()).collect();
    let want: BTreeSet<&str> = Endpoint::ALL.iter().map(|e| e.function()).collect();
    assert_eq!(have, want, "events/<function>.json for every function, and only those");
}

/// The route key and the request context agree with the raw path and method, as API Gateway
/// would send them.
#[test]
fn events_are_consistent_http_api_events() {
    for (endpoint, text) in events() {
        let event: Value = serde_json::from_str(&text).unwrap();
        let name = endpoint.function();
        assert_eq!(event["version"], "2.0", "{name}");
        let method = event["requestContext"]["http"]["method"].as_str().unwrap();
        let path = event["rawPath"].as_str().unwrap();
        assert_eq!(event["requestContext"]["http"]["path"], path, "{name}");
        assert_eq!(event["routeKey"], format!("{method} {path}"), "{name}");
        assert_eq!(event["requestContext"]["routeKey"], event["routeKey"], "{name}");
        assert_eq!(event["requestContext"]["stage"], "$default", "{name}");
        if event.get("body").is_some_and(|b| !b.is_null()) {
            assert_eq!(event["headers"]["content-type"], "application/json", "{name}: a JSON body says so");
            assert_eq!(event["isBase64Encoded"], false, "{name}");
        }
        if endpoint.requires_auth() {
            assert_eq!(event["headers"]["authorization"], format!("Bearer {ACCESS_PLACEHOLDER}"), "{name}");
        }
    }
}

#[tokio::test]
async fn every_event_gets_its_expected_answer() {
    for (endpoint, text) in events() {
        let name = endpoint.function();
        let app = TestApp::new();
        let body = event_body(&text);
        let event = match endpoint {
            Endpoint::Registration => text.clone(),
            Endpoint::Login => {
                // The user the event signs in, registered first.
                let username = body["username"].as_str().expect("login event: username");
                let password = body["password"].as_str().expect("login event: password");
                let r = app
                    .post(
                        "/api/auth/registration/",
                        serde_json::json!({"username": username, "password1": password, "password2": password}),
                    )
                    .await;
                assert_eq!(r.status, StatusCode::CREATED, "registering the login event's user: {}", r.body);
                text.clone()
            }
            _ => {
                let (access, refresh, _) = app.register("event-user").await;
                text.replace(ACCESS_PLACEHOLDER, &access).replace(REFRESH_PLACEHOLDER, &refresh)
            }
        };
        assert!(!event.contains("REPLACE_WITH_"), "{name}: an unknown placeholder is left");
        let (status, answer) = invoke(&app, endpoint, &event).await;
        assert_eq!(status, expected_status(endpoint), "{name}: {answer}");
        match endpoint {
            Endpoint::Registration | Endpoint::Login => {
                assert_eq!(answer["user"]["username"], body["username"], "{name}");
                assert!(answer["access"].is_string() && answer["refresh"].is_string(), "{name}: {answer}");
            }
            Endpoint::Refresh | Endpoint::TokenRefresh => {
                assert!(answer["access"].is_string() && answer["refresh"].is_string(), "{name}: {answer}");
            }
            Endpoint::UserDetails | Endpoint::Profile => {
                assert_eq!(answer["username"], "event-user", "{name}: {answer}");
            }
            Endpoint::TokenVerify | Endpoint::Logout => {}
        }
        if matches!(endpoint, Endpoint::Logout | Endpoint::Refresh | Endpoint::TokenRefresh) {
            // The same event again: its refresh token is spent now.
            let (again, answer) = invoke(&app, endpoint, &event).await;
            assert_eq!(again, StatusCode::UNAUTHORIZED, "{name} replayed: {answer}");
        }
    }
}

/// The tokens in the events are placeholders: unreplaced, they are refused.
#[tokio::test]
async fn placeholder_tokens_are_refused() {
    for (endpoint, text) in events() {
        if !text.contains("REPLACE_WITH_") {
            continue;
        }
        let app = TestApp::new();
        app.register("event-user").await;
        let (status, answer) = invoke(&app, endpoint, &text).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{}: {answer}", endpoint.function());
    }
}
