//! Configuration: `config/default.toml` → `config/<env>.toml` → environment
//! (`ALLOT__SECTION__KEY`), into private serde shapes that reject unknown
//! keys, then validated into [`AppConfig`] with every problem reported at
//! once. The environment comes in as a map: only `main` reads the real one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use allot_core::Crm;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    pub store: StoreCfg,
    pub rules: RulesCfg,
    pub api: ApiCfg,
    pub ingest: IngestCfg,
    pub secrets: SecretsCfg,
    pub crm: CrmCfg,
    pub emulator: EmulatorCfg,
    pub telemetry: TelemetryCfg,
    /// Batching, pacing and retries of owner writes (every key has a default).
    #[serde(default)]
    pub writer: allot_writer::WriterConfig,
    #[serde(default)]
    pub kafka: KafkaCfg,
    /// Re-routing of leads nobody touched after their assignment.
    #[serde(default)]
    pub sla: allot_services::sla::SlaConfig,
}

/// Raw CRM events from Kafka instead of the embedded log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaCfg {
    pub enabled: bool,
    pub bootstrap_servers: String,
    pub group_id: String,
    pub dlq_topic: String,
    pub session_timeout_ms: u32,
    pub heartbeat_interval_ms: u32,
    pub max_in_flight_per_partition: usize,
    /// Partitions of topics allot creates when they are missing.
    pub partitions: i32,
    /// Consumed topics and the format of their messages.
    pub sources: Vec<allot_services::kafka::SourceTopic>,
    /// Other librdkafka properties (security, fetch sizes).
    pub properties: std::collections::BTreeMap<String, String>,
    /// Topics and groups of microservice mode (`allot serve STAGE`).
    pub stages: allot_services::stages::StageConfig,
}

impl Default for KafkaCfg {
    fn default() -> Self {
        KafkaCfg {
            enabled: false,
            bootstrap_servers: "127.0.0.1:9092".into(),
            group_id: "allot-ingest".into(),
            dlq_topic: "allot.dlq".into(),
            session_timeout_ms: 10_000,
            heartbeat_interval_ms: 2_000,
            max_in_flight_per_partition: 1_000,
            partitions: 3,
            sources: Vec::new(),
            properties: Default::default(),
            stages: Default::default(),
        }
    }
}

impl KafkaCfg {
    pub fn bus(&self) -> allot_bus::KafkaConfig {
        self.bus_for(&self.group_id)
    }

    /// Client settings for a consumer in `group`.
    pub fn bus_for(&self, group: &str) -> allot_bus::KafkaConfig {
        allot_bus::KafkaConfig {
            session_timeout_ms: self.session_timeout_ms,
            heartbeat_interval_ms: self.heartbeat_interval_ms,
            max_in_flight_per_partition: self.max_in_flight_per_partition,
            properties: self.properties.clone(),
            ..allot_bus::KafkaConfig::new(&self.bootstrap_servers, group)
        }
    }

