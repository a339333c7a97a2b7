//! Sessions and devices: the caller's list, ending one session, "log out other devices"; each
//! session's device and address as recorded at login or registration. On both stores, with
//! the races that matter fired in parallel.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode};
use serde_json::{json, Value};
use testkit::{backends, claims, Backend, Reply, TestApp, STRONG};

/// A login (or registration, with `password1`/`password2`) sent with these headers.
async fn post_with(app: &TestApp, path: &str, body: Value, headers: &[(&str, &str)]) -> Reply {
    let mut request = Request::post(path).header("content-type", "application/json");
    for (name, value) in headers {
        // Raw bytes: UTF-8 in a header is what real clients send (HeaderValue::from_str refuses it).
        request = request.header(*name, HeaderValue::from_bytes(value.as_bytes()).unwrap());
    }
    app.send(request.body(Body::from(body.to_string())).unwrap()).await
}

/// Logs `username` in from a device; (access, refresh).
async fn login_from(app: &TestApp, username: &str, headers: &[(&str, &str)]) -> (String, String) {
    let r = post_with(app, "/api/auth/login/", json!({"username": username, "password": STRONG}), headers).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    (r.body["access"].as_str().unwrap().to_string(), r.body["refresh"].as_str().unwrap().to_string())
}

fn sid(token: &str) -> String {
    claims(token)["sid"].as_str().unwrap().to_string()
}

async fn sessions(app: &TestApp, access: &str) -> Vec<Value> {
    let r = app.call("GET", "/api/auth/sessions/", None, Some(access)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body.as_array().unwrap().clone()
}

/// Whether the session behind this pair is over: its access and its refresh token refused.
async fn assert_ended(app: &TestApp, access: &str, refresh: &str, what: &str) {
    let r = app.call("GET", "/api/accounts/profile/", None, Some(access)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: access {}", r.body);
    let r = app.post("/api/auth/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: refresh {}", r.body);
}

async fn assert_live(app: &TestApp, access: &str, what: &str) {
    let r = app.call("GET", "/api/accounts/profile/", None, Some(access)).await;
    assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.body);
}

fn is_iso_timestamp(value: &Value) -> bool {
    value.as_str().is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok() && t.ends_with(".000000Z"))
}

