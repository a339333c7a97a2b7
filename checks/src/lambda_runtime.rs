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
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
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
    let (id, answer, _) = run_logged(binary, env, event, "warn").await;
    (id, answer)
}

/// `run`, with the function's log (its stdout) at `level`, returned too.
async fn run_logged(binary: &FsPath, env: &[(&str, &str)], event: Value, level: &str) -> (String, Value, String) {
    let mut api = RuntimeApi::start("req-1").await;
    api.offer(event);
    // None of this process's configuration; the function's name is the Lambda service's to set.
    let remove: Vec<&str> = accounts::config::vars::ALL
        .iter()
        .copied()
        .filter(|v| *v != accounts::config::vars::AWS_LAMBDA_FUNCTION_NAME)
        .collect();
    let mut command = api.command(binary, &remove);
    command.env("RUST_LOG", level).stdout(Stdio::piped()).stderr(Stdio::inherit());
    command.envs(env.iter().copied());
    let mut child = command.spawn().unwrap();
    let answer = api.answer(Duration::from_secs(60)).await;
    let _ = child.kill();
    let log = child.wait_with_output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    let answer = answer.expect("the function answered within 60 s");
    (answer.request_id, answer.body, log)
}

fn status_and_body(answer: &Value) -> (u64, Value) {
    // A web page's HTML as a string; no body (204) as null.
    let body = answer["body"]
        .as_str()
        .filter(|b| !b.is_empty())
        .map(|b| serde_json::from_str(b).unwrap_or_else(|_| Value::String(b.to_string())))
        .unwrap_or(Value::Null);
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
        event(
            "POST",
            "/api/auth/registration/",
            Some(json!({"username": "lambda", "password1": strong, "password2": strong})),
            None,
        ),
    )
    .await;
    let (status, body) = status_and_body(&registered);
    assert_eq!(status, 201, "{body}");
    let access = body["access"].as_str().unwrap().to_string();
    let refresh = body["refresh"].as_str().unwrap().to_string();

    let cases: Vec<(&str, Value, u64)> = vec![
        ("login", event("POST", "/api/auth/login", Some(json!({"username": "LAMBDA", "password": strong})), None), 200),
        ("profile", event("GET", "/api/accounts/profile/", None, Some(&access)), 200),
        (
            "avatar-upload",
            event("POST", "/api/accounts/profile/avatar/upload/", Some(json!({"size": 1000})), Some(&access)),
            200,
        ),
        // Nothing was uploaded under this id: the confirmation looks in the media store and says so.
        (
            "avatar-confirm",
            event(
                "POST",
                "/api/accounts/profile/avatar/confirm",
                Some(json!({"upload_id": "0123456789abcdef0123456789abcdef"})),
                Some(&access),
            ),
            400,
        ),
        ("user-details", event("GET", "/api/auth/user/", None, Some(&access)), 200),
        ("sessions", event("GET", "/api/auth/sessions", None, Some(&access)), 200),
        ("session", event("DELETE", "/api/auth/sessions/0123456789abcdef0123456789abcdef/", None, Some(&access)), 404),
        ("token-verify", event("POST", "/api/auth/token/verify/", Some(json!({"token": access})), None), 200),
        ("token-refresh", event("POST", "/api/auth/token/refresh/", Some(json!({})), None), 401),
        ("refresh", event("POST", "/api/auth/refresh/", Some(json!({"refresh": refresh})), None), 200),
        // Not the spent token: logging out with it would end the session the cases below use.
        ("logout", event("POST", "/api/auth/logout/", Some(json!({"refresh": "not-a-token"})), None), 401),
        ("registration", event("GET", "/api/auth/registration/", None, None), 405),
        // Reset request for an address nobody has: answered without sending anything.
        (
            "password-reset",
            event("POST", "/api/auth/password/reset/", Some(json!({"email": "nobody@example.com"})), None),
            200,
        ),
        (
            "password-reset-confirm",
            event(
                "POST",
                "/api/auth/password/reset/confirm",
                Some(
                    json!({"uid": "zz", "token": "1-00", "new_password1": "Harbor-Lantern-58", "new_password2": "Harbor-Lantern-58"}),
                ),
                None,
            ),
            400,
        ),
        ("password-reset-link", event("GET", "/password-reset/confirm/1/abc-123/", None, None), 200),
        ("jwks", event("GET", "/.well-known/jwks.json", None, None), 200),
        // Static HTML: no store, no keys (in the cloud its function has no AWS permission).
        ("account-delete-page", event("GET", "/account/delete/", None, None), 200),
        // A wrong password: counted on the login throttle, nothing deleted.
        (
            "account-deletion",
            event("DELETE", "/api/auth/user/", Some(json!({"password": "wrong"})), Some(&access)),
            400,
        ),
        ("schema", event("GET", "/api/schema/", None, None), 200),
        // The catch-all ($default): unknown paths and other methods, answered as the contract says.
        ("not-found", event("GET", "/api/nothing/", None, None), 404),
        ("not-found", event("GET", "/api/auth/login/", None, None), 405),
        ("not-found", event("DELETE", "/api/accounts/profile/", None, None), 401),
        ("not-found", event("DELETE", "/api/accounts/profile", None, Some(&access)), 405),
        (
            "password-change",
            event(
                "POST",
                "/api/auth/password/change/",
                Some(json!({"old_password": "wrong", "new_password1": "a", "new_password2": "a"})),
                Some(&access),
            ),
            400,
        ),
        // Last: this session continues, the login's session above ends.
        (
            "password-change",
            event(
                "POST",
                "/api/auth/password/change/",
                Some(
                    json!({"old_password": strong, "new_password1": "Harbor-Lantern-58", "new_password2": "Harbor-Lantern-58"}),
                ),
                Some(&access),
            ),
            200,
        ),
        // The very last: the account with its sessions and avatar objects.
        (
            "account-deletion",
            event("DELETE", "/api/auth/user", Some(json!({"password": "Harbor-Lantern-58"})), Some(&access)),
            204,
        ),
    ];
    // Every function of the route table is exercised here.
    let covered: std::collections::HashSet<&str> = cases.iter().map(|(function, _, _)| *function).collect();
    for endpoint in accounts::http::Endpoint::ALL {
        assert!(covered.contains(endpoint.function()), "add a case for the {} function", endpoint.function());
    }
    assert!(covered.contains(accounts::http::CATCH_ALL_FUNCTION));
    for (function, event, expected) in cases {
        let request = format!("{} {}", event["requestContext"]["http"]["method"], event["rawPath"]);
        let answer = invoke(function, event).await;
        let (status, body) = status_and_body(&answer);
        assert_eq!(status, expected, "{function}: {body}");
        if function == accounts::http::CATCH_ALL_FUNCTION {
            // The very bodies of the local server (and a JSON content type, not the platform's 404).
            assert_eq!(answer["headers"]["content-type"], "application/json", "{request}");
            let detail = match status {
                404 => "Not found.".to_string(),
                405 => format!("Method \"{}\" not allowed.", request.split(' ').next().unwrap().trim_matches('"')),
                _ => "Authentication credentials were not provided.".to_string(),
            };
            assert_eq!(body["detail"], detail, "{request}");
        }
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
    /// The signing keys' secret (`JWT_SECRET_ID`) and a client of the emulator to change it.
    secret: String,
    secrets: accounts::secrets::Client,
}

