//! Lambda cold starts: spawns each function's release binary against the Lambda Runtime API
//! emulator the tests use too (`testkit::lambda`) and times, from the spawn, (1) its first `GET .../invocation/next` (init
//! done: configuration, store client, router) and (2) its answer to that first event (a
//! happy-path request of the endpoint). The yardstick is `hello-lambda`, a bare `lambda_http`
//! function built with the same profile, run alternately with each function.
//!
//!     cold-start BIN_DIR RUNS embedded|dynamodb > cold_start.json
//!
//! `dynamodb` needs `DYNAMODB_ENDPOINT` (moto): the store is what AWS runs, the round trips go
//! to the emulator. Each run gets fresh data where the request uses it up (a new refresh token,
//! a new username), so every answer is a real success.
//!
//! Each run also reads the process's peak resident memory (VmHWM) after its answer: what sizes
//! the functions' `MemorySize`. The profile function gets one more case, the costliest avatar it
//! accepts: a PNG of 7000 × 7000 pixels (49 MP, under the 50 MP decode limit) that compresses to
//! a small upload but decodes to ~150 MB.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use accounts::config::{Config, StorageConfig};
use accounts::domain::now;
use accounts::domain::sessions::start_session;
use accounts::http::Endpoint;
use accounts::state::AppState;
use accounts::store::dynamodb::{self, DynamoStore};
use accounts::store::SharedStore;
use anyhow::{bail, Context};
use axum::http::Method;
use serde_json::{json, Value};
use testkit::lambda::{api_gateway_event, RuntimeApi};
use tower::ServiceExt;

const SECRET: &str = "bench-cold-start-secret-0123456789abcdef";
const PASSWORD: &str = "xk29!pLm#q";
const HELLO: &str = "hello-lambda";

fn event(method: &Method, path: &str, body: Option<Value>, bearer: Option<&str>) -> Value {
    api_gateway_event(method.as_str(), path, body, bearer)
}

/// The store and configuration the functions will see, with one registered user.
struct Fixture {
    env: Vec<(String, String)>,
    store: SharedStore,
    state: AppState,
    username: String,
    user_id: u64,
    access: String,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn new(mode: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut env: Vec<(String, String)> = vec![
            ("JWT_SECRET".into(), SECRET.into()),
            ("DATA_DIR".into(), dir.path().to_string_lossy().into_owned()),
            // Every run registers from the same address: no per-IP limit in the way.
            ("THROTTLE_REGISTRATION_IP".into(), "1000000/60".into()),
        ];
        if mode == "dynamodb" {
            let endpoint = std::env::var("DYNAMODB_ENDPOINT").context("dynamodb mode needs DYNAMODB_ENDPOINT")?;
            let prefix = format!("b{}", uuid::Uuid::new_v4().simple());
            env.extend([
                ("STORAGE".into(), "dynamodb".into()),
                ("DYNAMODB_ENDPOINT".into(), endpoint),
                ("USERS_TABLE".into(), format!("{prefix}-users")),
                ("SESSIONS_TABLE".into(), format!("{prefix}-sessions")),
                ("BLACKLIST_TABLE".into(), format!("{prefix}-blacklist")),
            ]);
            for (name, value) in
                [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_REGION", "us-east-1")]
            {
                if std::env::var_os(name).is_none() {
                    std::env::set_var(name, value);
                }
                env.push((name.into(), std::env::var(name).unwrap()));
            }
        } else if mode != "embedded" {
            bail!("mode is embedded or dynamodb, not {mode:?}");
        }
        let lookup = env.clone();
        let config = Config::from_lookup(|k| lookup.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))?;
        let state = AppState::from_config(config).await?;
        if let StorageConfig::DynamoDb { tables, endpoint } = &state.config.storage {
            let client = dynamodb::client(endpoint.as_deref()).await;
            DynamoStore::new(client, tables.clone()).create_tables().await?;
        }
        // The user is registered through the API itself (in process), as a client would.
        let username = "coldstart".to_string();
        let request = axum::http::Request::post(Endpoint::Registration.path())
            .header("content-type", "application/json")
            .body(axum::body::Body::from(
                json!({"username": username, "password1": PASSWORD, "password2": PASSWORD}).to_string(),
            ))?;
        let response = accounts::http::app(state.clone()).oneshot(request).await?;
        let status = response.status();
        let body: Value = serde_json::from_slice(&axum::body::to_bytes(response.into_body(), 1 << 20).await?)?;
        if status != axum::http::StatusCode::CREATED {
            bail!("registering the benchmark user: {status} {body}");
        }
        let user_id = body["user"]["pk"].as_u64().context("user.pk")?;
        let access = body["access"].as_str().context("access")?.to_string();
        Ok(Self { env, store: state.store.clone(), state, username, user_id, access, _dir: dir })
    }

