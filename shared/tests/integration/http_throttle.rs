//! Decision 5: throttling of failed logins (per account, per IP) and registrations (per IP).
//!
//! Windows are fixed and aligned to the clock, so the limits here use a day: a test that took
//! its few requests across the end of a one-minute window would see the count start over.

use axum::http::StatusCode;
use serde_json::json;
use testkit::{TestApp, STRONG};

#[tokio::test]
async fn failed_logins_per_account_lock_even_the_right_password() {
    let app = TestApp::with_env(&[("THROTTLE_LOGIN_ACCOUNT", "3/86400"), ("THROTTLE_LOGIN_IP", "0/60")]);
    app.register("target").await;
    for _ in 0..3 {
        let r = app.post("/api/auth/login/", json!({"username": "target", "password": "wrong-password"})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    for password in ["wrong-password", STRONG] {
        let r = app.post("/api/auth/login/", json!({"username": "TARGET", "password": password})).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{password}");
        let detail = r.body["detail"].as_str().unwrap();
        let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=86400).contains(&retry), "{retry}");
        assert_eq!(detail, format!("Request was throttled. Expected available in {retry} seconds."));
    }
    // Another account is not affected.
    app.register("bystander").await;
    let r = app.post("/api/auth/login/", json!({"username": "bystander", "password": STRONG})).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn failed_logins_per_ip_cover_every_account_and_unknown_names() {
    let app = TestApp::with_env(&[("THROTTLE_LOGIN_ACCOUNT", "0/300"), ("THROTTLE_LOGIN_IP", "2/86400")]);
    app.register("someone").await;
    for name in ["ghost-1", "ghost-2"] {
        let r = app.post("/api/auth/login/", json!({"username": name, "password": "whatever1"})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    let r = app.post("/api/auth/login/", json!({"username": "someone", "password": STRONG})).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn successful_logins_do_not_count() {
    let app = TestApp::with_env(&[("THROTTLE_LOGIN_ACCOUNT", "1/86400"), ("THROTTLE_LOGIN_IP", "1/86400")]);
    app.register("regular").await;
    for _ in 0..3 {
        let r = app.post("/api/auth/login/", json!({"username": "regular", "password": STRONG})).await;
        assert_eq!(r.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn registrations_per_ip() {
    let app = TestApp::with_env(&[("THROTTLE_REGISTRATION_IP", "2/86400")]);
    app.register("first").await;
    app.register("second").await;
    let r = app
        .post("/api/auth/registration/", json!({"username": "third", "password1": STRONG, "password2": STRONG}))
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn reset_requests_per_address_and_per_ip() {
    let app = TestApp::with_env(&[
        ("THROTTLE_RESET_ADDRESS", "2/86400"),
        ("THROTTLE_RESET_IP", "3/86400"),
        ("PASSWORD_RESET_MIN_RESPONSE_MS", "0"),
    ]);
    let ask = |email: &'static str| app.post("/api/auth/password/reset/", json!({"email": email}));
    assert_eq!(ask("a@example.com").await.status, StatusCode::OK);
    assert_eq!(ask("A@example.com").await.status, StatusCode::OK);
    // The same address (in any case) a third time: throttled, known account or not.
    let r = ask("a@EXAMPLE.com").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.contains_key("retry-after"));
    // A refused request takes no place: the IP has used 2 of 3, so one more address gets through,
    // then the per-IP limit refuses every address.
    assert_eq!(ask("b@example.com").await.status, StatusCode::OK);
    assert_eq!(ask("c@example.com").await.status, StatusCode::TOO_MANY_REQUESTS);
}
