//! What one request of each endpoint costs in AWS, measured: the DynamoDB read and write units
//! of its happy path and its Lambda duration. `bench/report.py` turns these into $/1M requests
//! and $/MAU (with template.yaml's MemorySize and the list prices it states).
//!
//!     request-cost BIN_DIR WARM_RUNS > request_cost.json     (needs DYNAMODB_ENDPOINT: moto)
//!
//! * Units: each request goes through the API in process, on a DynamoDB store whose SDK client
//!   records every call's request and response bodies. Moto's `ConsumedCapacity` is a constant
//!   per operation (0.5 for any GetItem, 1 for any PutItem, nothing for UpdateItem and
//!   transactions: moto/dynamodb/responses.py), so the units are computed from the item sizes
//!   by DynamoDB's documented rules (`units_of` below): reads 4 KB per unit (half for eventually
//!   consistent), writes 1 KB per unit, transactions twice, a transaction's ConditionCheck a
//!   write. The size of an item after an UpdateItem is read back (uncounted) once the request is
//!   over; a DeleteItem counts 1 unit (every item here is far below 1 KB: `largest_item_bytes`).
//!   A global secondary index costs one more (standard) write unit for each item put into or
//!   deleted from it, and for an update that sets its key (the sessions table's `by_user`, keys
//!   only, read from DescribeTable).
//! * Duration: the endpoint's release binary runs as a Lambda function (Runtime API emulator of
//!   `testkit::lambda`) on the same tables, and answers one cold and WARM_RUNS warm events; a
//!   warm invocation's duration is from the event's hand-out to the answer, as Lambda bills it
//!   (the emulator stamps the hand-out; a waiting process polls for the next event every 5 ms).
//!   DynamoDB is moto on localhost (a round trip of about a millisecond, like DynamoDB's
//!   single-digit milliseconds in the region). The process's CPU time over the warm runs is
//!   reported too: Lambda gives a function CPU in proportion to its memory (one vCPU at
//!   1,769 MB), so the report stretches the CPU part for functions below that.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accounts::domain::now;
use accounts::domain::sessions::start_session;
use accounts::http::Endpoint;
use accounts::store::dynamodb::DynamoStore;
use anyhow::{bail, Context};
use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use testkit::dynamo::{fresh_client, unique_tables};
use testkit::lambda::{api_gateway_event, RuntimeApi};
use testkit::{TestApp, SECRET, STRONG};

/// Every DynamoDB call the client made: operation, request body, response body.
#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Call>>>);

#[derive(Debug, Clone)]
struct Call {
    operation: String,
    request: Value,
    response: Value,
}

fn json_body(bytes: Option<&[u8]>) -> Value {
    bytes.and_then(|b| serde_json::from_slice(b).ok()).unwrap_or(Value::Null)
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "Recorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let target = context.request().headers().get("x-amz-target").unwrap_or("?");
        let operation = target.rsplit('.').next().unwrap_or(target).to_string();
        let request = json_body(context.request().body().bytes());
        self.0.lock().unwrap().push(Call { operation, request, response: Value::Null });
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        // The orchestrator has read a non-streaming body into memory by now.
        if let Some(last) = self.0.lock().unwrap().last_mut() {
            last.response = json_body(context.response().body().bytes());
        }
        Ok(())
    }
}

impl Recorder {
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// An attribute value's size by DynamoDB's rules (the "Item sizes and formats" page of the
/// developer guide): strings and binaries their bytes, numbers 1 byte per two significant digits
/// plus 1, booleans and null 1, lists and maps 3 bytes plus 1 per element.
fn value_bytes(value: &Value) -> usize {
    let Some((kind, v)) = value.as_object().and_then(|o| o.iter().next()) else { return 0 };
    match kind.as_str() {
        "S" => v.as_str().map_or(0, str::len),
        "N" => number_bytes(v.as_str().unwrap_or("0")),
        "B" => v.as_str().map_or(0, |b| b.len() * 3 / 4),
        "BOOL" | "NULL" => 1,
        "SS" => v.as_array().map_or(0, |a| a.iter().map(|s| s.as_str().map_or(0, str::len)).sum()),
        "NS" => v.as_array().map_or(0, |a| a.iter().map(|n| number_bytes(n.as_str().unwrap_or("0"))).sum()),
        "BS" => v.as_array().map_or(0, |a| a.iter().map(|b| b.as_str().map_or(0, |b| b.len() * 3 / 4)).sum()),
        "L" => 3 + v.as_array().map_or(0, |a| a.iter().map(|e| value_bytes(e) + 1).sum()),
        "M" => 3 + v.as_object().map_or(0, |m| m.iter().map(|(k, e)| k.len() + value_bytes(e) + 1).sum()),
        _ => 0,
    }
}

fn number_bytes(n: &str) -> usize {
    let digits: String = n.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len().max(1);
    significant.div_ceil(2) + 1
}

fn item_bytes(item: &Value) -> usize {
    item.as_object().map_or(0, |m| m.iter().map(|(name, v)| name.len() + value_bytes(v)).sum())
}

fn read_units(bytes: usize, consistent: bool) -> f64 {
    let units = bytes.div_ceil(4096).max(1) as f64;
    if consistent {
        units
    } else {
        units / 2.0
    }
}

fn write_units(bytes: usize) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}