    async fn fresh_refresh(&self) -> anyhow::Result<String> {
        Ok(start_session(self.store.as_ref(), &self.state.tokens, self.user_id, 0, now()).await?.refresh)
    }

    /// A happy-path request of `endpoint` (new endpoints get a plain authenticated request).
    async fn event_for(&self, endpoint: Endpoint, run: usize) -> anyhow::Result<Value> {
        let path = endpoint.path();
        let post = Method::POST;
        Ok(match endpoint {
            Endpoint::Registration => {
                let name = format!("cold{}r{run}", uuid::Uuid::new_v4().simple());
                event(&post, path, Some(json!({"username": name, "password1": PASSWORD, "password2": PASSWORD})), None)
            }
            Endpoint::Login => event(&post, path, Some(json!({"username": self.username, "password": PASSWORD})), None),
            Endpoint::Refresh | Endpoint::TokenRefresh | Endpoint::Logout => {
                event(&post, path, Some(json!({"refresh": self.fresh_refresh().await?})), None)
            }
            Endpoint::TokenVerify => event(&post, path, Some(json!({"token": self.access})), None),
            _ if endpoint.methods().contains(&Method::GET) => event(&Method::GET, path, None, Some(&self.access)),
            _ => event(&post, path, Some(json!({})), Some(&self.access)),
        })
    }
}

struct Sample {
    init: Duration,
    answer: Duration,
    status: u64,
    /// Peak resident memory of the process (VmHWM) when it had answered.
    peak_rss_kib: u64,
}

