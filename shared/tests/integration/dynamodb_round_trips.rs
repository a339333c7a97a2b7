//! DynamoDB round trips per request, on the happy path of every endpoint: an SDK interceptor on
//! the store's client records each HTTP request it sends to the emulator (moto), and the counts
//! are pinned, so an endpoint that starts making more calls fails here. Each call is latency in
//! a Lambda and money on an on-demand table.
//!
//! With `ROUND_TRIPS_REPORT=<file>` the measured table is also written there (`bench/run` shows it).

use std::sync::{Arc, Mutex};

use accounts::store::dynamodb::DynamoStore;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use axum::http::StatusCode;
use serde_json::json;
use testkit::dynamo::{fresh_client, unique_tables};
use testkit::{legacy_token, TestApp, LEGACY_SECRET, STRONG};

/// Records the DynamoDB operation of every request the client transmits (retries included).
#[derive(Debug, Clone, Default)]
struct CallLog(Arc<Mutex<Vec<String>>>);

impl CallLog {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "CallLog"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        // `X-Amz-Target: DynamoDB_20120810.GetItem` names the operation.
        let target = context.request().headers().get("x-amz-target").unwrap_or("?");
        let operation = target.rsplit('.').next().unwrap_or(target).to_string();
        self.0.lock().unwrap().push(operation);
        Ok(())
    }
}

/// The API on a DynamoDB store whose client logs its calls.
async fn counted_app() -> (TestApp, CallLog) {
    let log = CallLog::default();
    let client = fresh_client().await;
    let counted = aws_sdk_dynamodb::Client::from_conf(client.config().to_builder().interceptor(log.clone()).build());
    let store = DynamoStore::new(counted, unique_tables());
    store.create_tables().await.expect("tables on the emulator");
    // During a cutover (legacy tokens accepted): ordinary tokens cost the same.
    let legacy = [("LEGACY_JWT_SECRET", LEGACY_SECRET), ("LEGACY_TOKENS_UNTIL", "2999-01-01T00:00:00Z")];
    let app = TestApp::with_store(Arc::new(store), tempfile::tempdir().unwrap(), &legacy);
    log.take();
    (app, log)
}

enum Bound {
    Exactly(usize),
    AtMost(usize),
}

struct Row {
    request: &'static str,
    calls: Vec<String>,
    bound: Bound,
}

impl Row {
    fn holds(&self) -> bool {
        match self.bound {
            Bound::Exactly(n) => self.calls.len() == n,
            Bound::AtMost(n) => self.calls.len() <= n,
        }
    }

    fn bound(&self) -> String {
        match self.bound {
            Bound::Exactly(n) => format!("= {n}"),
            Bound::AtMost(n) => format!("≤ {n}"),
        }
    }
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from("| request (happy path) | DynamoDB calls | operations | pinned |\n|---|---|---|---|\n");
    for row in rows {
        out += &format!("| {} | {} | {} | {} |\n", row.request, row.calls.len(), row.calls.join(", "), row.bound());
    }
    out
}

