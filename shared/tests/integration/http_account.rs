//! `DELETE /api/auth/user/`: the caller's account goes, with its sessions, claims and avatar
//! objects, on both stores; the password is required and throttled like a login.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use testkit::{TestApp, STRONG};

const WRONG: &str = "Your password was entered incorrectly. Please enter it again.";
const UNABLE: &str = "Unable to log in with provided credentials.";

async fn sqlite_app(extra: &[(&str, &str)]) -> TestApp {
    TestApp::with_env(extra)
}

async fn dynamodb_app(extra: &[(&str, &str)]) -> TestApp {
    let (store, _) = testkit::dynamo::fresh_dynamo().await;
    TestApp::with_store(Arc::new(store), tempfile::tempdir().unwrap(), extra)
}

/// The status of a media URL (the local server's `/media/...`; the body is the image).
async fn media_status(app: &TestApp, path: &str) -> StatusCode {
    use tower::ServiceExt;
    let request = Request::get(path).body(Body::empty()).unwrap();
    app.router.clone().oneshot(request).await.unwrap().status()
}

fn delete_with(bearer: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::delete("/api/auth/user/")
        .header("authorization", format!("Bearer {bearer}"))
        .header("content-type", content_type)
        .body(body.into())
        .unwrap()
}

/// The whole promise of the issue, on one store.
async fn deletion_contract(app: TestApp) {
    let r = app
        .post(
            "/api/auth/registration/",
            json!({"username": "Leaving", "email": "leaving@example.com", "password1": STRONG, "password2": STRONG}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let (access, refresh) = (r.body["access"].as_str().unwrap(), r.body["refresh"].as_str().unwrap());
    let id = r.body["user"]["pk"].as_u64().unwrap();
    let login = app.post("/api/auth/login/", json!({"username": "leaving", "password": STRONG})).await;
    let (access2, refresh2) = (login.body["access"].as_str().unwrap(), login.body["refresh"].as_str().unwrap());
    // An avatar, an older object of the folder and a pending direct upload.
    let media = &app.state.media;
    let avatar = format!("avatar/{id}/face.png");
    for key in [avatar.clone(), format!("avatar/{id}/old.png"), accounts::media::upload_key(id, "pending")] {
        media.put(&key, vec![1u8, 2, 3].into(), "image/png").await.unwrap();
    }
    let update = accounts::domain::model::UserUpdate { avatar: Some(Some(avatar.clone())), ..Default::default() };
    app.state.store.update_user(id, update).await.unwrap();
    let media_url = format!("/media/{avatar}");
    assert_eq!(media_status(&app, &media_url).await, StatusCode::OK);

    // Refusals change nothing.
    let r = app.call("DELETE", "/api/auth/user/", Some(json!({"password": STRONG})), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app.call("DELETE", "/api/auth/user/", Some(json!({})), Some(access)).await;
    assert_eq!((r.status, r.body), (StatusCode::BAD_REQUEST, json!({"password": ["This field is required."]})));
    let r = app.call("DELETE", "/api/auth/user/", None, Some(access)).await;
    assert_eq!((r.status, r.body), (StatusCode::BAD_REQUEST, json!({"password": ["This field is required."]})));
    let r = app.call("DELETE", "/api/auth/user/", Some(json!({"password": "not-my-password"})), Some(access)).await;
    assert_eq!((r.status, r.body), (StatusCode::BAD_REQUEST, json!({"password": [WRONG]})));
    assert_eq!(app.call("GET", "/api/auth/user/", None, Some(access)).await.status, StatusCode::OK);
    assert_eq!(media_status(&app, &media_url).await, StatusCode::OK);

    // The deletion: 204, no body (without the trailing slash, as every path answers).
    let r = app.call("DELETE", "/api/auth/user", Some(json!({"password": STRONG})), Some(access)).await;
    assert_eq!((r.status, &r.body), (StatusCode::NO_CONTENT, &Value::Null));

    // Every token of the user is refused, in every session.
    for token in [access, access2] {
        let r = app.call("GET", "/api/auth/user/", None, Some(token)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        let r = app.call("DELETE", "/api/auth/user/", Some(json!({"password": STRONG})), Some(token)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    }
    for token in [refresh, refresh2] {
        for path in ["/api/auth/refresh/", "/api/auth/token/refresh/"] {
            let r = app.post(path, json!({"refresh": token})).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}: {}", r.body);
        }
    }
    // The old credentials are the ordinary failed login.
    let r = app.post("/api/auth/login/", json!({"username": "Leaving", "password": STRONG})).await;
    assert_eq!((r.status, r.body), (StatusCode::BAD_REQUEST, json!({"non_field_errors": [UNABLE]})));
    // The avatar objects are gone.
    assert_eq!(media_status(&app, &media_url).await, StatusCode::NOT_FOUND);
    for prefix in [format!("avatar/{id}/"), accounts::media::upload_key(id, "")] {
        assert_eq!(media.list(&prefix).await.unwrap(), vec![], "{prefix}");
    }
    // The name and the address are free for anyone, under a new id.
    let r = app
        .post(
            "/api/auth/registration/",
            json!({"username": "leaving", "email": "LEAVING@example.com", "password1": STRONG, "password2": STRONG}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(r.body["user"]["pk"].as_u64().unwrap() > id);
    let new_access = r.body["access"].as_str().unwrap().to_string();

    // Form-encoded and multipart bodies are read as everywhere.
    let r = app
        .send(delete_with(
            &new_access,
            "application/x-www-form-urlencoded",
            format!("password={STRONG}").replace('#', "%23").replace('!', "%21"),
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let (access, _, _) = app.register("multipart").await;
    let body = format!("--zz\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n{STRONG}\r\n--zz--\r\n");
    let r = app.send(delete_with(&access, "multipart/form-data; boundary=zz", body)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = app.post("/api/auth/login/", json!({"username": "multipart", "password": STRONG})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn deleting_the_account_on_sqlite() {
    deletion_contract(sqlite_app(&[]).await).await;
}

#[tokio::test]
async fn deleting_the_account_on_dynamodb() {
    deletion_contract(dynamodb_app(&[]).await).await;
}

/// A stolen access token is no way around the login throttle: wrong passwords at deletion are
/// failed logins of the account. Twelve guesses at once: only the limit's worth is checked, the
/// rest answer 429, and then even the right password (at deletion or login) is refused.
async fn guesses_at_deletion_are_failed_logins(app: TestApp) {
    let app = Arc::new(app);
    let (access, _, _) = app.register("guarded").await;
    let mut guesses = Vec::new();
    for i in 0..12 {
        let (app, access) = (app.clone(), access.clone());
        guesses.push(tokio::spawn(async move {
            app.call("DELETE", "/api/auth/user/", Some(json!({"password": format!("guess-{i}")})), Some(&access)).await
        }));
    }
    let mut statuses = Vec::new();
    for guess in guesses {
        let r = guess.await.unwrap();
        if r.status == StatusCode::BAD_REQUEST {
            assert_eq!(r.body, json!({"password": [WRONG]}));
        }
        statuses.push(r.status);
    }
    let checked = statuses.iter().filter(|s| **s == StatusCode::BAD_REQUEST).count();
    let throttled = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!((checked, throttled), (5, 7), "{statuses:?}");
    let r = app.call("DELETE", "/api/auth/user/", Some(json!({"password": STRONG})), Some(&access)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    let r = app.post("/api/auth/login/", json!({"username": "guarded", "password": STRONG})).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.call("GET", "/api/auth/user/", None, Some(&access)).await.status, StatusCode::OK, "not deleted");
}

const GUARDED: &[(&str, &str)] = &[("THROTTLE_LOGIN_ACCOUNT", "5/86400"), ("THROTTLE_LOGIN_IP", "0/60")];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guesses_at_deletion_are_failed_logins_on_sqlite() {
    guesses_at_deletion_are_failed_logins(sqlite_app(GUARDED).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guesses_at_deletion_are_failed_logins_on_dynamodb() {
    guesses_at_deletion_are_failed_logins(dynamodb_app(GUARDED).await).await;
}

/// Two deletions of one account at once (two devices): both answer 204, the account goes once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_deletions_at_once() {
    let app = Arc::new(dynamodb_app(&[]).await);
    let (access, _, _) = app.register("twice").await;
    let login = app.post("/api/auth/login/", json!({"username": "twice", "password": STRONG})).await;
    let access2 = login.body["access"].as_str().unwrap().to_string();
    let tasks: Vec<_> = [access, access2]
        .into_iter()
        .map(|token| {
            let app = app.clone();
            tokio::spawn(async move {
                app.call("DELETE", "/api/auth/user/", Some(json!({"password": STRONG})), Some(&token)).await.status
            })
        })
        .collect();
    for task in tasks {
        let status = task.await.unwrap();
        // The later one may already find the user gone at authentication.
        assert!(matches!(status, StatusCode::NO_CONTENT | StatusCode::UNAUTHORIZED), "{status}");
    }
    let r = app.post("/api/auth/login/", json!({"username": "twice", "password": STRONG})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

/// The web page: HTML under a strict policy, no third-party anything (the browser test in
/// local-server/tests/server/ drives it).
#[tokio::test]
async fn the_deletion_page_is_html_under_a_strict_policy() {
    let app = TestApp::new();
    for path in accounts::http::Endpoint::AccountDeletePage.paths() {
        let r = app.send(Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.headers["content-type"], "text/html; charset=utf-8");
        let policy = r.headers["content-security-policy"].to_str().unwrap();
        assert!(policy.starts_with("default-src 'none'; script-src 'sha256-"), "{policy}");
        assert!(policy.contains("connect-src 'self'") && policy.contains("frame-ancestors 'none'"), "{policy}");
        assert_eq!(r.headers["x-content-type-options"], "nosniff");
        let html = r.body.as_str().unwrap();
        assert!(html.contains("<label for=\"password\">") && html.contains("cannot be undone"), "{html}");
    }
    let r = app.send(Request::post("/account/delete/").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}
