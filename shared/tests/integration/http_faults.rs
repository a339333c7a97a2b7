//! Faults: DynamoDB stops answering mid-run. Requests answer 503 JSON within the SDK's bounded
//! timeouts, and once it answers again nothing is half-written.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use axum::http::StatusCode;
use serde_json::json;
use testkit::dynamo::PrivateEmulator;
use testkit::{TestApp, STRONG};

/// The SDK's bound (attempt timeout 2 s, operation timeout 5 s, two attempts) plus slack.
const BOUND: Duration = Duration::from_secs(12);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_dynamodb_gives_503s_and_leaves_nothing_half_written() {
    let emulator = PrivateEmulator::start();
    let (store, client) = emulator.store().await;
    let tables = store.tables().clone();
    let app = Arc::new(TestApp::with_store(Arc::new(store), tempfile::tempdir().unwrap(), &[]));
    let (access, refresh, _) = app.register("before").await;

    emulator.freeze();
    let attempts = [
        (
            "POST",
            "/api/auth/registration/",
            Some(json!({"username": "during", "password1": STRONG, "password2": STRONG})),
            None,
        ),
        ("POST", "/api/auth/login/", Some(json!({"username": "before", "password": STRONG})), None),
        ("POST", "/api/auth/refresh/", Some(json!({"refresh": refresh})), None),
        ("GET", "/api/accounts/profile/", None, Some(access.clone())),
    ];
    let mut tasks = Vec::new();
    for (method, path, body, bearer) in attempts {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let reply = app.call(method, path, body, bearer.as_deref()).await;
            (path, reply, started.elapsed())
        }));
    }
    for task in tasks {
        let (path, reply, took) = task.await.unwrap();
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {}", reply.body);
        assert_eq!(reply.body, json!({"detail": "Service temporarily unavailable, try again later."}));
        assert!(reply.headers.contains_key("retry-after"));
        assert!(took < BOUND, "{path} took {took:?}");
    }
    emulator.thaw();

    // Every claim has its user and every user its claim; every session its user.
    let scan = |table: String| {
        let client = client.clone();
        async move {
            let mut items = Vec::new();
            let mut start = None;
            loop {
                let out = client.scan().table_name(&table).set_exclusive_start_key(start).send().await.unwrap();
                items.extend(out.items().iter().cloned());
                match out.last_evaluated_key {
                    Some(k) if !k.is_empty() => start = Some(k),
                    _ => break items,
                }
            }
        }
    };
    let text = |item: &HashMap<String, AttributeValue>, key: &str| match item.get(key) {
        Some(AttributeValue::S(s)) => s.clone(),
        Some(AttributeValue::N(n)) => n.clone(),
        other => panic!("{key}: {other:?}"),
    };
    let users = scan(tables.users.clone()).await;
    let ids: HashSet<String> =
        users.iter().filter(|i| text(i, "pk").starts_with("USER#")).map(|i| text(i, "id")).collect();
    let claimed: HashSet<String> =
        users.iter().filter(|i| text(i, "pk").starts_with("USERNAME#")).map(|i| text(i, "user_id")).collect();
    assert_eq!(ids, claimed, "claims and users agree");
    for session in scan(tables.sessions.clone()).await {
        assert!(ids.contains(&text(&session, "user_id")), "session of a missing user");
    }
    // The service works again; the name tried during the outage is either fully taken or free.
    let r = app.post("/api/auth/login/", json!({"username": "before", "password": STRONG})).await;
    assert_eq!(r.status, StatusCode::OK);
    let during = app.post("/api/auth/login/", json!({"username": "during", "password": STRONG})).await;
    if during.status != StatusCode::OK {
        let r = app
            .post("/api/auth/registration/", json!({"username": "during", "password1": STRONG, "password2": STRONG}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
}

/// Media that freezes the DynamoDB emulator the first time the avatar folder is listed: the
/// account deletion has deleted the avatar objects and is about to write its transaction.
struct FreezeOnList {
    inner: accounts::media::SharedMedia,
    emulator: Arc<PrivateEmulator>,
    armed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl accounts::media::MediaStore for FreezeOnList {
    async fn put(&self, key: &str, bytes: bytes::Bytes, content_type: &str) -> accounts::media::MediaResult<()> {
        self.inner.put(key, bytes, content_type).await
    }
    async fn get(&self, key: &str) -> accounts::media::MediaResult<Option<accounts::media::MediaObject>> {
        self.inner.get(key).await
    }
    async fn size(&self, key: &str) -> accounts::media::MediaResult<Option<u64>> {
        self.inner.size(key).await
    }
    async fn get_at_most(&self, key: &str, max: u64) -> accounts::media::MediaResult<Option<accounts::media::Bounded>> {
        self.inner.get_at_most(key, max).await
    }
    async fn delete(&self, key: &str) -> accounts::media::MediaResult<()> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> accounts::media::MediaResult<Vec<accounts::media::MediaEntry>> {
        if self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            self.emulator.freeze();
        }
        self.inner.list(prefix).await
    }
    async fn upload_target(
        &self,
        key: &str,
        length: u64,
        ttl: Duration,
        origin: &str,
    ) -> accounts::media::MediaResult<accounts::media::UploadTarget> {
        self.inner.upload_target(key, length, ttl, origin).await
    }
}

/// DynamoDB stops answering in the middle of an account deletion (after authentication and the
/// password check, before the records' transaction): 503 within the bound. The transaction may
/// still reach the frozen emulator and run once it answers again (a timeout tells nothing about
/// the outcome), so afterwards the account is either whole (user, name and e-mail claims,
/// sessions: the retry deletes it) or entirely gone, never half.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dynamodb_freezing_mid_deletion_leaves_the_account_whole_or_gone() {
    let emulator = Arc::new(PrivateEmulator::start());
    let (store, client) = emulator.store().await;
    let users_table = store.tables().users.clone();
    let app = TestApp::with_store(Arc::new(store), tempfile::tempdir().unwrap(), &[]);
    let media = Arc::new(FreezeOnList {
        inner: app.state.media.clone(),
        emulator: emulator.clone(),
        armed: std::sync::atomic::AtomicBool::new(true),
    });
    let app = app.with_media(media);
    let registration =
        json!({"username": "whole", "email": "whole@example.com", "password1": STRONG, "password2": STRONG});
    let r = app.post("/api/auth/registration/", registration.clone()).await;
    let access = r.body["access"].as_str().unwrap().to_string();
    let refresh = r.body["refresh"].as_str().unwrap().to_string();
    let id = r.body["user"]["pk"].as_u64().unwrap();

    let started = Instant::now();
    let r = app.call("DELETE", "/api/auth/user/", Some(json!({"password": STRONG})), Some(&access)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert!(started.elapsed() < BOUND, "took {:?}", started.elapsed());
    emulator.thaw();

    // The users table holds all of the account's items or none of them.
    let out = client.scan().table_name(&users_table).send().await.unwrap();
    let keys: HashSet<String> = out
        .items()
        .iter()
        .filter_map(|i| match i.get("pk") {
            Some(AttributeValue::S(pk)) if !pk.starts_with("COUNTER#") => Some(pk.clone()),
            _ => None,
        })
        .collect();
    let skeletons = keys.iter().filter(|k| k.starts_with("SKELETON#")).count();
    let others: HashSet<&str> = keys.iter().filter(|k| !k.starts_with("SKELETON#")).map(String::as_str).collect();
    let user_key = format!("USER#{id}");
    let whole = HashSet::from([user_key.as_str(), "USERNAME#whole", "EMAIL#whole@example.com"]);
    assert!(keys.is_empty() || (others == whole && skeletons == 1), "half-deleted: {keys:?}");

    eprintln!("after the outage the account is {}", if keys.is_empty() { "gone" } else { "whole" });
    if keys.is_empty() {
        // Gone: the transaction ran after all. Nothing of it is usable, the name is free.
        assert_eq!(app.call("GET", "/api/auth/user/", None, Some(&access)).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.post("/api/auth/refresh/", json!({"refresh": refresh})).await.status, StatusCode::UNAUTHORIZED);
    } else {
        // Whole: the session works, the name and the address are taken, the password logs in.
        assert_eq!(app.call("GET", "/api/auth/user/", None, Some(&access)).await.status, StatusCode::OK);
        let r = app.post("/api/auth/refresh/", json!({"refresh": refresh})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = app.post("/api/auth/registration/", registration.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert!(r.body["username"].is_array() && r.body["email"].is_array(), "{}", r.body);
        let r = app.post("/api/auth/login/", json!({"username": "whole", "password": STRONG})).await;
        assert_eq!(r.status, StatusCode::OK);
        // The retry completes it.
        let r = app.call("DELETE", "/api/auth/user/", Some(json!({"password": STRONG})), Some(&access)).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    }
    let r = app.post("/api/auth/login/", json!({"username": "whole", "password": STRONG})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app.post("/api/auth/registration/", registration).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}
