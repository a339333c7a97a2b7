//! The API end to end in process, on both stores (DynamoDB on moto with the real SDK client).

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::json;
use testkit::{backends, Backend, STRONG};

conformance!([sqlite, dynamodb] {
    async fn journey(backend: Backend) {
        let app = backend.app(&[("REFRESH_REUSE_GRACE", "0")]).await;
        let (access, refresh, id) = app.register("小明").await;
        assert_eq!(id, 1);
        let r = app.post("/api/auth/registration/", json!({"username": "小明", "password1": STRONG, "password2": STRONG})).await;
        assert_eq!(r.body, json!({"username": ["A user with that username already exists."]}));
        let r = app.post("/api/auth/login/", json!({"username": "小明", "password": STRONG})).await;
        assert_eq!(r.status, StatusCode::OK);
        let other_access = r.body["access"].as_str().unwrap().to_string();

        let r = app.call("PATCH", "/api/accounts/profile/", Some(json!({"nickname": "小明同学", "signature": "你好 🌏"})), Some(&access)).await;
        assert_eq!(r.body, json!({"id": id, "username": "小明", "email": "", "nickname": "小明同学", "signature": "你好 🌏", "avatar": null}));
        let r = app.call("GET", "/api/auth/user/", None, Some(&access)).await;
        assert_eq!(r.body["username"], "小明");

        let r = app.post("/api/auth/refresh/", json!({"refresh": refresh})).await;
        assert_eq!(r.status, StatusCode::OK);
        let new_refresh = r.body["refresh"].as_str().unwrap().to_string();
        let new_access = r.body["access"].as_str().unwrap().to_string();
        // The spent token again, while its successor is unused (a lost answer): the current pair.
        let r = app.post("/api/auth/refresh/", json!({"refresh": refresh})).await;
        assert_eq!((r.status, r.body["refresh"].as_str()), (StatusCode::OK, Some(new_refresh.as_str())), "{}", r.body);
        let r = app.post("/api/auth/token/verify/", json!({"token": refresh})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);

        let r = app.post("/api/auth/logout/", json!({"refresh": new_refresh})).await;
        assert_eq!(r.status, StatusCode::OK);
        let r = app.post("/api/auth/refresh/", json!({"refresh": refresh})).await;
        assert_eq!(r.body, json!({"detail": "Token is blacklisted", "code": "token_not_valid"}));
        assert_eq!(app.call("GET", "/api/accounts/profile/", None, Some(&new_access)).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.post("/api/auth/refresh/", json!({"refresh": new_refresh})).await.status, StatusCode::UNAUTHORIZED);
        // The second device's session is untouched.
        assert_eq!(app.call("GET", "/api/accounts/profile/", None, Some(&other_access)).await.status, StatusCode::OK);
    }

    async fn parallel_registrations_of_one_name_create_one_user(backend: Backend) {
        let app = Arc::new(backend.app(&[("THROTTLE_REGISTRATION_IP", "0/60")]).await);
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                app.post("/api/auth/registration/", json!({"username": "Racer", "password1": STRONG, "password2": STRONG})).await.status
            }));
        }
        let mut created = 0;
        for task in tasks {
            match task.await.unwrap() {
                StatusCode::CREATED => created += 1,
                // Taken, or refused at once by the bounded password-hashing queue.
                StatusCode::BAD_REQUEST | StatusCode::SERVICE_UNAVAILABLE => {}
                other => panic!("unexpected {other}"),
            }
        }
        assert_eq!(created, 1);
    }
});
