//! The import command on an export produced by the old service (`tests/fixtures/peer-users.json`:
//! `manage.py dumpdata accounts.User` of the old Django service, after registering users
//! there with the PBKDF2 hasher and with `PASSWORD_HASHER=argon2`, one of them with a profile and
//! an avatar, two sharing an e-mail address, one deactivated). The binary runs as an operator would
//! run it, on the embedded store and on DynamoDB (moto), and the old passwords then log in.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use accounts::config::{Config, StorageConfig};
use accounts::state::AppState;
use accounts::store::dynamodb::{self, DynamoStore};
use accounts::store::sqlite::SqliteStore;
use accounts::store::SharedStore;
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

const SECRET: &str = "import-tests-secret-import-tests-secret-01";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/peer-users.json")
}

/// (username, password) of the fixture's users, as registered at the old service.
const PASSWORDS: &[(&str, &str)] = &[
    ("15313988692", "Tangerine-Kite-42"), // pbkdf2_sha256
    ("小明", "Argon-Lantern-77"),         // argon2
    ("NoMail_User", "Quiet-Harbor-19"),   // pbkdf2_sha256, no e-mail
    ("twin", "Twin-Orchard-33"),          // shares its e-mail with Twin2
    ("Twin2", "Twin-Orchard-34"),
];

/// Runs the binary with `env`; returns (exit code, stdout).
fn import(path: &Path, env: &[(&str, String)]) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_import-users"));
    command.arg(path).env_remove("STORAGE").env_remove("JWT_SECRET").env("JWT_SECRET", SECRET);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("import-users runs");
    let stdout = String::from_utf8(out.stdout).unwrap();
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), stdout)
}

/// `POST /api/auth/login/` on the API over `store`: whether it answers 200.
async fn logs_in(store: &SharedStore, username: &str, password: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_string();
    let config = Config::from_lookup(|k| match k {
        "JWT_SECRET" => Some(SECRET.to_string()),
        "DATA_DIR" => Some(data_dir.clone()),
        _ => None,
    })
    .unwrap();
    let app = accounts::http::app(AppState::new(store.clone(), config));
    let request = axum::http::Request::post("/api/auth/login/")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(json!({"username": username, "password": password}).to_string()))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    match status.as_u16() {
        200 => true,
        400 => false,
        other => panic!("login answered {other}: {}", String::from_utf8_lossy(&body)),
    }
}

/// What every backend must show after importing the fixture.
async fn check_imported(store: &SharedStore) {
    for (username, password) in PASSWORDS {
        assert!(!logs_in(store, username, "wrong-password").await, "{username}");
        assert!(logs_in(store, username, password).await, "{username} logs in with the old password");
        let user = store.find_user_by_username(username).await.unwrap().unwrap();
        assert!(user.password_hash.starts_with("$argon2id$"), "{username}: upgraded at login");
    }
    assert!(!logs_in(store, "dormant", "Sleepy-Meadow-58").await, "inactive stays inactive");

    let ada = store.get_user(1).await.unwrap().unwrap();
    assert_eq!((ada.username.as_str(), ada.email.as_str()), ("15313988692", "ada@example.com"));
    assert_eq!((ada.nickname.as_str(), ada.signature.as_str()), ("小明同学", "你好，世界！🌏"));
    assert_eq!(ada.avatar.as_deref(), Some("avatar/face.png"));
    assert_eq!(ada.date_joined, chrono::DateTime::parse_from_rfc3339("2026-11-24T06:11:19.455Z").unwrap().timestamp());
    let xiaoming = store.get_user(2).await.unwrap().unwrap();
    assert_eq!((xiaoming.username.as_str(), xiaoming.avatar.as_deref()), ("小明", None));
    let nomail = store.get_user(3).await.unwrap().unwrap();
    assert_eq!((nomail.first_name.as_str(), nomail.last_name.as_str(), nomail.email.as_str()), ("No", "Mail", ""));
    assert!(!store.get_user(4).await.unwrap().unwrap().is_active);
    // The shared address stays with the first account.
    assert_eq!(store.get_user(5).await.unwrap().unwrap().email, "shared@example.com");
    assert_eq!(store.get_user(6).await.unwrap().unwrap().email, "");
    assert_eq!(store.find_active_users_by_email("shared@example.com").await.unwrap().len(), 1);
    // New registrations get ids after the imported ones.
    let session = accounts::domain::model::Session {
        id: "s".into(),
        user_id: 0,
        refresh_jti: "j".into(),
        created_at: 0,
        expires_at: i64::MAX / 2,
        password_version: 0,
        ..Default::default()
    };
    let new = accounts::domain::model::NewUser {
        username: "newcomer".into(),
        email: String::new(),
        password_hash: "x".into(),
        date_joined: 0,
    };
    assert_eq!(store.create_user(new, session).await.unwrap().id, 7);
}

