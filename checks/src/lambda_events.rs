//! The sample events under `events/` (API Gateway HTTP API, payload v2.0; for `sam local invoke -e`
//! and `cargo lambda invoke --data-file`) go through `lambda_http`'s event parsing into the very
//! router a function serves, and get the answer they are meant to show.
//!
//! Events that need a signed-in user carry placeholders, replaced here by real tokens:
//! `REPLACE_WITH_ACCESS_TOKEN` and `REPLACE_WITH_REFRESH_TOKEN`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use accounts::http::Endpoint;
use axum::http::StatusCode;
use http_body_util::BodyExt;
use lambda_http::request::RequestContext;
use lambda_http::RequestExt;
use serde_json::Value;
use testkit::TestApp;
use tower::ServiceExt;

const ACCESS_PLACEHOLDER: &str = "REPLACE_WITH_ACCESS_TOKEN";
const REFRESH_PLACEHOLDER: &str = "REPLACE_WITH_REFRESH_TOKEN";
/// The id of a direct avatar upload: replaced by one whose file the test has put in place.
const UPLOAD_PLACEHOLDER: &str = "REPLACE_WITH_UPLOAD_ID";

const RESET_UID_PLACEHOLDER: &str = "REPLACE_WITH_RESET_UID";
const RESET_TOKEN_PLACEHOLDER: &str = "REPLACE_WITH_RESET_TOKEN";
/// The id of a session of the signed-in user (the `sid` of its access token).
const SESSION_PLACEHOLDER: &str = "REPLACE_WITH_SESSION_ID";

/// Whether `path` is an instance of the route `template` (`{name}` stands for one segment).
fn route_matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}') && !p.is_empty()))
}

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
        // Not an endpoint's: the catch-all's event (its own test below) and the variables of
        // `sam local invoke --env-vars`.
        if stem == accounts::http::CATCH_ALL_FUNCTION || stem == "env" {
            continue;
        }
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
        Endpoint::AccountDeletion => StatusCode::NO_CONTENT,
        Endpoint::Session => StatusCode::NO_CONTENT,
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
    assert!(
        endpoint.paths().iter().any(|p| route_matches(p, request.uri().path())),
        "{}: path {}",
        endpoint.function(),
        request.uri()
    );
    assert!(endpoint.methods().contains(request.method()), "{}: method {}", endpoint.function(), request.method());
    let router = accounts::http::router(&[endpoint], app.state.clone());
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    // A web page's HTML as a string.
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
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
        let route = event["routeKey"].as_str().unwrap();
        assert!(endpoint.paths().iter().any(|p| route == format!("{method} {p}")), "{name}: route {route}");
        assert!(route_matches(route.trim_start_matches(method).trim(), path), "{name}: {route} vs {path}");
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
                let (access, refresh, user_id) = app.register("event-user").await;
                let upload_id = accounts::media::random_name();
                if text.contains(UPLOAD_PLACEHOLDER) {
                    let mut png = Vec::new();
                    image::DynamicImage::new_rgb8(8, 8)
                        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                        .unwrap();
                    let key = accounts::media::upload_key(user_id, &upload_id);
                    app.state.media.put(&key, png.into(), "application/octet-stream").await.unwrap();
                }
                let user = app.state.store.get_user(user_id).await.unwrap().unwrap();
                let reset_token = app.state.reset_tokens.make(&user, chrono::Utc::now().timestamp());
                text.replace(ACCESS_PLACEHOLDER, &access)
                    .replace(REFRESH_PLACEHOLDER, &refresh)
                    .replace(UPLOAD_PLACEHOLDER, &upload_id)
                    .replace(RESET_UID_PLACEHOLDER, &accounts::domain::reset_token::to_base36(user_id))
                    .replace(RESET_TOKEN_PLACEHOLDER, &reset_token)
                    .replace(SESSION_PLACEHOLDER, testkit::claims(&access)["sid"].as_str().unwrap())
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
            Endpoint::AvatarUpload => {
                assert_eq!(answer["method"], "PUT", "{name}: {answer}");
                assert!(answer["upload_url"].as_str().is_some_and(|u| u.starts_with("https://")), "{name}: {answer}");
            }
            Endpoint::AvatarConfirm => {
                let url = answer["avatar"].as_str().unwrap_or_else(|| panic!("{name}: {answer}"));
                assert!(
                    url.starts_with("https://abcdef1234.execute-api.") && url.contains("/media/avatar/"),
                    "{name}: {url}"
                );
            }
            Endpoint::PasswordChange => assert_eq!(answer["detail"], "New password has been saved.", "{name}"),
            Endpoint::PasswordReset => assert_eq!(answer["detail"], "Password reset e-mail has been sent.", "{name}"),
            Endpoint::PasswordResetConfirm => {
                assert_eq!(answer["detail"], "Password has been reset with the new password.", "{name}")
            }
            Endpoint::PasswordResetLink => {
                let (uid, token) = (body_of_link(&text, "uid"), body_of_link(&text, "token"));
                assert_eq!(answer, serde_json::json!({"uid": uid, "token": token}), "{name}");
            }
            Endpoint::Jwks => assert!(answer["keys"].is_array(), "{name}: {answer}"),
            Endpoint::Schema => {
                assert!(answer["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{name}: {answer}")
            }
            Endpoint::AccountDeletion => {
                assert_eq!(answer, Value::Null, "{name}: no body");
                let r = app
                    .post(
                        "/api/auth/login/",
                        serde_json::json!({"username": "event-user", "password": testkit::STRONG}),
                    )
                    .await;
                assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name}: the user is gone: {}", r.body);
            }
            Endpoint::AccountDeletePage => {
                assert!(answer.as_str().is_some_and(|html| html.contains("<form")), "{name}: {answer}")
            }
            Endpoint::Sessions => {
                assert_eq!(answer.as_array().map(Vec::len), Some(1), "{name}: {answer}");
                assert_eq!(answer[0]["current"], true, "{name}: {answer}");
            }
            Endpoint::TokenVerify | Endpoint::Logout | Endpoint::Session => {}
        }
        if endpoint == Endpoint::Logout {
            // The same event again: its refresh token is spent now.
            let (again, answer) = invoke(&app, endpoint, &event).await;
            assert_eq!(again, StatusCode::UNAUTHORIZED, "{name} replayed: {answer}");
        }
        if matches!(endpoint, Endpoint::Refresh | Endpoint::TokenRefresh) {
            // Replayed at once (a second request of a mobile app): the grace window answers
            // with the same new refresh token.
            let (again, replayed) = invoke(&app, endpoint, &event).await;
            assert_eq!(again, StatusCode::OK, "{name} replayed: {replayed}");
            assert_eq!(replayed["refresh"], answer["refresh"], "{name} replayed");
        }
    }
}

