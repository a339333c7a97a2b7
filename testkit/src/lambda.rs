//! A Lambda Runtime API on 127.0.0.1, as AWS (or `cargo lambda watch`) serves it to a function
//! process, and API Gateway v2 events: what the function binaries are run under by the tests
//! (`checks/`) and by the cold-start benchmark (`bench/tools`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// What the emulator saw of a function process, stamped when the request arrived.
#[derive(Debug, Clone)]
pub enum Seen {
    /// The process was handed the event on offer (stamped then; a process that asked before the
    /// event was offered waited for it): for a new process, its init is over.
    Next(Instant),
    /// Its answer, under the request id it was given (`init-error` when it failed to start).
    Answer { at: Instant, request_id: String, body: Value },
}

#[derive(Clone)]
struct Shared {
    event: Arc<Mutex<Option<Value>>>,
    request_id: String,
    seen: mpsc::UnboundedSender<Seen>,
}

/// The runtime API: one event on offer at a time; everything the process does is reported.
pub struct RuntimeApi {
    address: String,
    shared: Shared,
    seen: mpsc::UnboundedReceiver<Seen>,
    server: tokio::task::JoinHandle<()>,
}

/// One invocation as the emulator saw it.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// When the process was handed the event (None: it failed before asking for one). A new
    /// process asks once its init is done; a warm one is handed the event when it is offered.
    pub next_at: Option<Instant>,
    pub answer_at: Instant,
    pub request_id: String,
    pub body: Value,
}

impl RuntimeApi {
    /// Starts the API on a free port; events are handed out under `request_id`.
    pub async fn start(request_id: &str) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Shared { event: Arc::new(Mutex::new(None)), request_id: request_id.to_string(), seen: tx };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_event))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(answer))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(answer))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let address = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { address, shared, seen: rx, server }
    }

    /// `host:port`, for `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Puts the next event on offer, forgetting what earlier processes were seen doing.
    pub fn offer(&mut self, event: Value) {
        while self.seen.try_recv().is_ok() {}
        *self.shared.event.lock().unwrap() = Some(event);
    }

    /// Waits for the answer to the event on offer.
    pub async fn answer(&mut self, within: Duration) -> Option<Invocation> {
        let mut next_at = None;
        tokio::time::timeout(within, async {
            while let Some(seen) = self.seen.recv().await {
                match seen {
                    Seen::Next(at) => next_at = next_at.or(Some(at)),
                    Seen::Answer { at, request_id, body } => {
                        return Some(Invocation { next_at, answer_at: at, request_id, body });
                    }
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    }

    /// The variables the Lambda service sets for a function process, pointing at this API.
    pub fn lambda_env(&self, function: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_LAMBDA_RUNTIME_API", self.address.clone()),
            ("AWS_LAMBDA_FUNCTION_NAME", function.to_string()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_string()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "test".to_string()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "test".to_string()),
        ]
    }

    /// The command that runs `binary` as a function against this API, with the variables the
    /// Lambda service sets and none of `remove` (this process's configuration).
    pub fn command(&self, binary: &Path, remove: &[&str]) -> Command {
        let name = binary.file_name().and_then(|n| n.to_str()).unwrap_or("function");
        let mut command = Command::new(binary);
        command.envs(self.lambda_env(name)).stdin(Stdio::null());
        for var in remove {
            command.env_remove(var);
        }
        command
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next_event(State(rt): State<Shared>) -> (HeaderMap, Json<Value>) {
    loop {
        let event = rt.event.lock().unwrap().take();
        if let Some(event) = event {
            let _ = rt.seen.send(Seen::Next(Instant::now()));
            let mut headers = HeaderMap::new();
            headers.insert("lambda-runtime-aws-request-id", rt.request_id.parse().unwrap());
            headers.insert("lambda-runtime-deadline-ms", "99999999999999".parse().unwrap());
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:000000000000:function:test".parse().unwrap(),
            );
            return (headers, Json(event));
        }
        // The process's poll after its answer: it waits here until it is killed.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The runtime posts its answer without a JSON content type: read the bytes.
async fn answer(State(rt): State<Shared>, UrlPath(id): UrlPath<String>, body: String) {
    let at = Instant::now();
    let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
    let _ = rt.seen.send(Seen::Answer { at, request_id: id, body });
}

async fn init_error(State(rt): State<Shared>, body: String) {
    let at = Instant::now();
    let _ = rt.seen.send(Seen::Answer { at, request_id: "init-error".into(), body: json!({"error": body}) });
}

/// An API Gateway HTTP API (payload 2.0) event, as the service hands it to a function.
pub fn api_gateway_event(method: &str, path: &str, body: Option<Value>, bearer: Option<&str>) -> Value {
    let mut headers = json!({"host": "api.example.com", "content-type": "application/json"});
    if let Some(token) = bearer {
        headers["authorization"] = json!(format!("Bearer {token}"));
    }
    json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000", "apiId": "api", "domainName": "api.example.com", "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "test"},
            "requestId": "req-1", "routeKey": format!("{method} {path}"), "stage": "$default",
            "time": "24/Nov/2026:06:00:00 +0000", "timeEpoch": 1795500000000u64
        },
        "body": body.map(|b| b.to_string()),
        "isBase64Encoded": false
    })
}