const KEY_1: &str = "lambda-key-one-lambda-key-one-lambda-1";
const KEY_2: &str = "lambda-key-two-lambda-key-two-lambda-2";

impl Cloud {
    async fn start() -> Cloud {
        let endpoint = std::env::var("DYNAMODB_ENDPOINT")
            .expect("DYNAMODB_ENDPOINT is not set: run scripts/test (it starts moto)");
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
        // The signing keys as the deploy guide makes them: a key set in Secrets Manager.
        let secrets = accounts::secrets::client(Some(&endpoint)).await;
        let secret = format!("accounts/{prefix}/jwt");
        let key_set = json!({"current": "k1", "keys": {"k1": {"secret": KEY_1}}}).to_string();
        secrets.create_secret().name(&secret).secret_string(key_set).send().await.unwrap();
        use accounts::config::vars;
        let env = [
            (vars::STORAGE, "dynamodb".to_string()),
            (vars::JWT_SECRET_ID, secret.clone()),
            (vars::SECRETS_MANAGER_ENDPOINT, endpoint.clone()),
            (vars::DYNAMODB_ENDPOINT, endpoint.clone()),
            (vars::USERS_TABLE, tables.users),
            (vars::SESSIONS_TABLE, tables.sessions),
            (vars::BLACKLIST_TABLE, tables.blacklist),
            (vars::THROTTLE_TABLE, tables.throttle),
            (vars::S3_ENDPOINT, s3_endpoint),
            (vars::SES_ENDPOINT, endpoint),
        ];
        Cloud { env: env.into_iter().map(|(k, v)| (k.to_string(), v)).collect(), bucket, secret, secrets }
    }