fn assert_first_run(code: i32, stdout: &str) {
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("imported: 6\n"), "{stdout}");
    assert!(stdout.contains("skipped (already there): 0\n"), "{stdout}");
    assert!(stdout.contains("rejected: 0\n"), "{stdout}");
    assert!(
        stdout.contains("user 6: e-mail \"shared@example.com\" belongs to another account; imported without it"),
        "{stdout}"
    );
}

fn assert_second_run(code: i32, stdout: &str) {
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("imported: 0\n") && stdout.contains("skipped (already there): 6\n"), "{stdout}");
}

#[tokio::test]
async fn imports_the_old_service_export_into_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("DATA_DIR", dir.path().to_str().unwrap().to_string())];
    let (code, stdout) = import(&fixture(), &env);
    assert_first_run(code, &stdout);
    let (code, stdout) = import(&fixture(), &env);
    assert_second_run(code, &stdout);
    let store: SharedStore = Arc::new(SqliteStore::open(dir.path()).unwrap());
    check_imported(&store).await;
}

#[tokio::test]
async fn imports_the_old_service_export_into_dynamodb() {
    let endpoint =
        std::env::var("DYNAMODB_ENDPOINT").expect("DYNAMODB_ENDPOINT (scripts/test starts moto and sets it)");
    for (k, v) in [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_REGION", "us-east-1")] {
        if std::env::var_os(k).is_none() {
            std::env::set_var(k, v);
        }
    }
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let env = [
        ("STORAGE", "dynamodb".to_string()),
        ("DYNAMODB_ENDPOINT", endpoint.clone()),
        ("USERS_TABLE", format!("{prefix}-users")),
        ("SESSIONS_TABLE", format!("{prefix}-sessions")),
        ("BLACKLIST_TABLE", format!("{prefix}-blacklist")),
    ];
    // The tables as the service reads them from the same variables.
    let mut lookup: Vec<(&str, String)> = env.to_vec();
    lookup.push(("JWT_SECRET", SECRET.to_string()));
    let config = Config::from_lookup(|k| lookup.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())).unwrap();
    let StorageConfig::DynamoDb { tables, .. } = config.storage else { panic!("dynamodb") };
    let dynamo = DynamoStore::new(dynamodb::client(Some(&endpoint)).await, tables);
    dynamo.create_tables().await.unwrap();
    let (code, stdout) = import(&fixture(), &env);
    assert_first_run(code, &stdout);
    let (code, stdout) = import(&fixture(), &env);
    assert_second_run(code, &stdout);
    let store: SharedStore = Arc::new(dynamo);
    check_imported(&store).await;
}

#[tokio::test]
async fn bad_records_are_rejected_with_reasons_and_the_rest_imported() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("DATA_DIR", dir.path().to_str().unwrap().to_string())];
    assert_eq!(import(&fixture(), &env).0, 0);
    let user = |pk: serde_json::Value, fields: serde_json::Value| {
        let mut base = json!({"password": "pbkdf2_sha256$1000$salt$aGFzaA==", "last_login": null, "username": "ok", "email": "", "is_active": true, "date_joined": "2025-01-01T00:00:00Z", "nickname": "", "signature": "", "avatar": ""});
        for (k, v) in fields.as_object().unwrap() {
            base[k] = v.clone();
        }
        json!({"model": "accounts.user", "pk": pk, "fields": base})
    };
    let export = json!([
        {"model": "auth.group", "pk": 1, "fields": {"name": "staff"}},
        user(json!("x"), json!({})),
        user(json!(20), json!({"username": "bad name!"})),
        user(json!(21), json!({"username": "nopass", "password": ""})),
        user(json!(22), json!({"username": "TWIN"})),
        user(json!(1), json!({"username": "someone-else"})),
        user(json!(23), json!({"username": "badtime", "date_joined": "yesterday"})),
        user(json!(24), json!({"username": "oddmail", "email": "not-an-address"})),
        user(json!(30), json!({"username": "fresh", "email": "Fresh@Example.com"})),
    ]);
    let path = dir.path().join("more.json");
    std::fs::write(&path, export.to_string()).unwrap();
    let (code, stdout) = import(&path, &env);
    assert_eq!(code, 2, "some records were rejected: {stdout}");
    for expected in [
        "imported: 2\n",
        "rejected: 7\n",
        "pk 1: model \"auth.group\" is not accounts.user",
        "pk \"x\": pk \"x\" is not a positive integer",
        "pk 20: username \"bad name!\" is not a valid username",
        "pk 21: no password hash",
        "pk 22: username \"TWIN\" is taken by user 5",
        "pk 1: id 1 belongs to \"15313988692\" here",
        "pk 23: date_joined \"yesterday\" is not a timestamp",
        "user 24: e-mail \"not-an-address\" is not a valid address; imported without it",
    ] {
        assert!(stdout.contains(expected), "{expected:?} in\n{stdout}");
    }
    let store: SharedStore = Arc::new(SqliteStore::open(dir.path()).unwrap());
    assert_eq!(store.get_user(30).await.unwrap().unwrap().email, "Fresh@Example.com");
    assert_eq!(store.find_active_users_by_email("fresh@example.com").await.unwrap().len(), 1);
    for missing in [20, 21, 22, 23] {
        assert_eq!(store.get_user(missing).await.unwrap(), None, "nothing written for rejected pk {missing}");
    }
}

