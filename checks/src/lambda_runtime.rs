//! Every function binary under the Lambda Runtime API, as AWS (or `cargo lambda watch`) runs it:
//! the runtime API emulator of `testkit::lambda` hands each binary an API Gateway v2 event and
//! reads its answer. The binaries are built by `scripts/test`: `cargo build --workspace --bins` (every
//! backend, the embedded store here) and each function as Lambda builds it, with only the
//! backends its crate names, in `LAMBDA_BUILD_DIR` (run here on DynamoDB and S3 in moto).

use std::path::{Path as FsPath, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use testkit::lambda::{api_gateway_event, RuntimeApi};

fn binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target")
    });
    let path = target.join("debug").join(name);
    assert!(path.exists(), "{} is not built: run scripts/test (it builds every function first)", path.display());
    path
}

/// The function as Lambda builds it (`--no-default-features`: its own backends, no SQLite).
fn lambda_binary(name: &str) -> PathBuf {
    let dir = std::env::var_os("LAMBDA_BUILD_DIR")
        .expect("LAMBDA_BUILD_DIR is not set: scripts/test builds the functions with their Lambda features there");
    let path = PathBuf::from(dir).join(name);
    assert!(path.exists(), "{} is not built: run scripts/test", path.display());
    path
}

fn event(method: &str, path: &str, body: Option<Value>, bearer: Option<&str>) -> Value {
    api_gateway_event(method, path, body, bearer)
}

/// Starts `function` (the all-backends build) on the embedded store in `data_dir`, hands it
/// `event`, returns its answer.
async fn invoke(function: &str, data_dir: &FsPath, event: Value) -> Value {
    let data_dir = data_dir.to_str().unwrap();
    let (id, body) = run(&binary(function), &[("DATA_DIR", data_dir)], event).await;
    assert_eq!(id, "req-1", "{function}: {body}");
    body
}

/// Starts `binary` against a fresh runtime API with `env` (and no STORAGE, JWT_SECRET or other
/// configuration of this process), hands it `event`; returns the id the answer was posted under
/// (`init-error` when the function failed to start) and the answer.
async fn run(binary: &FsPath, env: &[(&str, &str)], event: Value) -> (String, Value) {
    let (id, answer, _) = run_logged(binary, env, event, false).await;
    (id, answer)
}

/// `run`, also returning what the function wrote to stdout (its logs) when `capture` is set.
async fn run_logged(binary: &FsPath, env: &[(&str, &str)], event: Value, capture: bool) -> (String, Value, String) {
    let mut api = RuntimeApi::start("req-1").await;
    api.offer(event);
    let mut command = api.command(binary, accounts::config::vars::ALL);
    command.env("RUST_LOG", "warn").stdout(if capture { Stdio::piped() } else { Stdio::null() }).stderr(Stdio::inherit());
    command.envs(env.iter().copied());
    let mut child = command.spawn().unwrap();
    let answer = api.answer(Duration::from_secs(60)).await;
    let _ = child.kill();
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        use std::io::Read;
        let _ = out.read_to_string(&mut stdout);
    }
    let _ = child.wait();
    let answer = answer.expect("the function answered within 60 s");
    (answer.request_id, answer.body, stdout)
}

fn status_and_body(answer: &Value) -> (u64, Value) {
    let body = answer["body"].as_str().map(|b| serde_json::from_str(b).unwrap()).unwrap_or(Value::Null);
    (answer["statusCode"].as_u64().unwrap(), body)
}