    /// The environment of `function`: the bucket only where the template sets it (the functions
    /// that keep avatars), like `template.yaml`.
    fn env_of(&self, function: &str) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        let endpoint = accounts::http::Endpoint::from_function(function);
        if endpoint.is_some_and(|e| e.needs().media) {
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

/// `kid` of a token's header.
fn kid(token: &str) -> Option<String> {
    use base64::Engine;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap();
    serde_json::from_slice::<Value>(&header).unwrap()["kid"].as_str().map(str::to_string)
}

/// Key rotation as an operator does it (docs/design.md, signing keys), through the Lambda builds: each invocation is
/// a cold start that reads the key set from Secrets Manager (moto). Tokens of the retired key
/// verify while it stays in the set, new tokens carry the new kid, a token without kid (issued
/// before kids) verifies under the current key; no key ever shows in the functions' logs.
#[tokio::test]
async fn signing_keys_rotate_under_the_lambda_runtime() {
    let cloud = &Cloud::start().await;
    let mut logs = String::new();
    let mut call = async |function: &str, event: Value| -> (u64, Value) {
        let env = cloud.env_of(function);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (id, answer, log) = run_logged(&lambda_binary(function), &env, event, "info").await;
        assert_eq!(id, "req-1", "{function}: {answer}");
        logs.push_str(&log);
        status_and_body(&answer)
    };
    let put = |set: Value| async move {
        cloud.secrets.put_secret_value().secret_id(&cloud.secret).secret_string(set.to_string()).send().await.unwrap();
    };
    let verify = |token: &str| event("POST", "/api/auth/token/verify/", Some(json!({"token": token})), None);
    let strong = "xk29!pLm#q";
    let (status, body) = call(
        "registration",
        event(
            "POST",
            "/api/auth/registration/",
            Some(json!({"username": "rotor", "password1": strong, "password2": strong})),
            None,
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let old = body["access"].as_str().unwrap().to_string();
    assert_eq!(kid(&old).as_deref(), Some("k1"));

    // Steps 1-2: the new key joins the set (the old one still signs); step 3: it becomes current.
    put(json!({"current": "k1", "keys": {"k1": KEY_1, "k2": KEY_2}})).await;
    let (_, body) =
        call("login", event("POST", "/api/auth/login/", Some(json!({"username": "rotor", "password": strong})), None))
            .await;
    assert_eq!(kid(body["access"].as_str().unwrap()).as_deref(), Some("k1"), "the current key still signs");
    put(json!({"current": "k2", "keys": {"k2": KEY_2, "k1": KEY_1}})).await;
    let (status, body) =
        call("login", event("POST", "/api/auth/login/", Some(json!({"username": "rotor", "password": strong})), None))
            .await;
    assert_eq!(status, 200, "{body}");
    let new = body["access"].as_str().unwrap().to_string();
    assert_eq!(kid(&new).as_deref(), Some("k2"), "new tokens carry the new kid");
    assert_eq!(call("token-verify", verify(&old)).await.0, 200, "a token of the retired key still verifies");
    assert_eq!(call("token-verify", verify(&new)).await.0, 200);
    // A token without kid, as issued before kids (the mobile apps hold such): the current key.
    let claims: Value = {
        use base64::Engine;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(new.split('.').nth(1).unwrap()).unwrap();
        serde_json::from_slice(&payload).unwrap()
    };
    let kidless = |secret: &str| {
        let tokens = accounts::domain::tokens::TokenService::new(
            secret.as_bytes(),
            Duration::from_secs(900),
            Duration::from_secs(900),
        );
        let session = accounts::domain::model::Session {
            id: claims["sid"].as_str().unwrap().into(),
            user_id: claims["user_id"].as_str().unwrap().parse().unwrap(),
            refresh_jti: "x".into(),
            created_at: claims["iat"].as_i64().unwrap(),
            expires_at: claims["iat"].as_i64().unwrap() + 900,
            password_version: 0,
            ..Default::default()
        };
        tokens.current_pair(&session).access
    };
    assert_eq!(kid(&kidless(KEY_2)), None);
    assert_eq!(call("token-verify", verify(&kidless(KEY_2))).await.0, 200, "no kid: verified under the current key");
    assert_eq!(call("token-verify", verify(&kidless(KEY_1))).await.0, 401, "no kid: never under a retired key");
    // Step 4: the old key leaves the set; its tokens stop verifying.
    put(json!({"current": "k2", "keys": {"k2": KEY_2}})).await;
    let (status, body) = call("token-verify", verify(&old)).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("token_not_valid")), "{body}");
    assert_eq!(call("token-verify", verify(&new)).await.0, 200);

    assert!(logs.contains("\"kid\":\"k2\""), "each start logs its kid: {logs}");
    for key in [KEY_1, KEY_2] {
        assert!(!logs.contains(key), "a key in the log: {logs}");
    }
}

/// A cutover under the Lambda runtime: the old service's key is read from the secret
/// `LEGACY_JWT_SECRET_ID` names at cold start (as the template configures it), its tokens work
/// (an access token reads the user, a refresh token is exchanged for a new session) and the key
/// is never logged; a function whose legacy secret is missing does not start.
#[tokio::test]
async fn legacy_tokens_under_the_lambda_runtime() {
    use accounts::config::vars;
    let cloud = &Cloud::start().await;
    let legacy_secret = format!("{}-legacy", cloud.secret);
    cloud.secrets.create_secret().name(&legacy_secret).secret_string(testkit::LEGACY_SECRET).send().await.unwrap();
    let legacy_env = |secret: &str| {
        let mut env = cloud.env_of("user-details");
        env.push((vars::LEGACY_JWT_SECRET_ID.to_string(), secret.to_string()));
        env.push((vars::LEGACY_TOKENS_UNTIL.to_string(), "2999-01-01T00:00:00Z".to_string()));
        env
    };
    let mut logs = String::new();
    let mut call = async |function: &str, secret: &str, event: Value| -> (u64, Value) {
        let env = legacy_env(secret);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (_, answer, log) = run_logged(&lambda_binary(function), &env, event, "info").await;
        logs.push_str(&log);
        status_and_body(&answer)
    };
    let strong = "xk29!pLm#q";
    let registration = json!({"username": "oldtimer", "password1": strong, "password2": strong});
    let (status, body) =
        call("registration", &legacy_secret, event("POST", "/api/auth/registration/", Some(registration), None)).await;
    assert_eq!(status, 201, "{body}");
    let id = body["user"]["pk"].as_u64().unwrap();
    let (access, _) = testkit::legacy_token("access", id, 300);
    let (status, body) =
        call("user-details", &legacy_secret, event("GET", "/api/auth/user/", None, Some(&access))).await;
    assert_eq!((status, body["username"].as_str()), (200, Some("oldtimer")), "{body}");
    let (refresh, _) = testkit::legacy_token("refresh", id, 3600);
    let (status, body) =
        call("refresh", &legacy_secret, event("POST", "/api/auth/refresh/", Some(json!({"refresh": refresh})), None))
            .await;
    assert_eq!(status, 200, "{body}");
    assert!(!logs.contains(testkit::LEGACY_SECRET), "the legacy key in a log: {logs}");
    assert!(logs.contains("legacy_tokens_until"), "each start logs until when: {logs}");

    let mut command = Command::new(lambda_binary("user-details"));
    for var in vars::ALL {
        command.env_remove(var);
    }
    // Nothing listens there: a function that got past its start would fail differently.
    let output = command
        .envs(legacy_env("accounts/no-such-legacy-secret"))
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("AWS_LAMBDA_FUNCTION_NAME", "user-details")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("LEGACY_JWT_SECRET_ID") && stderr.contains("ResourceNotFoundException"), "{stderr}");
}

/// A function whose secret is missing or not a key set does not start, and says why without
/// the secret's content (Lambda reports the exit and the message as an init error).
#[tokio::test]
async fn a_bad_key_set_stops_the_function_at_start() {
    let cloud = &Cloud::start().await;
    cloud.secrets.put_secret_value().secret_id(&cloud.secret).secret_string(KEY_1).send().await.unwrap();
    for (secret, expected) in
        [(cloud.secret.as_str(), "not a key set"), ("accounts/no-such-secret", "ResourceNotFoundException")]
    {
        let mut command = Command::new(lambda_binary("jwks"));
        for var in accounts::config::vars::ALL {
            command.env_remove(var);
        }
        command.envs(cloud.env_of("jwks")).env(accounts::config::vars::JWT_SECRET_ID, secret);
        // Nothing listens there: a function that got past its start would fail differently.
        let output = command
            .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
            .env("AWS_LAMBDA_FUNCTION_NAME", "jwks")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(stderr.contains("JWT_SECRET_ID") && stderr.contains(expected), "{stderr}");
        assert!(!stderr.contains(KEY_1) && !String::from_utf8_lossy(&output.stdout).contains(KEY_1), "{stderr}");
    }
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
    let mut failed_login =
        event("POST", "/api/auth/login/", Some(json!({"username": "nobody", "password": "wrong-password-1"})), None);
    failed_login["requestContext"]["requestId"] = json!("api-request-7");
    let env = [("DATA_DIR", dir.path().to_str().unwrap()), ("STAGE", "rehearsal"), ("RUST_LOG", "info")];
    let (id, answer, stdout) = run_logged(&binary("login"), &env, failed_login, "info").await;
    assert_eq!(id, "req-1", "{answer}");
    assert_eq!(status_and_body(&answer).0, 400, "{answer}");

    let lines: Vec<Value> =
        stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
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
    assert_eq!(
        (&doc["Stage"], &doc["Function"], &doc[names::LOGIN_FAILED]),
        (&json!("rehearsal"), &json!("login"), &json!(1))
    );
    assert!(doc["_aws"]["Timestamp"].as_u64().is_some(), "{doc}");
}
