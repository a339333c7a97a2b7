//! The local server binary on a free port, as a user starts it; killed on drop.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Child,
    pub base: String,
}

/// Variables of the developer's shell that would change what the tests expect.
const CLEARED: &[&str] =
    &["JWT_SECRET", "STORAGE", "MAIL_BACKEND", "MEDIA_BUCKET", "MEDIA_DIR", "MEDIA_BASE_URL", "AVATAR_MAX_SIDE"];

impl Server {
    pub fn start(data_dir: &Path) -> Server {
        Self::start_with(data_dir, &[])
    }

    /// With extra variables; `{base}` in a value becomes the server's own `http://127.0.0.1:PORT`.
    pub fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        let mut command = Command::new(env!("CARGO_BIN_EXE_local-server"));
        command.env("BIND", format!("127.0.0.1:{port}")).env("DATA_DIR", data_dir).env("RUST_LOG", "warn");
        for name in CLEARED {
            command.env_remove(name);
        }
        for (name, value) in env {
            command.env(name, value.replace("{base}", &base));
        }
        let child = command.stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().expect("local-server starts");
        let server = Server { child, base };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "local-server did not listen within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl Server {
    /// The server's peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("/proc/<pid>/status");
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("a VmHWM line");
        let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmHWM in kB");
        kib * 1024
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