/// `events/not-found.json`: what API Gateway sends the catch-all (`$default` as its route key),
/// answered with the contract's 405 by the catch-all router.
#[tokio::test]
async fn the_catch_all_event_gets_the_contracts_405() {
    let text =
        std::fs::read_to_string(events_dir().join(format!("{}.json", accounts::http::CATCH_ALL_FUNCTION))).unwrap();
    let event: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (event["routeKey"].as_str(), event["requestContext"]["routeKey"].as_str()),
        (Some("$default"), Some("$default"))
    );
    let request = lambda_http::request::from_str(&text).expect("a Lambda HTTP event");
    let app = TestApp::new();
    let response = accounts::http::catch_all_router(app.state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        serde_json::from_slice::<Value>(&bytes).unwrap(),
        serde_json::json!({"detail": "Method \"GET\" not allowed."})
    );
}

/// A path parameter of an event (`pathParameters`, as API Gateway fills it in).
fn body_of_link(event: &str, name: &str) -> String {
    let event: Value = serde_json::from_str(event).unwrap();
    event["pathParameters"][name].as_str().unwrap_or_else(|| panic!("pathParameters.{name}")).to_string()
}

/// The tokens in the events are placeholders: unreplaced, they are refused.
#[tokio::test]
async fn placeholder_tokens_are_refused() {
    for (endpoint, text) in events() {
        if !text.contains(ACCESS_PLACEHOLDER) && !text.contains(REFRESH_PLACEHOLDER) {
            continue;
        }
        let app = TestApp::new();
        app.register("event-user").await;
        let (status, answer) = invoke(&app, endpoint, &text).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{}: {answer}", endpoint.function());
    }
}