conformance!([sqlite, dynamodb] {
    async fn the_list_shows_each_device_most_recently_used_first(backend: Backend) {
        let app = backend.app(&[("TRUST_X_FORWARDED_FOR", "1")]).await;
        let r = post_with(
            &app,
            "/api/auth/registration/",
            json!({"username": "devices", "password1": STRONG, "password2": STRONG}),
            &[("x-device-name", "Ada's Pixel 8"), ("user-agent", "okhttp/4.12.0"), ("x-forwarded-for", "203.0.113.7")],
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let (phone_access, phone_refresh) =
            (r.body["access"].as_str().unwrap().to_string(), r.body["refresh"].as_str().unwrap().to_string());
        let long_agent = format!("Mozilla/5.0\t{}", "é".repeat(300));
        let (web_access, _) = login_from(&app, "devices", &[("user-agent", &long_agent), ("x-forwarded-for", "2001:db8::5")]).await;
        let (bare_access, _) = login_from(&app, "devices", &[]).await;
        // The phone refreshes a second later: it is the most recently used.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let r = app.post("/api/auth/refresh/", json!({"refresh": phone_refresh})).await;
        assert_eq!(r.status, StatusCode::OK);

        let list = sessions(&app, &web_access).await;
        assert_eq!(list.len(), 3, "{list:?}");
        for session in &list {
            let keys: Vec<&str> = session.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(keys, ["id", "device", "ip", "created_at", "last_used_at", "current"]);
            assert!(is_iso_timestamp(&session["created_at"]) && is_iso_timestamp(&session["last_used_at"]), "{session}");
        }
        assert_eq!(list[0]["id"], sid(&phone_access));
        assert_eq!((&list[0]["device"], &list[0]["ip"], &list[0]["current"]), (&json!("Ada's Pixel 8"), &json!("203.0.113.7"), &json!(false)));
        assert!(list[0]["last_used_at"].as_str() > list[0]["created_at"].as_str(), "the refresh is its last use: {}", list[0]);
        let web = list.iter().find(|s| s["id"] == sid(&web_access)).unwrap();
        let device = web["device"].as_str().unwrap();
        assert_eq!(device.chars().count(), 200, "at most 200 characters");
        assert!(device.starts_with("Mozilla/5.0é") && device.ends_with('é'), "no control characters, cut on a character: {device}");
        assert_eq!((&web["ip"], &web["current"]), (&json!("2001:db8::5"), &json!(true)));
        assert_eq!(web["created_at"], web["last_used_at"]);
        let bare = list.iter().find(|s| s["id"] == sid(&bare_access)).unwrap();
        assert_eq!((&bare["device"], &bare["current"]), (&json!(""), &json!(false)));
        // Each caller sees its own as current, the rest alike.
        let from_bare = sessions(&app, &bare_access).await;
        assert_eq!(from_bare.iter().filter(|s| s["current"] == true).map(|s| s["id"].clone()).collect::<Vec<_>>(), [json!(sid(&bare_access))]);
        // Without a token, or with another user's, nothing of them is shown.
        let r = app.call("GET", "/api/auth/sessions", None, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let (other, _, _) = app.register("someone-else").await;
        assert_eq!(sessions(&app, &other).await.len(), 1);
    }

    async fn ending_a_session_refuses_its_tokens_at_once(backend: Backend) {
        let app = backend.app(&[]).await;
        let (access, refresh, _) = app.register("ender").await;
        let (phone_access, phone_refresh) = login_from(&app, "ender", &[("x-device-name", "phone")]).await;
        let (tablet_access, tablet_refresh) = login_from(&app, "ender", &[("x-device-name", "tablet")]).await;
        let r = app.call("DELETE", &format!("/api/auth/sessions/{}/", sid(&phone_access)), None, Some(&access)).await;
        assert_eq!((r.status, &r.body), (StatusCode::NO_CONTENT, &Value::Null));
        assert_ended(&app, &phone_access, &phone_refresh, "the ended phone").await;
        // Without the slash too.
        let r = app.call("DELETE", &format!("/api/auth/sessions/{}", sid(&tablet_access)), None, Some(&access)).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_ended(&app, &tablet_access, &tablet_refresh, "the ended tablet").await;
        assert_live(&app, &access, "the caller").await;
        assert_eq!(sessions(&app, &access).await.len(), 1);

        // Another user's session, an unknown id, an ended one, an odd one: 404, and nothing ends.
        let (victim_access, _, _) = app.register("victim").await;
        let not_found = json!({"detail": "Not found."});
        for id in [sid(&victim_access), "0123456789abcdef0123456789abcdef".into(), sid(&phone_access), "x".repeat(3000), "%FF%FE".into(), "a.b".into()] {
            let r = app.call("DELETE", &format!("/api/auth/sessions/{id}/"), None, Some(&access)).await;
            assert_eq!((r.status, &r.body), (StatusCode::NOT_FOUND, &not_found), "{id}");
        }
        assert_live(&app, &victim_access, "the other user").await;
        // No token: 401, not 404.
        let r = app.call("DELETE", &format!("/api/auth/sessions/{}/", sid(&victim_access)), None, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        // The caller may end its own session: then it is signed out.
        let r = app.call("DELETE", &format!("/api/auth/sessions/{}/", sid(&access)), None, Some(&access)).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_ended(&app, &access, &refresh, "the caller's own").await;
    }

    async fn log_out_other_devices_keeps_only_the_callers_session(backend: Backend) {
        let app = backend.app(&[]).await;
        let (access, _, _) = app.register("many").await;
        let mut others = Vec::new();
        for _ in 0..3 {
            others.push(login_from(&app, "many", &[]).await);
        }
        let (someone, _, _) = app.register("untouched").await;
        let r = app.call("DELETE", "/api/auth/sessions", None, Some(&access)).await;
        assert_eq!((r.status, &r.body), (StatusCode::NO_CONTENT, &Value::Null));
        for (i, (a, r)) in others.iter().enumerate() {
            assert_ended(&app, a, r, &format!("other device {i}")).await;
        }
        assert_live(&app, &access, "the caller").await;
        assert_live(&app, &someone, "another user").await;
        let list = sessions(&app, &access).await;
        assert_eq!((list.len(), &list[0]["current"]), (1, &json!(true)));
        let r = app.call("DELETE", "/api/auth/sessions/", None, Some(&access)).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "nothing left to end is no error");
        assert_eq!(app.call("POST", "/api/auth/sessions/", None, Some(&access)).await.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(app.call("DELETE", "/api/auth/sessions/", None, None).await.status, StatusCode::UNAUTHORIZED);
    }

    /// "Log out other devices" while another device refreshes: whichever comes first, that
    /// device ends logged out (the pair its refresh got, if any, is refused too).
    async fn log_out_other_devices_racing_a_refresh_leaves_that_device_logged_out(backend: Backend) {
        let app = Arc::new(backend.app(&[]).await);
        let (access, _, _) = app.register("racer").await;
        for round in 0..6 {
            let (other_access, other_refresh) = login_from(&app, "racer", &[]).await;
            let logout_others = tokio::spawn({
                let (app, access) = (app.clone(), access.clone());
                async move { app.call("DELETE", "/api/auth/sessions/", None, Some(&access)).await }
            });
            let refresh = tokio::spawn({
                let (app, token) = (app.clone(), other_refresh.clone());
                async move { app.post("/api/auth/refresh/", json!({"refresh": token})).await }
            });
            assert_eq!(logout_others.await.unwrap().status, StatusCode::NO_CONTENT);
            let refreshed = refresh.await.unwrap();
            assert_ended(&app, &other_access, &other_refresh, &format!("round {round}: the old pair")).await;
            if refreshed.status == StatusCode::OK {
                let (a, r) = (refreshed.body["access"].as_str().unwrap(), refreshed.body["refresh"].as_str().unwrap());
                assert_ended(&app, a, r, &format!("round {round}: the refreshed pair")).await;
            } else {
                assert_eq!(refreshed.status, StatusCode::UNAUTHORIZED, "round {round}: {}", refreshed.body);
            }
            assert_live(&app, &access, "the caller").await;
        }
    }

    /// Another user fires ends at a victim's session id while the victim uses it: every one is
    /// 404 and the victim's session lives on.
    async fn another_users_session_is_never_ended(backend: Backend) {
        let app = Arc::new(backend.app(&[]).await);
        let (victim_access, victim_refresh, _) = app.register("target").await;
        let (attacker, _, _) = app.register("attacker").await;
        let path = format!("/api/auth/sessions/{}/", sid(&victim_access));
        let mut tasks = Vec::new();
        for i in 0..12 {
            let (app, path, attacker, refresh) = (app.clone(), path.clone(), attacker.clone(), victim_refresh.clone());
            tasks.push(tokio::spawn(async move {
                if i == 0 {
                    app.post("/api/auth/refresh/", json!({"refresh": refresh})).await
                } else {
                    app.call("DELETE", &path, None, Some(&attacker)).await
                }
            }));
        }
        let mut refreshed = None;
        for (i, task) in tasks.into_iter().enumerate() {
            let r = task.await.unwrap();
            if i == 0 {
                assert_eq!(r.status, StatusCode::OK, "{}", r.body);
                refreshed = Some(r.body["access"].as_str().unwrap().to_string());
            } else {
                assert_eq!((r.status, r.body), (StatusCode::NOT_FOUND, json!({"detail": "Not found."})));
            }
        }
        assert_live(&app, &refreshed.unwrap(), "the victim").await;
        assert_eq!(sessions(&app, &victim_access).await.len(), 1);
    }

    /// The sessions a password change ends are not listed, even before they are deleted.
    async fn sessions_of_an_old_password_are_not_listed(backend: Backend) {
        let app = backend.app(&[]).await;
        let (access, _, _) = app.register("changer").await;
        login_from(&app, "changer", &[]).await;
        let body = json!({"old_password": STRONG, "new_password1": "Harbor-Lantern-58", "new_password2": "Harbor-Lantern-58"});
        let r = app.call("POST", "/api/auth/password/change/", Some(body), Some(&access)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let list = sessions(&app, &access).await;
        assert_eq!((list.len(), &list[0]["id"]), (1, &json!(sid(&access))));
    }
});
