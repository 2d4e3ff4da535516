//! Starting `allot run` as a user would, for the end-to-end tests.

#![allow(clippy::unwrap_used, dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// A running `allot run`; killed on drop.
pub struct Running {
    child: Child,
    pub api: String,
    pub emulator: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// Sends SIGTERM (what Ctrl-C, Kubernetes and compose send) and waits at
    /// most `secs` for the process to exit; its exit status.
    pub fn terminate(&mut self, secs: u64) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM {}", self.child.id());
        wait_for("allot run to exit after SIGTERM", secs, || {
            self.child.try_wait().unwrap()
        })
    }
}

/// Starts `allot run --no-demo` from the repository root with its store in
/// `dir` and every listener on a free loopback port; `args` are added.
pub fn start(dir: &Path, args: &[&str]) -> Running {
    start_with(dir, args, &[])
}

/// As [`start`], with more environment variables (configuration overrides).
pub fn start_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(["run", "--no-demo", "--for-secs", "150"])
        .args(args)
        .current_dir(ROOT)
        .env("ALLOT__API__LISTEN", "127.0.0.1:0")
        .env("ALLOT__EMULATOR__LISTEN", "127.0.0.1:0")
        .env("ALLOT__STORE__PATH", dir.join("store"))
        .env("ALLOT__TELEMETRY__LEVEL", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut api, mut emulator) = (None, None);
    while api.is_none() || emulator.is_none() {
        let line = lines
            .next()
            .expect("allot run printed its addresses")
            .unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .map(str::to_string);
        if line.contains("API and webhooks") {
            api = url;
        } else if line.contains("CRM emulator") {
            emulator = url;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    Running {
        child,
        api: api.unwrap(),
        emulator: emulator.unwrap(),
    }
}

/// Polls `f` until it gives a value, for at most `secs`.
pub fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts `allot emulator --listen 127.0.0.1:0` with `args` from the
/// repository root; the child and the URL it printed.
pub fn emulator(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(["emulator", "--listen", "127.0.0.1:0"])
        .args(args)
        .current_dir(ROOT)
        .env("ALLOT__TELEMETRY__LEVEL", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the emulator printed its address")
            .unwrap();
        if line.contains("listening on") {
            let url = line.split_whitespace().find(|w| w.starts_with("http://"));
            break url.unwrap().to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (child, url)
}

/// An allot process of a test (a stage, the emulator): SIGKILLed on drop.
pub struct Proc {
    pub child: Child,
    /// The first URL it printed.
    pub url: String,
}

impl Proc {
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `allot ARGS` from the repository root, once it printed a line holding
/// `marker` (with the URL it serves).
pub fn spawn(args: &[&str], envs: &[(&str, String)], marker: &str) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(args)
        .current_dir(ROOT)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        // ALLOT_TEST_LOG=info shows what the processes do.
        .env(
            "ALLOT__TELEMETRY__LEVEL",
            std::env::var("ALLOT_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("allot {args:?} exited before printing {marker:?}"))
            .unwrap();
        if line.contains(marker) {
            let w = line
                .split_whitespace()
                .find(|w| w.starts_with("http://"))
                .unwrap();
            let end = w[7..].find('/').map_or(w.len(), |i| i + 7);
            break w[..end].trim_end_matches(',').to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Proc { child, url }
}

/// A minimal OTLP/HTTP collector: every body POSTed to `/v1/traces` (JSON)
/// is kept, and answered 200. Its URL and the bodies.
pub fn otlp_collector() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let kept = kept.clone();
            std::thread::spawn(move || serve(conn, &kept));
        }
    });
    (url, bodies)
}

fn serve(conn: std::net::TcpStream, kept: &Mutex<Vec<serde_json::Value>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut first = String::new();
        if reader.read_line(&mut first).unwrap_or(0) == 0 {
            return;
        }
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if first.starts_with("POST /v1/traces") {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
                kept.lock().unwrap().push(v);
            }
        }
        let _ = conn.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
        );
    }
}

/// Creates lead `n` from Japan (sf-apac, owned by one rep) in the emulator
/// at `emulator`; its id.
pub fn japan_lead(http: &reqwest::blocking::Client, emulator: &str, n: u32) -> String {
    let body = serde_json::json!({"crm": "salesforce", "object": "lead", "fields": {
        "FirstName": "Aiko", "LastName": format!("Lead {n}"), "Company": format!("Kyoto Co {n}"),
        "Email": format!("aiko{n}@kyoto-{n}.example"), "Country": "Japan",
        "NumberOfEmployees": 40, "LeadSource": "Web", "Status": "Open - Not Contacted"}});
    let created: serde_json::Value = http
        .post(format!("{emulator}/_emulator/records"))
        .json(&body)
        .send()
        .unwrap()
        .json()
        .unwrap();
    created["id"].as_str().unwrap().to_string()
}

/// `allot serve NAME` with the config in `dir` (`--env test`) and its store
/// at `dir/store`, on any free port.
pub fn serve_stage(name: &str, dir: &Path, store: &str) -> Proc {
    spawn(
        &[
            "serve",
            name,
            "--config-dir",
            dir.to_str().unwrap(),
            "--env",
            "test",
        ],
        &[
            ("ALLOT__API__LISTEN", "127.0.0.1:0".into()),
            ("ALLOT__STORE__PATH", dir.join(store).display().to_string()),
        ],
        "allot serve",
    )
}