/// `VmHWM` of a running process, in KiB (0 when unreadable).
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|l| {
                l.strip_prefix("VmHWM:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// A PATCH of the profile with the costliest avatar the limits let through, as API Gateway
/// hands a multipart body to the function (base64).
fn largest_avatar_event(access: &str) -> anyhow::Result<Value> {
    use base64::Engine;
    let side = 7000;
    let image = image::RgbImage::from_pixel(side, side, image::Rgb([40, 90, 160]));
    let mut png = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    let boundary = "bench-boundary-7000";
    let mut body = format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"avatar\"; filename=\"big.png\"\r\ncontent-type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&png);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut event = event(&Method::PATCH, Endpoint::Profile.path(), None, Some(access));
    event["headers"]["content-type"] = json!(format!("multipart/form-data; boundary={boundary}"));
    event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(&body));
    event["isBase64Encoded"] = json!(true);
    Ok(event)
}

async fn run_once(
    binary: &Path,
    function: &str,
    env: &[(String, String)],
    event: Value,
    api: &mut RuntimeApi,
) -> anyhow::Result<Sample> {
    api.offer(event);
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(api.lambda_env(function))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let spawned = Instant::now();
    let mut child = command.spawn().with_context(|| format!("spawning {}", binary.display()))?;
    let outcome = api.answer(Duration::from_secs(30)).await;
    let peak_rss_kib = peak_rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let Some(invocation) = outcome else { bail!("{function}: no answer within 30 s") };
    if invocation.request_id == "init-error" {
        bail!("{function}: init error {}", invocation.body);
    }
    let next_at = invocation.next_at.with_context(|| format!("{function}: answered without asking for an event"))?;
    Ok(Sample {
        init: next_at - spawned,
        answer: invocation.answer_at - spawned,
        status: invocation.body["statusCode"].as_u64().unwrap_or(0),
        peak_rss_kib,
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One row of the report: `samples` of a function against the `hello` runs alternating with them.
fn summary(function: &str, binary_bytes: u64, runs: usize, samples: &[Sample], hello: &[Sample]) -> Value {
    let init = median(samples.iter().map(|s| ms(s.init)).collect());
    let answer = median(samples.iter().map(|s| ms(s.answer)).collect());
    let hello_init = median(hello.iter().map(|s| ms(s.init)).collect());
    let hello_answer = median(hello.iter().map(|s| ms(s.answer)).collect());
    let statuses: HashMap<u64, usize> = samples.iter().fold(HashMap::new(), |mut m, s| {
        *m.entry(s.status).or_default() += 1;
        m
    });
    json!({
        "function": function,
        "runs": runs,
        "binary_bytes": binary_bytes,
        "init_ms_median": init,
        "init_ms_min": samples.iter().map(|s| ms(s.init)).fold(f64::INFINITY, f64::min),
        "answer_ms_median": answer,
        "hello_init_ms_median": hello_init,
        "init_ratio_to_hello": init / hello_init,
        "answer_ratio_to_hello": answer / hello_answer,
        "peak_rss_kib_max": samples.iter().map(|s| s.peak_rss_kib).max().unwrap_or(0),
        "statuses": statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bin_dir, runs, mode] = args.as_slice() else { bail!("usage: cold-start BIN_DIR RUNS embedded|dynamodb") };
    let bin_dir = PathBuf::from(bin_dir);
    let runs: usize = runs.parse().context("RUNS is a number")?;
    let fixture = Fixture::new(mode).await?;

    let mut api = RuntimeApi::start("bench-1").await;

    // Each function's runs alternate with runs of hello-lambda, and its ratio is to the hello
    // runs beside it: a machine that speeds up or slows down during the run (other load, CPU
    // frequency) moves both alike. Measured one after the other, hello's median alone moved by
    // a third between runs, more than the difference the ratio is about.
    let hello_binary = bin_dir.join(HELLO);
    anyhow::ensure!(hello_binary.exists(), "{} is not built", hello_binary.display());
    let hello_event = || event(&Method::GET, "/hello", None, None);
    let mut results = Vec::new();
    let mut all_hello: Vec<Sample> = Vec::new();
    for endpoint in Endpoint::ALL {
        let function = endpoint.function().to_string();
        let binary = bin_dir.join(&function);
        if !binary.exists() {
            // An endpoint added after the release build: say so rather than lose the whole run.
            eprintln!("cold start {mode:9} {function:14} skipped: {} is not built", binary.display());
            continue;
        }
        let size = std::fs::metadata(&binary)?.len();
        let (mut samples, mut hello) = (Vec::new(), Vec::new());
        // One unmeasured run of each first: the binaries in the page cache, as a warm host has them.
        for run in 0..=runs {
            let beside = run_once(&hello_binary, HELLO, &fixture.env, hello_event(), &mut api).await?;
            let sample =
                run_once(&binary, &function, &fixture.env, fixture.event_for(*endpoint, run).await?, &mut api).await?;
            if run > 0 {
                samples.push(sample);
                hello.push(beside);
            }
        }
        let row = summary(&function, size, runs, &samples, &hello);
        eprintln!(
            "cold start {mode:9} {function:14} init {:7.2} ms ({:.2}x hello beside it)  first answer {:7.2} ms  peak RSS {:6.1} MiB  statuses {}",
            row["init_ms_median"].as_f64().unwrap_or(0.0),
            row["init_ratio_to_hello"].as_f64().unwrap_or(0.0),
            row["answer_ms_median"].as_f64().unwrap_or(0.0),
            row["peak_rss_kib_max"].as_f64().unwrap_or(0.0) / 1024.0,
            row["statuses"],
        );
        results.push(row);
        all_hello.extend(hello);
    }
    let hello_size = std::fs::metadata(&hello_binary)?.len();
    // hello-lambda's own row: all its runs (beside every function).
    results.insert(0, summary(HELLO, hello_size, runs, &all_hello, &all_hello));
    // The profile function's worst case: memory for the largest image the limits accept.
    let profile = bin_dir.join(Endpoint::Profile.function());
    if profile.exists() {
        let event = largest_avatar_event(&fixture.access)?;
        let sample = run_once(&profile, "profile", &fixture.env, event, &mut api).await?;
        let rss = sample.peak_rss_kib as f64 / 1024.0;
        eprintln!(
            "cold start {mode:9} profile + 49 MP avatar: first answer {:7.2} ms  peak RSS {rss:6.1} MiB  status {}",
            ms(sample.answer),
            sample.status
        );
        results.push(json!({
            "function": "profile (49 MP avatar)",
            "runs": 1,
            "answer_ms_median": ms(sample.answer),
            "peak_rss_kib_max": sample.peak_rss_kib,
            "statuses": {sample.status.to_string(): 1},
        }));
    }
    println!("{}", serde_json::to_string_pretty(&json!({"mode": mode, "functions": results}))?);
    Ok(())
}