#[tokio::test]
async fn happy_paths_make_the_pinned_number_of_dynamodb_calls() {
    let (app, log) = counted_app().await;
    let mut rows = Vec::new();
    let mut record = |request: &'static str, status: StatusCode, expected: StatusCode, bound: Bound| {
        assert_eq!(status, expected, "{request}");
        rows.push(Row { request, calls: log.take(), bound });
    };

    // Registration: the per-IP throttle counter, the username check, the id counter, then one
    // transaction (user, claims, session).
    let r = app
        .post("/api/auth/registration/", json!({"username": "trips", "password1": STRONG, "password2": STRONG}))
        .await;
    record("POST registration", r.status, StatusCode::CREATED, Bound::Exactly(5));
    let user_id = r.body["user"]["pk"].as_u64().unwrap();
    let access = r.body["access"].as_str().unwrap().to_string();
    let refresh = r.body["refresh"].as_str().unwrap().to_string();
    let r = app
        .post(
            "/api/auth/registration/",
            json!({"username": "trips2", "email": "trips2@example.com", "password1": STRONG, "password2": STRONG}),
        )
        .await;
    record("POST registration with e-mail", r.status, StatusCode::CREATED, Bound::Exactly(6));

    let r = app.post("/api/auth/login/", json!({"username": "TRIPS", "password": STRONG})).await;
    record("POST login", r.status, StatusCode::OK, Bound::AtMost(5));
    let other_device = testkit::claims(r.body["access"].as_str().unwrap())["sid"].as_str().unwrap().to_string();

    let r = app.call("GET", "/api/accounts/profile/", None, Some(&access)).await;
    record("GET profile", r.status, StatusCode::OK, Bound::Exactly(1));
    let r = app.call("PATCH", "/api/accounts/profile/", Some(json!({"nickname": "n"})), Some(&access)).await;
    record("PATCH profile", r.status, StatusCode::OK, Bound::Exactly(3));
    let r = app.call("GET", "/api/auth/user/", None, Some(&access)).await;
    record("GET user", r.status, StatusCode::OK, Bound::Exactly(1));
    let r = app.call("PATCH", "/api/auth/user/", Some(json!({"first_name": "F"})), Some(&access)).await;
    record("PATCH user", r.status, StatusCode::OK, Bound::Exactly(3));

    let r = app.post("/api/auth/token/verify/", json!({"token": access})).await;
    record("POST token/verify (access)", r.status, StatusCode::OK, Bound::Exactly(1));
    let r = app.post("/api/auth/token/verify/", json!({"token": refresh})).await;
    record("POST token/verify (refresh)", r.status, StatusCode::OK, Bound::Exactly(2));

    let r = app.post("/api/auth/refresh/", json!({"refresh": refresh})).await;
    record("POST refresh", r.status, StatusCode::OK, Bound::Exactly(1));
    let refresh = r.body["refresh"].as_str().unwrap().to_string();
    let r = app.post("/api/auth/token/refresh/", json!({"refresh": refresh})).await;
    record("POST token/refresh", r.status, StatusCode::OK, Bound::Exactly(1));
    let (spent, refresh) = (refresh, r.body["refresh"].as_str().unwrap().to_string());
    // The spent token again while its successor is unused (a lost answer): the refused
    // rotation, the blacklist entry that explains it, the session with its user.
    let r = app.post("/api/auth/refresh/", json!({"refresh": spent})).await;
    assert_eq!(r.body["refresh"], refresh.as_str());
    record("POST refresh (a lost answer, again)", r.status, StatusCode::OK, Bound::Exactly(3));

    // Sessions: authentication, then the user's index and the sessions it names; ending one is
    // one conditional delete; ending the others a delete each (here one).
    let r = app.call("GET", "/api/auth/sessions/", None, Some(&access)).await;
    assert_eq!(r.body.as_array().map(Vec::len), Some(2), "{}", r.body);
    record("GET sessions", r.status, StatusCode::OK, Bound::Exactly(3));
    let r = app.call("DELETE", &format!("/api/auth/sessions/{other_device}/"), None, Some(&access)).await;
    record("DELETE sessions/<id>", r.status, StatusCode::NO_CONTENT, Bound::Exactly(2));
    app.post("/api/auth/login/", json!({"username": "trips", "password": STRONG})).await;
    log.take();
    let r = app.call("DELETE", "/api/auth/sessions/", None, Some(&access)).await;
    record("DELETE sessions (1 other)", r.status, StatusCode::NO_CONTENT, Bound::Exactly(3));

    let r = app.post("/api/auth/logout/", json!({"refresh": refresh})).await;
    record("POST logout", r.status, StatusCode::OK, Bound::Exactly(2));

    // The old service's tokens (issue 14): the user with the token's blacklist entry in one
    // BatchGetItem; the exchange of a refresh token is one transaction (blacklist entry, new
    // session, the user's state checked).
    let (access, _) = legacy_token("access", user_id, 300);
    let r = app.call("GET", "/api/accounts/profile/", None, Some(&access)).await;
    record("GET profile (legacy access token)", r.status, StatusCode::OK, Bound::Exactly(1));
    let r = app.post("/api/auth/token/verify/", json!({"token": access})).await;
    record("POST token/verify (legacy access token)", r.status, StatusCode::OK, Bound::Exactly(1));
    let (refresh, _) = legacy_token("refresh", user_id, 3600);
    let r = app.post("/api/auth/refresh/", json!({"refresh": refresh})).await;
    record("POST refresh (legacy refresh token: new session)", r.status, StatusCode::OK, Bound::Exactly(1));
    let (refresh, _) = legacy_token("refresh", user_id, 3600);
    let r = app.post("/api/auth/logout/", json!({"refresh": refresh})).await;
    record("POST logout (legacy refresh token)", r.status, StatusCode::OK, Bound::Exactly(1));

    // Account deletion of a user with two live sessions: authentication, the throttle's
    // reservation (its counters read, then the conditional write) and its release, the
    // transaction (user and claims), then the sessions: the query of the `by_user` index and
    // one DeleteItem per session.
    let r = app.post("/api/auth/login/", json!({"username": "trips2", "password": STRONG})).await;
    let access = r.body["access"].as_str().unwrap().to_string();
    log.take();
    let r = app.call("DELETE", "/api/auth/user/", Some(json!({"password": STRONG})), Some(&access)).await;
    record("DELETE user (account, 2 sessions)", r.status, StatusCode::NO_CONTENT, Bound::Exactly(8));

    let report = table(&rows);
    println!("{report}");
    if let Ok(path) = std::env::var("ROUND_TRIPS_REPORT") {
        std::fs::write(&path, &report).unwrap_or_else(|e| panic!("writing {path}: {e}"));
    }
    let broken: Vec<&Row> = rows.iter().filter(|row| !row.holds()).collect();
    assert!(broken.is_empty(), "round trips changed:\n{report}");
}