/// Registers through `registration`, then calls every function once: `(function, event,
/// expected status)`. `invoke(function, event)` runs one.
async fn every_function_answers<F, Fut>(invoke: F)
where
    F: Fn(&'static str, Value) -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    let strong = "xk29!pLm#q";
    // Registration and login really write and read the store.
    let registered = invoke(
        "registration",
        event("POST", "/api/auth/registration/", Some(json!({"username": "lambda", "password1": strong, "password2": strong})), None),
    )
    .await;
    let (status, body) = status_and_body(&registered);
    assert_eq!(status, 201, "{body}");
    let access = body["access"].as_str().unwrap().to_string();
    let refresh = body["refresh"].as_str().unwrap().to_string();

    let cases: Vec<(&str, Value, u64)> = vec![
        ("login", event("POST", "/api/auth/login", Some(json!({"username": "LAMBDA", "password": strong})), None), 200),
        ("profile", event("GET", "/api/accounts/profile/", None, Some(&access)), 200),
        ("avatar-upload", event("POST", "/api/accounts/profile/avatar/upload/", Some(json!({"size": 1000})), Some(&access)), 200),
        // Nothing was uploaded under this id: the confirmation looks in the media store and says so.
        (
            "avatar-confirm",
            event("POST", "/api/accounts/profile/avatar/confirm", Some(json!({"upload_id": "0123456789abcdef0123456789abcdef"})), Some(&access)),
            400,
        ),
        ("user-details", event("GET", "/api/auth/user/", None, Some(&access)), 200),
        ("token-verify", event("POST", "/api/auth/token/verify/", Some(json!({"token": access})), None), 200),
        ("token-refresh", event("POST", "/api/auth/token/refresh/", Some(json!({})), None), 401),
        ("refresh", event("POST", "/api/auth/refresh/", Some(json!({"refresh": refresh})), None), 200),
        // Not the spent token: logging out with it would end the session the cases below use.
        ("logout", event("POST", "/api/auth/logout/", Some(json!({"refresh": "not-a-token"})), None), 401),
        ("registration", event("GET", "/api/auth/registration/", None, None), 405),
        // Reset request for an address nobody has: answered without sending anything.
        ("password-reset", event("POST", "/api/auth/password/reset/", Some(json!({"email": "nobody@example.com"})), None), 200),
        ("password-reset-confirm", event("POST", "/api/auth/password/reset/confirm", Some(json!({"uid": "zz", "token": "1-00", "new_password1": "Harbor-Lantern-58", "new_password2": "Harbor-Lantern-58"})), None), 400),
        ("password-reset-link", event("GET", "/password-reset/confirm/1/abc-123/", None, None), 200),
        ("jwks", event("GET", "/.well-known/jwks.json", None, None), 200),
        ("schema", event("GET", "/api/schema/", None, None), 200),
        ("password-change", event("POST", "/api/auth/password/change/", Some(json!({"old_password": "wrong", "new_password1": "a", "new_password2": "a"})), Some(&access)), 400),
        // Last: this session continues, the login's session above ends.
        ("password-change", event("POST", "/api/auth/password/change/", Some(json!({"old_password": strong, "new_password1": "Harbor-Lantern-58", "new_password2": "Harbor-Lantern-58"})), Some(&access)), 200),
    ];
    // Every function of the route table is exercised here.
    let covered: std::collections::HashSet<&str> = cases.iter().map(|(function, _, _)| *function).collect();
    for endpoint in accounts::http::Endpoint::ALL {
        assert!(covered.contains(endpoint.function()), "add a case for the {} function", endpoint.function());
    }
    for (function, event, expected) in cases {
        let answer = invoke(function, event).await;
        let (status, body) = status_and_body(&answer);
        assert_eq!(status, expected, "{function}: {body}");
    }
}

#[tokio::test]
async fn every_function_answers_under_the_lambda_runtime() {
    let dir = tempfile::tempdir().unwrap();
    every_function_answers(|function, event| invoke(function, dir.path(), event)).await;
}

/// The configuration of a cloud deployment (the template's), on moto.
struct Cloud {
    env: Vec<(String, String)>,
    bucket: String,
}

impl Cloud {
    async fn start() -> Cloud {
        let endpoint = std::env::var("DYNAMODB_ENDPOINT").expect("DYNAMODB_ENDPOINT is not set: run scripts/test (it starts moto)");
        let s3_endpoint = std::env::var("S3_ENDPOINT").unwrap_or_else(|_| endpoint.clone());
        let prefix = format!("lambda{}", uuid::Uuid::new_v4().simple());
        let tables = accounts::config::DynamoTables {
            users: format!("{prefix}-users"),
            sessions: format!("{prefix}-sessions"),
            blacklist: format!("{prefix}-blacklist"),
            throttle: format!("{prefix}-throttle"),
        };
        let client = accounts::store::dynamodb::client(Some(&endpoint)).await;
        accounts::store::dynamodb::DynamoStore::new(client, tables.clone()).create_tables().await.unwrap();
        let bucket = prefix.clone();
        let s3 = accounts::media::s3::client(Some(&s3_endpoint)).await;
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        use accounts::config::vars;
        let env = [
            (vars::STORAGE, "dynamodb".to_string()),
            (vars::JWT_SECRET, "k".repeat(32)),
            (vars::DYNAMODB_ENDPOINT, endpoint.clone()),
            (vars::USERS_TABLE, tables.users),
            (vars::SESSIONS_TABLE, tables.sessions),
            (vars::BLACKLIST_TABLE, tables.blacklist),
            (vars::THROTTLE_TABLE, tables.throttle),
            (vars::S3_ENDPOINT, s3_endpoint),
            (vars::SES_ENDPOINT, endpoint),
        ];
        Cloud { env: env.into_iter().map(|(k, v)| (k.to_string(), v)).collect(), bucket }
    }