    /// The first source topic in `format`.
    pub fn topic_for(&self, format: &str) -> Option<&str> {
        self.sources
            .iter()
            .find(|s| s.format == format)
            .map(|s| s.topic.as_str())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreCfg {
    pub path: PathBuf,
    /// Days kept per table, pruned in the background (`[store.retention]`).
    #[serde(default)]
    pub retention: allot_services::retention::Retention,
    /// Near this size on disk (within 5%), webhooks answer 503 with
    /// Retry-After (0: no limit).
    #[serde(default)]
    pub max_bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesCfg {
    pub path: PathBuf,
    /// Records re-decided per second after a rule version becomes active.
    #[serde(default = "default_realign_rate")]
    pub realign_rate_per_sec: u32,
}

fn default_realign_rate() -> u32 {
    200
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiCfg {
    pub listen: SocketAddr,
    #[serde(default)]
    pub public_url: String,
    /// Who may call the admin API.
    #[serde(default)]
    pub auth: ApiAuthCfg,
    /// The `Host` names (with or without the port) an API without tokens
    /// answers; empty: localhost, 127.0.0.1, [::1] and the listen address.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Timeouts and the connection cap of the HTTP server (`[api.limits]`).
    #[serde(default)]
    pub limits: allot_services::http::HttpLimits,
}

impl ApiCfg {
    /// [`ApiCfg::allowed_hosts`] as given, or the loopback names and the
    /// listen address, each with and without the port.
    pub fn hosts(&self) -> Vec<String> {
        let port = self.listen.port();
        let names: Vec<String> = match self.allowed_hosts.is_empty() {
            false => self.allowed_hosts.clone(),
            true => {
                let ip = match self.listen.ip() {
                    std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                    v4 => v4.to_string(),
                };
                vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into(), ip]
            }
        };
        let mut out = Vec::new();
        for n in names {
            let n = n.to_ascii_lowercase();
            if !n.contains(':') || n.ends_with(']') {
                out.push(format!("{n}:{port}"));
            }
            out.push(n);
        }
        out.sort();
        out.dedup();
        out
    }
}

/// API tokens (`name:role:token`, roles viewer < operator < admin) come from
/// the variable `[secrets] api_tokens_env` names and/or the file here; with
/// none, the API is open, which only a loopback `api.listen` allows.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiAuthCfg {
    /// A file of `name:role:token` lines (mode 0600 advised); empty: none.
    pub tokens_file: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestCfg {
    pub max_chunk: usize,
    pub dedupe_max_age_hours: u64,
    pub dedupe_max_entries: u64,
    pub echo_window_secs: u64,
    pub salesforce_client_id: String,
    #[serde(default)]
    pub hubspot_app_id: String,
    #[serde(default)]
    pub hubspot_source_ids: Vec<String>,
    pub hydrate: bool,
    /// Serve webhooks on a non-loopback address although a source has no
    /// secret or token (signatures or bearer tokens not checked). Off: such
    /// a process refuses to start.
    #[serde(default)]
    pub allow_unauthenticated: bool,
}

/// Names of the environment variables that hold secrets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsCfg {
    pub hubspot_client_secret_env: String,
    pub ingest_token_env: String,
    pub salesforce_client_secret_env: String,
    pub hubspot_token_env: String,
    /// Admin API tokens, `name:role:token,...`.
    #[serde(default = "default_api_tokens_env")]
    pub api_tokens_env: String,
    /// The PEM private key of `crm.salesforce.auth = "jwt"` (unless
    /// `crm.salesforce.jwt_key_file` is set).
    #[serde(default = "default_salesforce_jwt_key_env")]
    pub salesforce_jwt_key_env: String,
    /// The refresh token of `crm.hubspot.auth = "oauth"`.
    #[serde(default = "default_hubspot_refresh_token_env")]
    pub hubspot_refresh_token_env: String,
}

fn default_api_tokens_env() -> String {
    "ALLOT_API_TOKENS".into()
}

fn default_salesforce_jwt_key_env() -> String {
    "ALLOT_SALESFORCE_JWT_KEY".into()
}

fn default_hubspot_refresh_token_env() -> String {
    "ALLOT_HUBSPOT_REFRESH_TOKEN".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CrmMode {
    Emulator,
    Salesforce,
    Hubspot,
    Both,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrmCfg {
    pub mode: CrmMode,
    pub salesforce: SalesforceCfg,
    pub hubspot: HubSpotCfg,
    /// A record parked for its read is decided on what is known after this
    /// long without a successful read (`"10m"`, `"90s"`).
    #[serde(default = "hydration_deadline", with = "humantime_serde")]
    pub hydration_deadline: std::time::Duration,
    /// A partial batch of reads waits this long for more records.
    #[serde(default = "hydration_linger", with = "humantime_serde")]
    pub hydration_linger: std::time::Duration,
}

fn hydration_deadline() -> std::time::Duration {
    std::time::Duration::from_secs(600)
}

fn hydration_linger() -> std::time::Duration {
    std::time::Duration::from_secs(2)
}

impl CrmCfg {
    /// How hydration batches and gives up.
    pub fn hydration(&self) -> allot_services::hydrate::HydrationConfig {
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        allot_services::hydrate::HydrationConfig {
            linger_ms: ms(self.hydration_linger),
            deadline_ms: ms(self.hydration_deadline),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceCfg {
    pub login_url: String,
    /// The connected app's consumer key.
    #[serde(default)]
    pub client_id: String,
    pub api_version: String,
    /// How allot logs in.
    #[serde(default)]
    pub auth: SalesforceAuthKind,
    /// JWT bearer: the Salesforce username allot acts as (the assertion's `sub`).
    #[serde(default)]
    pub username: String,
    /// JWT bearer: the assertion's `aud`; `login_url` when empty.
    #[serde(default)]
    pub jwt_audience: String,
    /// JWT bearer: a file holding the PEM private key; when empty, the key
    /// comes from the variable `secrets.salesforce_jwt_key_env` names.
    #[serde(default)]
    pub jwt_key_file: String,
    /// Objects with at least this many records to read go through a Bulk
    /// API 2.0 query job instead of SOQL pages (0: never).
    #[serde(default = "default_bulk_threshold")]
    pub bulk_threshold: u64,
}

fn default_bulk_threshold() -> u64 {
    allot_services::backfill::BULK_THRESHOLD
}

/// `crm.salesforce.auth`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum SalesforceAuthKind {
    /// OAuth client credentials: `client_id` and `$<secrets.salesforce_client_secret_env>`.
    #[default]
    ClientCredentials,
    /// OAuth JWT bearer: `client_id`, `username` and an RSA private key.
    Jwt,
}

impl TryFrom<String> for SalesforceAuthKind {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "client_credentials" => Ok(SalesforceAuthKind::ClientCredentials),
            "jwt" => Ok(SalesforceAuthKind::Jwt),
            _ => Err(format!("{s:?} is not one of client_credentials, jwt")),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSpotCfg {
    pub base_url: String,
    /// How allot authenticates.
    #[serde(default)]
    pub auth: HubSpotAuthKind,
    /// OAuth: the public app's client id.
    #[serde(default)]
    pub client_id: String,
}

/// `crm.hubspot.auth`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum HubSpotAuthKind {
    /// A private app's token: `$<secrets.hubspot_token_env>`.
    #[default]
    PrivateApp,
    /// A public app's OAuth refresh: `client_id`,
    /// `$<secrets.hubspot_client_secret_env>` and `$<secrets.hubspot_refresh_token_env>`.
    OAuth,
}

impl TryFrom<String> for HubSpotAuthKind {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "private_app" => Ok(HubSpotAuthKind::PrivateApp),
            "oauth" => Ok(HubSpotAuthKind::OAuth),
            _ => Err(format!("{s:?} is not one of private_app, oauth")),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmulatorCfg {
    pub listen: SocketAddr,
    /// Where `allot serve` stages reach an emulator running as its own
    /// process (`allot emulator`); `http://<listen>` when empty.
    #[serde(default)]
    pub url: String,
    pub seed: PathBuf,
    pub demo_stream: bool,
    pub demo_records: usize,
    /// Generated accounts, leads and contacts per CRM added to the seed
    /// (as `allot emulator --generate N`): a large book to sync.
    #[serde(default)]
    pub generate: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryCfg {
    pub log_format: LogFormat,
    pub level: String,
    /// OTLP/HTTP collector base URL (`http://otel-collector:4318`); empty: no traces exported.
    #[serde(default)]
    pub otlp_endpoint: String,
    /// `http/protobuf` (default) or `http/json`.
    #[serde(default)]
    pub otlp_protocol: String,
}

/// Secrets resolved from the environment; never logged (Debug hides them).
#[derive(Clone, Default)]
pub struct Secrets {
    pub hubspot_client_secret: Option<String>,
    pub ingest_token: Option<String>,
    pub salesforce_client_secret: Option<String>,
    pub hubspot_token: Option<String>,
    /// `name:role:token,...` for the admin API.
    pub api_tokens: Option<String>,
    /// PEM private key for Salesforce JWT bearer, from the environment.
    pub salesforce_jwt_key: Option<String>,
    pub hubspot_refresh_token: Option<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |s: &Option<String>| if s.is_some() { "set" } else { "unset" };
        f.debug_struct("Secrets")
            .field("hubspot_client_secret", &set(&self.hubspot_client_secret))
            .field("ingest_token", &set(&self.ingest_token))
            .field(
                "salesforce_client_secret",
                &set(&self.salesforce_client_secret),
            )
            .field("hubspot_token", &set(&self.hubspot_token))
            .field("api_tokens", &set(&self.api_tokens))
            .field("salesforce_jwt_key", &set(&self.salesforce_jwt_key))
            .field("hubspot_refresh_token", &set(&self.hubspot_refresh_token))
            .finish()
    }
}

/// Loads `dir/default.toml`, then `dir/<env>.toml` when `env` names one, then
/// `ALLOT__…` variables from `vars`.
pub fn load(
    dir: &Path,
    env: Option<&str>,
    vars: &HashMap<String, String>,
) -> anyhow::Result<(AppConfig, Secrets)> {
    let default = dir.join("default.toml");
    if !default.exists() {
        anyhow::bail!(
            "{}: not found (run from the repository root, or pass --config-dir)",
            default.display()
        );
    }
    let mut b = config::Config::builder().add_source(config::File::from(default.as_path()));
    if let Some(env) = env.filter(|e| !e.is_empty()) {
        let p = dir.join(format!("{env}.toml"));
        if !p.exists() {
            anyhow::bail!("{}: not found (ALLOT_ENV={env})", p.display());
        }
        b = b.add_source(config::File::from(p.as_path()));
    }
    let allot_vars: HashMap<String, String> = vars
        .iter()
        .filter(|(k, _)| k.starts_with("ALLOT__"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    b = b.add_source(
        config::Environment::with_prefix("ALLOT")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(Some(allot_vars)),
    );
    let cfg: AppConfig = b
        .build()?
        .try_deserialize()
        .map_err(|e| anyhow::anyhow!("configuration ({}): {e}", dir.display()))?;
    let problems = cfg.validate();
    if !problems.is_empty() {
        anyhow::bail!(
            "configuration ({}):\n  {}",
            dir.display(),
            problems.join("\n  ")
        );
    }
    let secret = |name: &str| vars.get(name).filter(|v| !v.is_empty()).cloned();
    let secrets = Secrets {
        hubspot_client_secret: secret(&cfg.secrets.hubspot_client_secret_env),
        ingest_token: secret(&cfg.secrets.ingest_token_env),
        salesforce_client_secret: secret(&cfg.secrets.salesforce_client_secret_env),
        hubspot_token: secret(&cfg.secrets.hubspot_token_env),
        api_tokens: secret(&cfg.secrets.api_tokens_env),
        salesforce_jwt_key: secret(&cfg.secrets.salesforce_jwt_key_env),
        hubspot_refresh_token: secret(&cfg.secrets.hubspot_refresh_token_env),
    };
    Ok((cfg, secrets))
}

impl AppConfig {
    /// How the pipeline tells allot's own writes coming back.
    pub fn echo(&self) -> allot_services::pipeline::EchoConfig {
        let app = Some(self.ingest.hubspot_app_id.as_str()).filter(|s| !s.is_empty());
        let mut echo =
            allot_services::pipeline::EchoConfig::new(&self.ingest.salesforce_client_id, app);
        echo.filter.hubspot_source_ids = self.ingest.hubspot_source_ids.clone();
        echo.ledger_window_ms = i64::try_from(self.ingest.echo_window_secs).unwrap_or(900) * 1000;
        echo
    }

    /// Whether `crm.mode` talks to the real `crm`.
    pub fn uses(&self, crm: Crm) -> bool {
        match crm {
            Crm::Salesforce => matches!(self.crm.mode, CrmMode::Salesforce | CrmMode::Both),
            Crm::Hubspot => matches!(self.crm.mode, CrmMode::Hubspot | CrmMode::Both),
            Crm::Native => false,
        }
    }

    /// The secrets the selected CRM logins need that are missing or unusable,
    /// each naming its setting and where it is looked for. Only the CRMs
    /// `crm.mode` uses are asked about.
    pub fn crm_secret_problems(&self, secrets: &Secrets) -> Vec<String> {
        let s = &self.secrets;
        let mut p = Vec::new();
        if self.uses(Crm::Salesforce) {
            match self.crm.salesforce.auth {
                SalesforceAuthKind::ClientCredentials => p.extend(missing(
                    &secrets.salesforce_client_secret,
                    "salesforce_client_secret_env",
                    &s.salesforce_client_secret_env,
                    "the connected app's consumer secret, for crm.salesforce.auth = \"client_credentials\"",
                )),
                SalesforceAuthKind::Jwt => p.extend(self.salesforce_jwt_key(secrets).err()),
            }
        }
        if self.uses(Crm::Hubspot) {
            match self.crm.hubspot.auth {
                HubSpotAuthKind::PrivateApp => p.extend(missing(
                    &secrets.hubspot_token,
                    "hubspot_token_env",
                    &s.hubspot_token_env,
                    "the private app's access token, for crm.hubspot.auth = \"private_app\"",
                )),
                HubSpotAuthKind::OAuth => {
                    p.extend(missing(
                        &secrets.hubspot_client_secret,
                        "hubspot_client_secret_env",
                        &s.hubspot_client_secret_env,
                        "the public app's client secret, for crm.hubspot.auth = \"oauth\"",
                    ));
                    p.extend(missing(
                        &secrets.hubspot_refresh_token,
                        "hubspot_refresh_token_env",
                        &s.hubspot_refresh_token_env,
                        "the OAuth refresh token, for crm.hubspot.auth = \"oauth\"",
                    ));
                }
            }
        }
        p
    }

    /// The PEM private key of Salesforce JWT bearer: the file
    /// `crm.salesforce.jwt_key_file` when set, else `$<secrets.salesforce_jwt_key_env>`.
    /// The error names the setting and the file or variable.
    pub fn salesforce_jwt_key(&self, secrets: &Secrets) -> Result<String, String> {
        let file = &self.crm.salesforce.jwt_key_file;
        let origin = self.salesforce_jwt_key_origin();
        let pem = if file.is_empty() {
            let env = &self.secrets.salesforce_jwt_key_env;
            match &secrets.salesforce_jwt_key {
                Some(pem) => pem.clone(),
                None => {
                    return Err(format!(
                        "secrets.salesforce_jwt_key_env: ${env} is not set or empty (the connected app's PEM private key, for crm.salesforce.auth = \"jwt\"; or set crm.salesforce.jwt_key_file)"
                    ))
                }
            }
        } else {
            match std::fs::read_to_string(file) {
                Ok(pem) => pem,
                Err(e) => {
                    return Err(format!(
                        "crm.salesforce.jwt_key_file: cannot read {file}: {e}"
                    ))
                }
            }
        };
        if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return Err(format!(
                "{origin}: an encrypted private key; give the key unencrypted (openssl pkey -in KEY -out PLAIN)"
            ));
        }
        if !looks_like_pem_private_key(&pem) {
            return Err(format!(
                "{origin}: not a PEM private key (expected a -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY----- block)"
            ));
        }
        Ok(pem)
    }

    /// Where the Salesforce JWT key comes from, as `setting: file or $VARIABLE`.
    pub fn salesforce_jwt_key_origin(&self) -> String {
        match self.crm.salesforce.jwt_key_file.as_str() {
            "" => format!(
                "secrets.salesforce_jwt_key_env: ${}",
                self.secrets.salesforce_jwt_key_env
            ),
            file => format!("crm.salesforce.jwt_key_file: {file}"),
        }
    }

    /// Every problem, as `key: what is wrong`.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.ingest.max_chunk == 0 {
            p.push("ingest.max_chunk: must be at least 1".to_string());
        }
        if self.ingest.salesforce_client_id.trim().is_empty() {
            p.push(
                "ingest.salesforce_client_id: must not be empty (it marks allot's own writes)"
                    .into(),
            );
        }
        if !["trace", "debug", "info", "warn", "error"].contains(&self.telemetry.level.as_str()) {
            p.push(format!(
                "telemetry.level: {:?} is not one of trace, debug, info, warn, error",
                self.telemetry.level
            ));
        }
        if self.uses(Crm::Salesforce) {
            let sf = &self.crm.salesforce;
            if sf.client_id.is_empty() {
                p.push("crm.salesforce.client_id: required when crm.mode uses Salesforce".into());
            }
            if sf.auth == SalesforceAuthKind::Jwt && sf.username.trim().is_empty() {
                p.push(
                    "crm.salesforce.username: required when crm.salesforce.auth = \"jwt\" (the user allot acts as)"
                        .into(),
                );
            }
            let audience = &sf.jwt_audience;
            if !(audience.is_empty()
                || audience.starts_with("http://")
                || audience.starts_with("https://"))
            {
                p.push(format!(
                    "crm.salesforce.jwt_audience: {:?} is not an http(s) URL",
                    sf.jwt_audience
                ));
            }
        }
        if self.uses(Crm::Hubspot)
            && self.crm.hubspot.auth == HubSpotAuthKind::OAuth
            && self.crm.hubspot.client_id.trim().is_empty()
        {
            p.push(
                "crm.hubspot.client_id: required when crm.hubspot.auth = \"oauth\" (the public app's client id)"
                    .into(),
            );
        }
        for (key, url) in [
            ("crm.salesforce.login_url", &self.crm.salesforce.login_url),
            ("crm.hubspot.base_url", &self.crm.hubspot.base_url),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                p.push(format!("{key}: {url:?} is not an http(s) URL"));
            }
        }
        if self.kafka.enabled {
            if self.kafka.sources.is_empty() {
                p.push("kafka.sources: list at least one topic when kafka.enabled".into());
            }
            for (i, s) in self.kafka.sources.iter().enumerate() {
                if s.format.parse::<allot_events::Format>().is_err() {
                    p.push(format!("kafka.sources[{i}].format: {:?} is not one of auto, salesforce, hubspot, native", s.format));
                }
            }
            if let Err(e) = self.kafka.bus().validate() {
                p.push(format!("kafka: {e}"));
            }
        }
        p
    }
}

/// `secrets.<key>: $<env> is not set or empty (<what>)` when `value` is absent.
fn missing(value: &Option<String>, key: &str, env: &str, what: &str) -> Option<String> {
    value
        .is_none()
        .then(|| format!("secrets.{key}: ${env} is not set or empty ({what})"))
}

/// A `-----BEGIN … PRIVATE KEY-----` block with its matching end line.
fn looks_like_pem_private_key(pem: &str) -> bool {
    let pem = pem.trim();
    let Some(rest) = pem.strip_prefix("-----BEGIN ") else {
        return false;
    };
    let Some((label, body)) = rest.split_once("-----") else {
        return false;
    };
    label.ends_with("PRIVATE KEY")
        && !label.contains("ENCRYPTED")
        && body.trim_end().ends_with(&format!("-----END {label}-----"))
        && body.len() > label.len() + 20
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config")
    }

    #[test]
    fn defaults_load_and_env_overrides() {
        let vars: HashMap<String, String> = [
            ("ALLOT__API__LISTEN", "127.0.0.1:9999"),
            ("ALLOT__INGEST__MAX_CHUNK", "7"),
            ("ALLOT_HUBSPOT_CLIENT_SECRET", "shh"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (cfg, secrets) = load(&dir(), None, &vars).unwrap();
        assert_eq!(cfg.api.listen.port(), 9999);
        assert_eq!(cfg.ingest.max_chunk, 7);
        assert_eq!(cfg.crm.mode, CrmMode::Emulator);
        assert_eq!(secrets.hubspot_client_secret.as_deref(), Some("shh"));
        assert!(!format!("{secrets:?}").contains("shh"));
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            (
                "ALLOT__INGEST__MAX_CHUNK",
                "0",
                "ingest.max_chunk: must be at least 1",
            ),
            ("ALLOT__TELEMETRY__LEVEL", "loud", "telemetry.level"),
            (
                "ALLOT__CRM__MODE",
                "salesforce",
                "crm.salesforce.client_id: required",
            ),
            ("ALLOT__API__LISTEN", "nowhere", "api.listen"),
        ];
        for (k, v, want) in cases {
            let vars = HashMap::from([(k.to_string(), v.to_string())]);
            let err = load(&dir(), None, &vars).unwrap_err().to_string();
            assert!(err.contains(want), "{k}={v}: {err}");
        }
    }

    #[test]
    fn pem_private_keys_are_told_from_other_text() {
        let body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7";
        let cases = [
            (format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"), true),
            (format!("\n-----BEGIN RSA PRIVATE KEY-----\r\n{body}\r\n-----END RSA PRIVATE KEY-----"), true),
            (format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"), false),
            (format!("-----BEGIN ENCRYPTED PRIVATE KEY-----\n{body}\n-----END ENCRYPTED PRIVATE KEY-----\n"), false),
            (format!("-----BEGIN PRIVATE KEY-----\n{body}\n"), false),
            ("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n".to_string(), false),
            (body.to_string(), false),
        ];
        for (pem, want) in cases {
            assert_eq!(looks_like_pem_private_key(&pem), want, "{pem}");
        }
    }

    #[test]
    fn the_docker_overlay_is_valid() {
        let (cfg, _) = load(&dir(), Some("docker"), &HashMap::new()).unwrap();
        assert!(cfg.kafka.enabled);
        assert_eq!(cfg.kafka.bootstrap_servers, "kafka:9092");
        assert_eq!(cfg.api.listen.port(), 7700);
        assert_eq!(cfg.telemetry.log_format, LogFormat::Json);
    }

    #[test]
    fn a_missing_env_file_is_an_error() {
        let err = load(&dir(), Some("staging"), &HashMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("staging.toml: not found"), "{err}");
    }
}