/// Read and write units of the calls of one request, and the largest item seen.
#[derive(Debug, Default)]
struct Units {
    read: f64,
    write: f64,
    largest_item: usize,
}

impl Units {
    fn item(&mut self, bytes: usize) -> usize {
        self.largest_item = self.largest_item.max(bytes);
        bytes
    }
}

/// The size of an item as it is now (after an update), read without being counted.
async fn current_item_bytes(client: &aws_sdk_dynamodb::Client, table: &str, key: &Value) -> anyhow::Result<usize> {
    let mut request = client.get_item().table_name(table).consistent_read(true);
    for (name, value) in key.as_object().context("Key is an object")? {
        request = request.key(name, attribute(value)?);
    }
    let item = request.send().await?.item.unwrap_or_default();
    Ok(item.iter().map(|(name, v)| name.len() + attribute_bytes(v)).sum())
}

fn attribute(value: &Value) -> anyhow::Result<AttributeValue> {
    let (kind, v) = value.as_object().and_then(|o| o.iter().next()).context("an attribute value")?;
    Ok(match kind.as_str() {
        "S" => AttributeValue::S(v.as_str().unwrap_or_default().into()),
        "N" => AttributeValue::N(v.as_str().unwrap_or_default().into()),
        other => bail!("key attribute of type {other}"),
    })
}

fn attribute_bytes(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_bytes(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| number_bytes(n)).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(v) => 3 + v.iter().map(|e| attribute_bytes(e) + 1).sum::<usize>(),
        AttributeValue::M(m) => 3 + m.iter().map(|(k, e)| k.len() + attribute_bytes(e) + 1).sum::<usize>(),
        _ => 0,
    }
}

/// The partition-key attributes of each table's global secondary indexes.
async fn index_keys(
    client: &aws_sdk_dynamodb::Client,
    tables: &[&str],
) -> anyhow::Result<HashMap<String, Vec<String>>> {
    let mut keys = HashMap::new();
    for table in tables {
        let description = client.describe_table().table_name(*table).send().await?;
        let indexes = description.table.and_then(|t| t.global_secondary_indexes).unwrap_or_default();
        let names =
            indexes.iter().flat_map(|i| i.key_schema.iter().flatten().map(|k| k.attribute_name.clone())).collect();
        keys.insert(table.to_string(), names);
    }
    Ok(keys)
}

/// Index writes of one write action on `table`: a put or delete of an item that carries an index
/// key, or an update whose expression names one.
fn index_writes(indexes: &HashMap<String, Vec<String>>, table: &str, action: &str, body: &Value) -> f64 {
    let Some(keys) = indexes.get(table) else { return 0.0 };
    keys.iter()
        .filter(|key| match action {
            "Put" => body["Item"].get(key.as_str()).is_some(),
            "Delete" => true,
            _ => {
                // The attributes the update expression sets (`#placeholders` resolved); those
                // only named in its condition are not written.
                let expression = body["UpdateExpression"].as_str().unwrap_or_default();
                let names = body["ExpressionAttributeNames"].as_object();
                let placeholder = names
                    .and_then(|n| n.iter().find(|(_, v)| v.as_str() == Some(key.as_str())).map(|(k, _)| k.as_str()));
                placeholder.is_some_and(|p| expression.contains(p))
                    || expression.split(|c: char| !c.is_alphanumeric() && c != '_').any(|w| w == key.as_str())
            }
        })
        .count() as f64
}

