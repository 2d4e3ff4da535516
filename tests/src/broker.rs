//! A Kafka broker for tests: the one named by `ALLOT_TEST_KAFKA_BOOTSTRAP`,
//! or a tansu process with SQLite storage on a free loopback port, started
//! from a temporary directory and killed on drop.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

/// Names an existing broker (`host:port,...`); when set, nothing is started.
pub const BOOTSTRAP_ENV: &str = "ALLOT_TEST_KAFKA_BOOTSTRAP";

/// How long a started broker may take to serve metadata.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A broker for the duration of a test.
pub struct Broker {
    bootstrap: String,
    /// `None` for a broker named by [`BOOTSTRAP_ENV`].
    tansu: Option<Tansu>,
}

/// Where a started tansu keeps its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// SQLite in the broker's directory: survives [`Broker::restart`].
    Sqlite,
    /// tansu's in-memory engine: lost on restart, and several times the
    /// throughput on a small machine (one SQLite writer is the bottleneck
    /// when many stages produce and commit at once).
    Memory,
}

/// A tansu process and the files it owns.
struct Tansu {
    binary: PathBuf,
    port: u16,
    storage: Storage,
    /// Holds `tansu.db` and `tansu.log`; removed on drop, after the process.
    dir: tempfile::TempDir,
    child: Child,
}

impl Broker {
    /// Starts (or connects to) a broker, panicking with the reason and the
    /// broker's log when it cannot: a test without a broker cannot go on.
    pub fn start() -> Broker {
        Broker::try_start().unwrap_or_else(|e| panic!("test broker did not start: {e:#}"))
    }

    /// [`Broker::start`], returning the failure.
    pub fn try_start() -> Result<Broker> {
        Broker::try_start_with(Storage::Sqlite)
    }

    /// [`Broker::start`] on tansu's in-memory engine (see [`Storage::Memory`]).
    pub fn start_in_memory() -> Broker {
        Broker::try_start_with(Storage::Memory)
            .unwrap_or_else(|e| panic!("test broker did not start: {e:#}"))
    }

    /// [`Broker::try_start`] with the storage a started tansu uses.
    pub fn try_start_with(storage: Storage) -> Result<Broker> {
        if let Ok(bootstrap) = std::env::var(BOOTSTRAP_ENV) {
            if !bootstrap.trim().is_empty() {
                let broker = Broker {
                    bootstrap,
                    tansu: None,
                };
                wait_ready(&broker.bootstrap, None, Instant::now() + READY_TIMEOUT)?;
                return Ok(broker);
            }
        }
        let binary = find_tansu()?;
        let mut dir = tempfile::Builder::new()
            .prefix("allot-tansu-")
            .tempdir()
            .context("creating the broker directory")?;
        let mut attempt = 0;
        // A free port can be taken by someone else before tansu binds it: try a few.
        loop {
            attempt += 1;
            let port = free_port()?;
            let child = spawn(&binary, dir.path(), port, storage)?;
            let mut tansu = Tansu {
                binary: binary.clone(),
                port,
                storage,
                dir,
                child,
            };
            let bootstrap = format!("127.0.0.1:{port}");
            match wait_ready(&bootstrap, Some(&mut tansu), Instant::now() + READY_TIMEOUT) {
                Ok(()) => {
                    return Ok(Broker {
                        bootstrap,
                        tansu: Some(tansu),
                    })
                }
                Err(err) if attempt >= 3 => {
                    tansu.kill();
                    return Err(err.context(tansu.log_tail(4_000)));
                }
                Err(_) => {
                    tansu.kill();
                    dir = tansu.dir;
                }
            }
        }
    }

    /// `host:port` to bootstrap clients from.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Whether this broker was started here (and so can be restarted).
    pub fn is_local(&self) -> bool {
        self.tansu.is_some()
    }

    /// The broker's log file, for a local broker.
    pub fn log_path(&self) -> Option<PathBuf> {
        self.tansu.as_ref().map(|t| t.dir.path().join("tansu.log"))
    }

    /// The last `max_bytes` of the broker's log, for failure messages.
    pub fn log_tail(&self, max_bytes: u64) -> String {
        match &self.tansu {
            Some(tansu) => tansu.log_tail(max_bytes),
            None => String::from("(external broker: no log)"),
        }
    }