#[test]
fn unreadable_input_fails_with_status_1() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("DATA_DIR", dir.path().to_str().unwrap().to_string())];
    assert_eq!(import(&dir.path().join("missing.json"), &env).0, 1);
    let path = dir.path().join("not-a-list.json");
    std::fs::write(&path, "{\"model\": \"accounts.user\"}").unwrap();
    assert_eq!(import(&path, &env).0, 1);
}

// ----- the blacklist and the avatars (issue 14) ---------------------------------------------------

/// The fixture's users with simplejwt's blacklist as `dumpdata accounts.User token_blacklist`
/// writes it (the jti and `expires_at` on the outstanding token, the blacklisted token naming it
/// by pk): one blacklisted and live, one blacklisted and expired, one outstanding only. User 3
/// names an avatar file that is missing. Returns (export path, live jti, its exp).
fn export_with_blacklist(dir: &Path) -> (PathBuf, String, i64) {
    let mut records: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(fixture()).unwrap()).unwrap();
    records[2]["fields"]["avatar"] = json!("avatar/gone.png");
    let exp = chrono::Utc::now().timestamp() + 3 * 24 * 3600;
    let at = |t: i64| chrono::DateTime::from_timestamp(t, 0).unwrap().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let outstanding = |pk: u64, user: u64, jti: &str, expires: i64| {
        json!({"model": "token_blacklist.outstandingtoken", "pk": pk,
               "fields": {"user": user, "jti": jti, "token": "eyJ...", "created_at": at(expires - 7 * 24 * 3600), "expires_at": at(expires)}})
    };
    let live = "0f1e2d3c4b5a69788796a5b4c3d2e1f0".to_string();
    records.extend([
        outstanding(1, 1, &live, exp),
        outstanding(2, 2, "expiredexpiredexpiredexpired0000", chrono::Utc::now().timestamp() - 60),
        outstanding(3, 1, "stillgoodnotblacklisted000000000", exp),
        json!({"model": "token_blacklist.blacklistedtoken", "pk": 1, "fields": {"token": 1, "blacklisted_at": at(exp - 3600)}}),
        json!({"model": "token_blacklist.blacklistedtoken", "pk": 2, "fields": {"token": 2, "blacklisted_at": at(exp - 3600)}}),
    ]);
    let path = dir.join("export.json");
    std::fs::write(&path, serde_json::to_string_pretty(&records).unwrap()).unwrap();
    (path, live, exp)
}

/// The old service's MEDIA_ROOT with user 1's avatar (and not user 3's).
fn old_media_root(dir: &Path) -> (PathBuf, Vec<u8>) {
    let root = dir.join("old-media");
    std::fs::create_dir_all(root.join("avatar")).unwrap();
    let bytes = b"\x89PNG\r\n\x1a\n not really a picture, copied as it is".to_vec();
    std::fs::write(root.join("avatar/face.png"), &bytes).unwrap();
    (root, bytes)
}

fn import_with(args: &[&str], export: &Path, env: &[(&str, String)]) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_import-users"));
    command.args(args).arg(export).env_remove("STORAGE").env("JWT_SECRET", SECRET);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("import-users runs");
    let stdout = String::from_utf8(out.stdout).unwrap();
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), stdout)
}