/// The units of the calls, by DynamoDB's documented rules.
async fn units_of(
    calls: &[Call],
    client: &aws_sdk_dynamodb::Client,
    indexes: &HashMap<String, Vec<String>>,
) -> anyhow::Result<Units> {
    let mut u = Units::default();
    for call in calls {
        let (req, resp) = (&call.request, &call.response);
        let consistent = req["ConsistentRead"].as_bool().unwrap_or(false);
        match call.operation.as_str() {
            "GetItem" => {
                let bytes = u.item(item_bytes(&resp["Item"]));
                u.read += read_units(bytes, consistent);
            }
            "BatchGetItem" => {
                // Each key is read (and rounded) on its own; a key without an item costs the minimum.
                for (table, keys) in req["RequestItems"].as_object().context("RequestItems")? {
                    let consistent = keys["ConsistentRead"].as_bool().unwrap_or(false);
                    let found: Vec<usize> = resp["Responses"][table]
                        .as_array()
                        .map(|items| items.iter().map(item_bytes).collect())
                        .unwrap_or_default();
                    let asked = keys["Keys"].as_array().map_or(0, Vec::len);
                    for i in 0..asked {
                        let bytes = u.item(found.get(i).copied().unwrap_or(0));
                        u.read += read_units(bytes, consistent);
                    }
                }
            }
            "Query" | "Scan" => {
                // One rounding over the total size of the items returned.
                let bytes: usize = resp["Items"].as_array().map_or(0, |items| items.iter().map(item_bytes).sum());
                u.read += read_units(bytes, consistent);
            }
            "PutItem" => {
                let bytes = u.item(item_bytes(&req["Item"]));
                u.write += write_units(bytes) + index_writes(indexes, table_of(req), "Put", req);
            }
            "UpdateItem" => {
                let table = table_of(req);
                let bytes = u.item(current_item_bytes(client, table, &req["Key"]).await?);
                u.write += write_units(bytes) + index_writes(indexes, table, "Update", req);
            }
            "DeleteItem" => u.write += 1.0 + index_writes(indexes, table_of(req), "Delete", req),
            "TransactWriteItems" => {
                for action in req["TransactItems"].as_array().context("TransactItems")? {
                    let (kind, body) = action.as_object().and_then(|o| o.iter().next()).context("a transact item")?;
                    let table = table_of(body);
                    let bytes = match kind.as_str() {
                        "Put" => u.item(item_bytes(&body["Item"])),
                        "Update" => u.item(current_item_bytes(client, table, &body["Key"]).await?),
                        _ => 0, // Delete and ConditionCheck: one unit (items under 1 KB)
                    };
                    u.write += 2.0 * write_units(bytes);
                    if kind != "ConditionCheck" {
                        u.write += index_writes(indexes, table, kind, body);
                    }
                }
            }
            "TransactGetItems" => {
                for item in resp["Responses"].as_array().context("Responses")? {
                    let bytes = u.item(item_bytes(&item["Item"]));
                    u.read += 2.0 * read_units(bytes, true);
                }
            }
            other => bail!("no capacity rule for {other}"),
        }
    }
    Ok(u)
}

fn table_of(body: &Value) -> &str {
    body["TableName"].as_str().unwrap_or_default()
}

/// One measured request: what it is, the function that serves it in AWS, its calls and units.
struct Measured {
    request: &'static str,
    function: &'static str,
    calls: Vec<String>,
    units: Units,
}

/// The cost fixture: the API in process on counted DynamoDB tables, and the settings the
/// function processes get to share those tables and the signing key.
struct Fixture {
    app: TestApp,
    recorder: Recorder,
    raw: aws_sdk_dynamodb::Client,
    indexes: HashMap<String, Vec<String>>,
    env: Vec<(String, String)>,
    user_id: u64,
    access: String,
    username: String,
}

/// Limits lifted: every request comes from one address, many times a second.
const LIMITS: [(&str, &str); 3] = [
    ("THROTTLE_REGISTRATION_IP", "100000000/60"),
    ("THROTTLE_LOGIN_ACCOUNT", "100000000/60"),
    ("THROTTLE_LOGIN_IP", "100000000/60"),
];

