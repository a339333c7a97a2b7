//! Logs: one JSON line per request (method, route, status, latency), and never a token, a
//! password or an e-mail address.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use testkit::{TestApp, STRONG};

/// A log writer that keeps what is written (the legacy-token tests read it too).
#[derive(Clone, Default)]
pub(crate) struct Captured(pub(crate) Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn request_lines_carry_no_secrets() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = TestApp::with_env(&[("PASSWORD_RESET_MIN_RESPONSE_MS", "0")]);
    let email = "secret.person@example.com";
    let r = app
        .post(
            "/api/auth/registration/",
            json!({"username": "logged", "password1": STRONG, "password2": STRONG, "email": email}),
        )
        .await;
    let (access, refresh) =
        (r.body["access"].as_str().unwrap().to_string(), r.body["refresh"].as_str().unwrap().to_string());
    app.post("/api/auth/login/", json!({"username": "logged", "password": "wrong-password-123"})).await;
    app.post("/api/auth/refresh/", json!({"refresh": refresh})).await;
    app.call("GET", "/api/accounts/profile/", None, Some(&access)).await;
    app.post("/api/auth/password/reset/", json!({"email": email})).await;
    // Refused credentials are logged too: the line is taken around authentication.
    let refused = app.call("GET", "/api/accounts/profile/", None, Some("not.a.token")).await;
    assert_eq!(refused.status, 401);

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for secret in [STRONG, "wrong-password-123", &access, &refresh, email] {
        assert!(!text.contains(secret), "a secret reached the logs: {secret:.20}…");
    }
    let requests: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "request")
        .collect();
    assert_eq!(requests.len(), 6, "{text}");
    let first = &requests[0]["fields"];
    assert_eq!(
        (first["method"].as_str(), first["route"].as_str(), first["status"].as_u64()),
        (Some("POST"), Some("/api/auth/registration/"), Some(201))
    );
    assert!(first["latency_ms"].as_f64().is_some());
    let last = &requests[5]["fields"];
    assert_eq!(
        (last["method"].as_str(), last["route"].as_str(), last["status"].as_u64()),
        (Some("GET"), Some("/api/accounts/profile/"), Some(401))
    );
}

/// Through the Lambda path (the sample API Gateway event parsed by `lambda_http`, with the
/// invocation's context, into the function's own router) and in the functions' JSON format,
/// every line logged while serving the request carries API Gateway's request id (the access
/// log's `requestId`) and Lambda's: the request line and the domain's own line alike.
#[tokio::test(flavor = "current_thread")]
async fn every_line_of_a_request_carries_its_request_ids() {
    use tower::ServiceExt;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::registry().with(
        accounts::lambda::json_layer(move || writer.clone()).with_filter(tracing_subscriber::filter::LevelFilter::INFO),
    );
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = TestApp::with_env(&[("PASSWORD_RESET_MIN_RESPONSE_MS", "0")]);
    let r = app
        .post(
            "/api/auth/registration/",
            json!({"username": "alice", "password1": STRONG, "password2": STRONG, "email": "alice@example.com"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    captured.0.lock().unwrap().clear();

    let event =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/password-reset.json"))
            .unwrap();
    let api_request_id =
        serde_json::from_str::<Value>(&event).unwrap()["requestContext"]["requestId"].as_str().unwrap().to_string();
    let mut request = lambda_http::request::from_str(&event).expect("a Lambda HTTP event");
    let mut context = lambda_http::Context::default();
    context.request_id = "8476a536-e9f4-11e8-9739-2dfe598c3fcd".into();
    request.extensions_mut().insert(context);
    let router = accounts::http::router(&[accounts::http::Endpoint::PasswordReset], app.state.clone());
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["fields"]["message"].as_str()).collect();
    assert!(messages.contains(&"password reset e-mail sent") && messages.contains(&"request"), "{text}");
    for line in &lines {
        assert_eq!(line["span"]["api_request_id"].as_str(), Some(api_request_id.as_str()), "{line}");
        assert_eq!(line["span"]["lambda_request_id"], "8476a536-e9f4-11e8-9739-2dfe598c3fcd", "{line}");
    }
}
