//! DynamoDB in tests: the emulator at `DYNAMODB_ENDPOINT` (moto; `scripts/test` starts it and
//! sets the variable) and stores on fresh tables. Without the variable the tests fail: a skipped
//! backend must never look like a passing one.

use std::sync::Once;

use accounts::config::DynamoTables;
use accounts::store::dynamodb::{self, DynamoStore};

pub fn endpoint() -> String {
    match std::env::var("DYNAMODB_ENDPOINT") {
        Ok(endpoint) if !endpoint.trim().is_empty() => endpoint,
        _ => panic!(
            "DYNAMODB_ENDPOINT is not set: the DynamoDB store tests need an emulator. \
             Run `scripts/test`, which starts moto and sets it (or start `moto_server -p 5055` \
             yourself and set DYNAMODB_ENDPOINT=http://127.0.0.1:5055)."
        ),
    }
}

/// Fake credentials and region for the emulator, unless the environment has its own. Set once,
/// before any client is built, so no thread reads the environment while it changes.
pub fn fake_aws_environment() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (name, value) in
            [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_REGION", "us-east-1")]
        {
            if std::env::var_os(name).is_none() {
                std::env::set_var(name, value);
            }
        }
    });
}

pub fn unique_tables() -> DynamoTables {
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    DynamoTables {
        users: format!("{prefix}-users"),
        sessions: format!("{prefix}-sessions"),
        blacklist: format!("{prefix}-blacklist"),
        throttle: format!("{prefix}-throttle"),
    }
}

pub async fn fresh_client() -> aws_sdk_dynamodb::Client {
    let endpoint = endpoint();
    fake_aws_environment();
    dynamodb::client(Some(&endpoint)).await
}

/// A `DynamoStore` on three new, empty tables; also the raw client, to look behind its back.
pub async fn fresh_dynamo() -> (DynamoStore, aws_sdk_dynamodb::Client) {
    let client = fresh_client().await;
    let store = DynamoStore::new(client.clone(), unique_tables());
    store.create_tables().await.unwrap_or_else(|e| panic!("creating tables at {}: {e}", endpoint()));
    (store, client)
}

/// A private emulator process (for tests that stop and resume it), killed on drop.
pub struct PrivateEmulator {
    pub endpoint: String,
    child: std::process::Child,
}

impl PrivateEmulator {
    /// Starts `scripts/moto_serial.py` with the `.venv` that `scripts/test` installs.
    pub fn start() -> Self {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
        let python = root.join(".venv/bin/python");
        assert!(python.exists(), "{} is missing: run scripts/test (it installs moto)", python.display());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(python)
            .arg(root.join("scripts/moto_serial.py"))
            .args(["127.0.0.1", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto starts");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "moto did not listen within 30 s");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self { endpoint: format!("http://127.0.0.1:{port}"), child }
    }

    /// SIGSTOP: the process keeps its state but answers nothing (a network partition).
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT: it answers again, with everything it had.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// A store on fresh tables of this emulator, and the raw client.
    pub async fn store(&self) -> (DynamoStore, aws_sdk_dynamodb::Client) {
        fake_aws_environment();
        let client = dynamodb::client(Some(&self.endpoint)).await;
        let store = DynamoStore::new(client.clone(), unique_tables());
        store.create_tables().await.unwrap();
        (store, client)
    }
}

impl Drop for PrivateEmulator {
    fn drop(&mut self) {
        self.thaw();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