impl Fixture {
    async fn new() -> anyhow::Result<Self> {
        let recorder = Recorder::default();
        let raw = fresh_client().await;
        let counted =
            aws_sdk_dynamodb::Client::from_conf(raw.config().to_builder().interceptor(recorder.clone()).build());
        let tables = unique_tables();
        let store = DynamoStore::new(counted, tables.clone());
        store.create_tables().await.context("creating the tables on the emulator")?;
        let names = [&tables.users, &tables.sessions, &tables.blacklist, &tables.throttle].map(String::as_str);
        let indexes = index_keys(&raw, &names).await?;
        let app = TestApp::with_store(Arc::new(store), tempfile::tempdir()?, &LIMITS);
        let username = "costs".to_string();
        let r = app
            .post("/api/auth/registration/", json!({"username": username, "password1": STRONG, "password2": STRONG}))
            .await;
        if r.status != 201 {
            bail!("registering the benchmark user: {} {}", r.status, r.body);
        }
        let user_id = r.body["user"]["pk"].as_u64().context("user.pk")?;
        let access = r.body["access"].as_str().context("access")?.to_string();
        recorder.take();
        let mut env: Vec<(String, String)> = vec![
            ("STORAGE".into(), "dynamodb".into()),
            ("DYNAMODB_ENDPOINT".into(), testkit::dynamo::endpoint()),
            ("USERS_TABLE".into(), tables.users.clone()),
            ("SESSIONS_TABLE".into(), tables.sessions.clone()),
            ("BLACKLIST_TABLE".into(), tables.blacklist.clone()),
            ("THROTTLE_TABLE".into(), tables.throttle.clone()),
            ("JWT_SECRET".into(), SECRET.into()),
            // template.yaml's default LogLevel: the request log line is part of the duration.
            ("RUST_LOG".into(), "info".into()),
        ];
        env.extend(LIMITS.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"] {
            env.push((name.into(), std::env::var(name).unwrap_or_default()));
        }
        Ok(Self { app, recorder, raw, indexes, env, user_id, access, username })
    }

    async fn fresh_refresh(&self) -> anyhow::Result<String> {
        let state = &self.app.state;
        Ok(start_session(state.store.as_ref(), &state.tokens, self.user_id, 0, now()).await?.refresh)
    }

    /// The happy-path request of each priced endpoint: (label, function, method, path, body, bearer).
    async fn request(
        &self,
        endpoint: Endpoint,
        n: usize,
    ) -> anyhow::Result<(&'static str, &'static str, Value, Option<String>)> {
        let registration = || json!({"username": format!("cost{n}{}", uuid::Uuid::new_v4().simple()), "password1": STRONG, "password2": STRONG});
        Ok(match endpoint {
            Endpoint::Registration => ("POST registration", "POST", registration(), None),
            Endpoint::Login => ("POST login", "POST", json!({"username": self.username, "password": STRONG}), None),
            Endpoint::Refresh => ("POST refresh", "POST", json!({"refresh": self.fresh_refresh().await?}), None),
            Endpoint::TokenVerify => ("POST token/verify", "POST", json!({"token": self.access}), None),
            Endpoint::Profile => ("GET profile", "GET", Value::Null, Some(self.access.clone())),
            Endpoint::UserDetails => ("GET user", "GET", Value::Null, Some(self.access.clone())),
            Endpoint::Logout => ("POST logout", "POST", json!({"refresh": self.fresh_refresh().await?}), None),
            other => bail!("no priced request for {}", other.function()),
        })
    }
}

/// The endpoints priced: what the app calls in a normal day (the usage profile of the report).
const PRICED: [Endpoint; 7] = [
    Endpoint::Registration,
    Endpoint::Login,
    Endpoint::Refresh,
    Endpoint::TokenVerify,
    Endpoint::Profile,
    Endpoint::UserDetails,
    Endpoint::Logout,
];

async fn measure_units(fixture: &Fixture, endpoint: Endpoint) -> anyhow::Result<Measured> {
    let (label, method, body, bearer) = fixture.request(endpoint, 0).await?;
    fixture.recorder.take();
    let body = (!body.is_null()).then_some(body);
    let r = fixture.app.call(method, endpoint.path(), body, bearer.as_deref()).await;
    if !r.status.is_success() {
        bail!("{label}: {} {}", r.status, r.body);
    }
    let calls = fixture.recorder.take();
    let units = units_of(&calls, &fixture.raw, &fixture.indexes).await?;
    Ok(Measured {
        request: label,
        function: endpoint.function(),
        calls: calls.into_iter().map(|c| c.operation).collect(),
        units,
    })
}

/// CPU time of all the process's threads so far (ns), from /proc/PID/task/*/schedstat.
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

struct Durations {
    cold_ms: f64,
    warm_ms: Vec<f64>,
    warm_cpu_ms_per_request: f64,
    log_bytes_per_request: f64,
    statuses: Vec<u64>,
}