/// Dry run (nothing written), run, run again (idempotent), on `store` and `media`.
async fn blacklist_and_avatars(env: &[(&str, String)], store: &SharedStore, media: &dyn accounts::media::MediaStore) {
    let dir = tempfile::tempdir().unwrap();
    let (export, live, exp) = export_with_blacklist(dir.path());
    let (root, bytes) = old_media_root(dir.path());
    let root = root.to_str().unwrap();
    let now = chrono::Utc::now().timestamp();

    let (code, stdout) = import_with(&["--dry-run", "--media-from", root], &export, env);
    assert_eq!(code, 0, "{stdout}");
    for expected in [
        "dry run: nothing was written",
        "imported: 6\n",
        "blacklisted tokens imported: 1\n",
        "blacklisted tokens expired (not needed): 1\n",
        "avatars copied: 1\n",
        "avatars missing: 1\n",
        "user 3: avatar/gone.png: ",
    ] {
        assert!(stdout.contains(expected), "{expected:?} in\n{stdout}");
    }
    assert_eq!(store.get_user(1).await.unwrap(), None, "a dry run writes no user");
    assert_eq!(store.blacklisted(&live, now).await.unwrap(), None, "nor the blacklist");
    assert_eq!(media.get("avatar/face.png").await.unwrap(), None, "nor an avatar");

    let (code, stdout) = import_with(&["--media-from", root], &export, env);
    assert_eq!(code, 0, "{stdout}");
    for expected in [
        "imported: 6\n",
        "blacklisted tokens imported: 1\n",
        "blacklisted tokens already there: 0\n",
        "avatars copied: 1\n",
        "avatars missing: 1\n",
        "user 3: avatar/gone.png: ",
    ] {
        assert!(stdout.contains(expected), "{expected:?} in\n{stdout}");
    }
    let entry = store.blacklisted(&live, now).await.unwrap().expect("the blacklisted jti");
    assert_eq!((entry.expires_at, entry.user_id), (exp, 1), "TTL = the token's exp");
    assert_eq!(store.blacklisted("stillgoodnotblacklisted000000000", now).await.unwrap(), None);
    let avatar = media.get("avatar/face.png").await.unwrap().expect("copied under the same key");
    assert_eq!((avatar.bytes.to_vec(), avatar.content_type.as_str()), (bytes, "image/png"));
    assert_eq!(store.get_user(1).await.unwrap().unwrap().avatar.as_deref(), Some("avatar/face.png"));

    let (code, stdout) = import_with(&["--media-from", root], &export, env);
    assert_eq!(code, 0, "{stdout}");
    for expected in
        ["skipped (already there): 6\n", "blacklisted tokens imported: 0\n", "blacklisted tokens already there: 1\n"]
    {
        assert!(stdout.contains(expected), "{expected:?} in\n{stdout}");
    }
}

#[tokio::test]
async fn imports_the_blacklist_and_avatars_into_the_embedded_store_and_folder() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("DATA_DIR", dir.path().to_str().unwrap().to_string())];
    let store: SharedStore = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let media = accounts::media::folder::FolderMedia::new(&dir.path().join("media"), SECRET.as_bytes());
    blacklist_and_avatars(&env, &store, &media).await;
}

#[tokio::test]
async fn imports_the_blacklist_and_avatars_into_dynamodb_and_s3() {
    let endpoint = testkit::dynamo::endpoint();
    testkit::dynamo::fake_aws_environment();
    let tables = testkit::dynamo::unique_tables();
    let dynamo = DynamoStore::new(dynamodb::client(Some(&endpoint)).await, tables.clone());
    dynamo.create_tables().await.unwrap();
    let bucket = format!("t{}", uuid::Uuid::new_v4().simple());
    let s3 = accounts::media::s3::S3Media::new(
        accounts::media::s3::client(Some(&testkit::s3::endpoint())).await,
        bucket.clone(),
    );
    s3.create_bucket().await.unwrap();
    let env = [
        ("STORAGE", "dynamodb".to_string()),
        ("DYNAMODB_ENDPOINT", endpoint.clone()),
        ("USERS_TABLE", tables.users.clone()),
        ("SESSIONS_TABLE", tables.sessions.clone()),
        ("BLACKLIST_TABLE", tables.blacklist.clone()),
        ("MEDIA_BUCKET", bucket),
        ("S3_ENDPOINT", testkit::s3::endpoint()),
    ];
    let store: SharedStore = Arc::new(dynamo);
    blacklist_and_avatars(&env, &store, &s3).await;
}
