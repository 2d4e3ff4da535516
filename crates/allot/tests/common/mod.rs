//! Starting `allot run` as a user would, for the end-to-end tests.

#![allow(clippy::unwrap_used, dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
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

/// Spawns `allot ARGS` and waits for the line naming its URL.
/// `allot ARGS` from the repository root, once it printed a line holding
/// `marker` (with the URL it serves).
pub fn spawn(args: &[&str], envs: &[(&str, String)], marker: &str) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(args)
        .current_dir(ROOT)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .env("ALLOT__TELEMETRY__LEVEL", "warn")
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