/// One process of the function: a cold invocation, then `warm` more, each timed from hand-out
/// to answer.
async fn measure_durations(
    binary: &Path,
    fixture: &Fixture,
    endpoint: Endpoint,
    warm: usize,
) -> anyhow::Result<Durations> {
    // An emulator of its own: a killed process's pending `/next` must not take another's event.
    let mut api = RuntimeApi::start("bench-cost").await;
    let api = &mut api;
    let event = |(_, method, body, bearer): (&str, &str, Value, Option<String>)| {
        api_gateway_event(method, endpoint.path(), (!body.is_null()).then_some(body), bearer.as_deref())
    };
    let first = event(fixture.request(endpoint, 0).await?);
    api.offer(first);
    let dir = tempfile::tempdir()?;
    // What the function logs (CloudWatch Logs bills ingestion by the byte).
    let log_path = dir.path().join("stdout.log");
    let log = std::fs::File::create(&log_path)?;
    let mut child = Command::new(binary)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_DIR", dir.path())
        .envs(api.lambda_env(endpoint.function()))
        .envs(fixture.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("spawning {}", binary.display()))?;
    let result = async {
        let spawned = Instant::now();
        let mut statuses = Vec::new();
        let cold = api.answer(Duration::from_secs(30)).await.context("no answer to the cold event")?;
        statuses.push(cold.body["statusCode"].as_u64().unwrap_or(0));
        let cold_ms = (cold.answer_at - spawned).as_secs_f64() * 1000.0;
        let mut warm_ms = Vec::new();
        let cpu_before = cpu_ns(child.id());
        let log_before = std::fs::metadata(&log_path).map_or(0, |m| m.len());
        for n in 1..=warm {
            let next = event(fixture.request(endpoint, n).await?);
            api.offer(next);
            let answer = api.answer(Duration::from_secs(30)).await.context("no answer to a warm event")?;
            let handed = answer.next_at.context("answered without being handed the event")?;
            warm_ms.push((answer.answer_at - handed).as_secs_f64() * 1000.0);
            statuses.push(answer.body["statusCode"].as_u64().unwrap_or(0));
        }
        let cpu_ms = (cpu_ns(child.id()) - cpu_before) as f64 / 1e6;
        let log_bytes = std::fs::metadata(&log_path).map_or(0, |m| m.len()) - log_before;
        let per_request = |total: f64| total / warm.max(1) as f64;
        Ok(Durations {
            cold_ms,
            warm_ms,
            warm_cpu_ms_per_request: per_request(cpu_ms),
            log_bytes_per_request: per_request(log_bytes as f64),
            statuses,
        })
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bin_dir, warm] = args.as_slice() else {
        bail!("usage: request-cost BIN_DIR WARM_RUNS (with DYNAMODB_ENDPOINT)")
    };
    let bin_dir = PathBuf::from(bin_dir);
    let warm: usize = warm.parse().context("WARM_RUNS is a number")?;
    let fixture = Fixture::new().await?;
    let mut rows = Vec::new();
    for endpoint in PRICED {
        let measured = measure_units(&fixture, endpoint).await?;
        let binary = bin_dir.join(endpoint.function());
        let durations = if binary.exists() {
            Some(measure_durations(&binary, &fixture, endpoint, warm).await?)
        } else {
            eprintln!("request cost {:14} no duration: {} is not built", endpoint.function(), binary.display());
            None
        };
        let warm_median = durations.as_ref().map_or(f64::NAN, |d| median(d.warm_ms.clone()));
        eprintln!(
            "request cost {:20} {:>4.1} RCU {:>4.1} WCU  {} calls  warm {:6.2} ms",
            measured.request,
            measured.units.read,
            measured.units.write,
            measured.calls.len(),
            warm_median
        );
        rows.push(json!({
            "request": measured.request,
            "function": measured.function,
            "calls": measured.calls,
            "read_units": measured.units.read,
            "write_units": measured.units.write,
            "largest_item_bytes": measured.units.largest_item,
            "warm_runs": warm,
            "warm_ms_median": warm_median,
            "warm_ms_p90": durations.as_ref().map_or(f64::NAN, |d| {
                let mut v = d.warm_ms.clone();
                v.sort_by(|a, b| a.partial_cmp(b).unwrap());
                v.get((v.len() * 9 / 10).min(v.len().saturating_sub(1))).copied().unwrap_or(f64::NAN)
            }),
            "warm_cpu_ms_per_request": durations.as_ref().map_or(f64::NAN, |d| d.warm_cpu_ms_per_request),
            "log_bytes_per_request": durations.as_ref().map_or(f64::NAN, |d| d.log_bytes_per_request),
            "cold_answer_ms": durations.as_ref().map_or(f64::NAN, |d| d.cold_ms),
            "statuses": durations.as_ref().map(|d| d.statuses.clone()).unwrap_or_default(),
        }));
    }
    println!("{}", serde_json::to_string_pretty(&json!({"requests": rows}))?);
    Ok(())
}
