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
