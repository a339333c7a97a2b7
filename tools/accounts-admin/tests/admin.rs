//! The admin tool run as an operator runs it, a process on the store the environment names:
//! the embedded store and DynamoDB (moto). The API in process on the same store shows what
//! each command did to the account.

use std::process::Command;
use std::sync::Arc;

use accounts::store::sqlite::SqliteStore;
use axum::http::StatusCode;
use serde_json::{json, Value};
use testkit::{TestApp, SECRET, STRONG};

/// The API on a fresh store, and the variables that point the tool at the same store.
async fn setup(dynamodb: bool) -> (TestApp, Vec<(&'static str, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_string();
    if dynamodb {
        let (store, _) = testkit::dynamo::fresh_dynamo().await;
        let tables = store.tables().clone();
        let env = vec![
            ("STORAGE", "dynamodb".to_string()),
            ("DYNAMODB_ENDPOINT", testkit::dynamo::endpoint()),
            ("USERS_TABLE", tables.users),
            ("SESSIONS_TABLE", tables.sessions),
            ("BLACKLIST_TABLE", tables.blacklist),
            ("THROTTLE_TABLE", tables.throttle),
            ("DATA_DIR", data_dir),
        ];
        (TestApp::with_store(Arc::new(store), dir, &[]), env)
    } else {
        let store = SqliteStore::open(dir.path()).unwrap();
        (TestApp::with_store(Arc::new(store), dir, &[]), vec![("DATA_DIR", data_dir)])
    }
}

/// Runs the tool; (exit code, stdout, stderr).
fn admin(env: &[(&str, String)], args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_accounts-admin"));
    command.args(args).env_remove("STORAGE").env("JWT_SECRET", SECRET);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("accounts-admin runs");
    let (stdout, stderr) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    eprintln!("accounts-admin {args:?}: {stdout}{stderr}");
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

async fn login(app: &TestApp, username: &str, password: &str) -> testkit::Reply {
    app.post("/api/auth/login/", json!({"username": username, "password": password})).await
}

async fn profile_status(app: &TestApp, access: &str) -> StatusCode {
    app.call("GET", "/api/accounts/profile/", None, Some(access)).await.status
}

async fn every_command(dynamodb: bool) {
    let (app, env) = setup(dynamodb).await;
    let (access, refresh, id) = app.register("Operated").await;
    app.call("PATCH", "/api/accounts/profile/", Some(json!({"nickname": "op", "signature": "sig"})), Some(&access))
        .await;
    let other = login(&app, "operated", STRONG).await;
    assert_eq!(other.status, StatusCode::OK);

    // show: by name (any case) and by id.
    let (code, stdout, _) = admin(&env, &["show", "OPERATED"]);
    assert_eq!(code, 0);
    let shown = json_of(&stdout);
    assert_eq!((&shown["account"]["id"], &shown["account"]["username"]), (&json!(id), &json!("Operated")));
    assert!(shown["account"].get("password").is_none() && !stdout.contains("argon2"), "no password hash: {stdout}");
    assert_eq!(shown["sessions"].as_array().unwrap().len(), 2);
    assert_eq!(shown["throttle"]["locked_for_seconds"], 0);
    assert_eq!(json_of(&admin(&env, &["show", &id.to_string()]).1)["account"]["username"], "Operated");

    // export: account, profile with the avatar URL, sessions.
    let (code, stdout, _) = admin(&env, &["export", "operated"]);
    assert_eq!(code, 0);
    let exported = json_of(&stdout);
    assert_eq!(exported["profile"], json!({"nickname": "op", "signature": "sig", "avatar": null}));
    assert_eq!(exported["sessions"].as_array().unwrap().len(), 2);

    // unlock: five failures lock the account's logins; unlock lets the right password in again.
    for _ in 0..5 {
        assert_eq!(login(&app, "operated", "wrong-password").await.status, StatusCode::BAD_REQUEST);
    }
    assert_eq!(login(&app, "operated", STRONG).await.status, StatusCode::TOO_MANY_REQUESTS);
    let shown = json_of(&admin(&env, &["show", "operated"]).1);
    assert!(shown["throttle"]["locked_for_seconds"].as_u64().unwrap() > 0, "{shown}");
    assert_eq!(admin(&env, &["unlock", "operated"]).0, 0);
    assert_eq!(json_of(&admin(&env, &["show", "operated"]).1)["throttle"]["locked_for_seconds"], 0);
    let relogin = login(&app, "operated", STRONG).await;
    assert_eq!(relogin.status, StatusCode::OK, "{}", relogin.body);

    // end-sessions: every token of the account is refused.
    let (code, stdout, _) = admin(&env, &["end-sessions", "operated"]);
    assert_eq!((code, stdout.contains("3 sessions")), (0, true), "{stdout}");
    assert_eq!(profile_status(&app, &access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.post("/api/auth/refresh/", json!({"refresh": refresh})).await.status, StatusCode::UNAUTHORIZED);

    // disable: no login, no refresh, sessions over; enable: logins again.
    let fresh = login(&app, "operated", STRONG).await;
    let (fresh_access, fresh_refresh) =
        (fresh.body["access"].as_str().unwrap().to_string(), fresh.body["refresh"].as_str().unwrap().to_string());
    assert_eq!(admin(&env, &["disable", "operated"]).0, 0);
    assert_eq!(login(&app, "operated", STRONG).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(profile_status(&app, &fresh_access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.post("/api/auth/refresh/", json!({"refresh": fresh_refresh})).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(json_of(&admin(&env, &["show", "operated"]).1)["account"]["is_active"], false);
    assert_eq!(admin(&env, &["enable", "operated"]).0, 0);
    assert_eq!(login(&app, "operated", STRONG).await.status, StatusCode::OK);

    // Unknown users: a clear message and status 3, for every command; nothing else touched.
    for command in ["show", "disable", "enable", "end-sessions", "unlock", "export"] {
        let (code, stdout, stderr) = admin(&env, &[command, "nobody"]);
        assert_eq!((code, stdout.as_str()), (3, ""), "{command}");
        assert!(stderr.contains("no user \"nobody\""), "{command}: {stderr}");
    }
    assert_eq!(admin(&env, &["show", "424242"]).0, 3);

    // delete: refused without --yes (nothing deleted); with it, the account is gone as after
    // DELETE /api/auth/user/.
    let (code, _, stderr) = admin(&env, &["delete", "operated"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--yes"), "{stderr}");
    let last = login(&app, "operated", STRONG).await;
    assert_eq!(last.status, StatusCode::OK, "still there: {}", last.body);
    let last_access = last.body["access"].as_str().unwrap().to_string();
    let (code, stdout, _) = admin(&env, &["delete", "Operated", "--yes"]);
    assert_eq!((code, stdout.contains(&format!("deleted user {id}"))), (0, true), "{stdout}");
    assert_eq!(profile_status(&app, &last_access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(login(&app, "operated", STRONG).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(admin(&env, &["show", &id.to_string()]).0, 3);
    assert_eq!(admin(&env, &["delete", "operated", "--yes"]).0, 3);
    let (_, _, new_id) = app.register("Operated").await;
    assert!(new_id > id, "the name is free again, under a new id");
}

#[tokio::test]
async fn every_command_on_the_embedded_store() {
    every_command(false).await;
}

#[tokio::test]
async fn every_command_on_dynamodb() {
    every_command(true).await;
}

#[test]
fn help_and_bad_usage() {
    let (code, stdout, _) = admin(&[], &["--help"]);
    assert_eq!(code, 0);
    for command in ["show", "disable", "enable", "end-sessions", "unlock", "delete", "export"] {
        assert!(stdout.contains(command), "{command} in --help: {stdout}");
    }
    let (code, _, stderr) = admin(&[], &["frobnicate", "x"]);
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = admin(&[], &["show"]);
    assert_eq!(code, 2, "a missing user is bad usage: {stderr}");
}