    /// The environment of `function`: the bucket only where the template sets it (the functions
    /// that keep avatars), like `template.yaml`.
    fn env_of(&self, function: &str) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        let endpoint = accounts::http::Endpoint::from_function(function).unwrap();
        if endpoint.needs().media {
            env.push((accounts::config::vars::MEDIA_BUCKET.to_string(), self.bucket.clone()));
        }
        env
    }
}

/// The binaries Lambda runs: each function with only its own backends, on DynamoDB and S3.
#[tokio::test]
async fn every_lambda_build_answers_on_dynamodb_and_s3() {
    let cloud = &Cloud::start().await;
    every_function_answers(|function, event| async move {
        let env = cloud.env_of(function);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (id, body) = run(&lambda_binary(function), &env, event).await;
        assert_eq!(id, "req-1", "{function}: {body}");
        body
    })
    .await;
}

/// A Lambda build has no embedded store: pointed at one, it exits at start and says why (Lambda
/// reports the exit and the message as an init error).
#[test]
fn a_lambda_build_refuses_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(lambda_binary("jwks"));
    for var in accounts::config::vars::ALL {
        command.env_remove(var);
    }
    // Nothing listens there: a function that got past its start would fail differently.
    let output = command
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("AWS_LAMBDA_FUNCTION_NAME", "jwks")
        .env("DATA_DIR", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("`sqlite` feature"), "{stderr}");
}

/// What a function writes to CloudWatch: JSON log lines that all carry the request's ids (API
/// Gateway's and the invocation's), and the request's business metrics as an embedded metric
/// format line (namespace, Stage and Function dimensions, the counts) after it is answered.
#[tokio::test]
async fn lambda_logs_carry_request_ids_and_business_metrics() {
    use accounts::telemetry::{self, names};
    let dir = tempfile::tempdir().unwrap();
    let mut failed_login = event("POST", "/api/auth/login/", Some(json!({"username": "nobody", "password": "wrong-password-1"})), None);
    failed_login["requestContext"]["requestId"] = json!("api-request-7");
    let env = [("DATA_DIR", dir.path().to_str().unwrap()), ("STAGE", "rehearsal"), ("RUST_LOG", "info")];
    let (id, answer, stdout) = run_logged(&binary("login"), &env, failed_login, true).await;
    assert_eq!(id, "req-1", "{answer}");
    assert_eq!(status_and_body(&answer).0, 400, "{answer}");

    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    let (emf, logs): (Vec<&Value>, Vec<&Value>) = lines.iter().partition(|l| l.get("_aws").is_some());
    let in_request: Vec<&&Value> = logs.iter().filter(|l| l["fields"]["message"] != "starting").collect();
    assert!(in_request.iter().any(|l| l["fields"]["message"] == "request"), "{stdout}");
    for line in in_request {
        assert_eq!(line["span"]["api_request_id"], "api-request-7", "{line}");
        assert_eq!(line["span"]["lambda_request_id"], "req-1", "{line}");
    }

    assert_eq!(emf.len(), 1, "{stdout}");
    let doc = emf[0];
    let directive = &doc["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], telemetry::NAMESPACE);
    assert_eq!(directive["Dimensions"], json!([[telemetry::STAGE_DIMENSION, telemetry::FUNCTION_DIMENSION]]));
    assert_eq!(directive["Metrics"], json!([{"Name": names::LOGIN_FAILED}]), "{doc}");
    assert_eq!((&doc["Stage"], &doc["Function"], &doc[names::LOGIN_FAILED]), (&json!("rehearsal"), &json!("login"), &json!(1)));
    assert!(doc["_aws"]["Timestamp"].as_u64().is_some(), "{doc}");
}