    /// Kills the broker without warning (SIGKILL) and starts it again on the
    /// same port and database file: a crash and recovery. Fails for an
    /// external broker.
    pub fn restart(&mut self) -> Result<()> {
        let Some(tansu) = self.tansu.as_mut() else {
            bail!("cannot restart the external broker {}", self.bootstrap);
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            tansu.kill();
            tansu.child = spawn(&tansu.binary, tansu.dir.path(), tansu.port, tansu.storage)?;
            // Rebinding the port can race with the old listener going away:
            // retry the spawn until the deadline.
            let attempt = (Instant::now() + Duration::from_secs(10)).min(deadline);
            match wait_ready(&self.bootstrap, Some(tansu), attempt) {
                Ok(()) => return Ok(()),
                Err(err) if Instant::now() >= deadline => {
                    return Err(err.context(tansu.log_tail(4_000)))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Creates a topic with `partitions` partitions (replication 1) and waits
    /// until metadata lists it; an existing topic is accepted as it is.
    pub fn create_topic(&self, name: &str, partitions: i32) {
        self.try_create_topic(name, partitions)
            .unwrap_or_else(|e| panic!("creating topic {name}: {e:#}"));
    }

    /// [`Broker::create_topic`], returning the failure.
    pub fn try_create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .context("creating the admin client")?;
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = futures::executor::block_on(admin.create_topics([&topic], &options))
            .context("create topics request")?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => bail!("creating {topic}: {code}"),
            }
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let metadata = admin
                .inner()
                .fetch_metadata(Some(name), Duration::from_secs(2));
            if let Ok(m) = &metadata {
                if m.topics().iter().any(|t| {
                    t.name() == name
                        && t.error().is_none()
                        && t.partitions().len() as i32 >= partitions
                }) {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                bail!("topic {name} not listed in metadata: {:?}", metadata.err());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Waits until the port accepts connections and a metadata request succeeds;
/// fails early when the local process exits.
fn wait_ready(bootstrap: &str, mut tansu: Option<&mut Tansu>, deadline: Instant) -> Result<()> {
    let addr: Option<SocketAddr> = bootstrap
        .split(',')
        .next()
        .and_then(|a| a.trim().parse().ok());
    loop {
        if let Some(tansu) = tansu.as_mut() {
            if let Some(status) = tansu.child.try_wait()? {
                bail!("tansu exited with {status}");
            }
        }
        let accepts =
            addr.is_none_or(|a| TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok());
        if accepts && metadata_ok(bootstrap) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("broker at {bootstrap} not ready in time");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn metadata_ok(bootstrap: &str) -> bool {
    let admin: Result<AdminClient<DefaultClientContext>, _> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create();
    admin.is_ok_and(|a| {
        a.inner()
            .fetch_metadata(None, Duration::from_secs(2))
            .is_ok_and(|m| !m.brokers().is_empty())
    })
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(tansu) = self.tansu.as_mut() {
            tansu.kill();
        }
    }
}

impl Tansu {
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log_tail(&self, max_bytes: u64) -> String {
        read_tail(&self.dir.path().join("tansu.log"), max_bytes)
            .unwrap_or_else(|e| format!("(no log: {e})"))
    }
}

/// `tansu` on PATH, else in cargo's bin directory.
pub fn find_tansu() -> Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("tansu")));
    }
    if let Some(cargo_home) = std::env::var_os("CARGO_HOME") {
        candidates.push(PathBuf::from(cargo_home).join("bin").join("tansu"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo").join("bin").join("tansu"));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .context("tansu not found on PATH or in ~/.cargo/bin: run scripts/ensure-tansu.sh, or set ALLOT_TEST_KAFKA_BOOTSTRAP")
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

fn spawn(binary: &Path, dir: &Path, port: u16, storage: Storage) -> Result<Child> {
    let url = format!("tcp://127.0.0.1:{port}");
    let log = File::options()
        .create(true)
        .append(true)
        .open(dir.join("tansu.log"))
        .context("opening the broker log")?;
    let err = log.try_clone()?;
    Command::new(binary)
        .current_dir(dir)
        .arg("broker")
        .args(["--listener-url", &url])
        .args(["--advertised-listener-url", &url])
        // tansu 0.6.0 resolves the sqlite path against its working directory
        // even when absolute (`sqlite:///tmp/d/x.db` opens `./tmp/d/x.db`), so
        // name the file relative to `dir`, where it runs.
        .args([
            "--storage-engine",
            match storage {
                Storage::Sqlite => "sqlite://tansu.db",
                Storage::Memory => "memory://tansu/",
            },
        ])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .with_context(|| format!("spawning {}", binary.display()))
}

fn read_tail(path: &Path, max_bytes: u64) -> Result<String> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(max_bytes)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(format!(
        "broker log tail:\n{}",
        String::from_utf8_lossy(&bytes)
    ))
}
