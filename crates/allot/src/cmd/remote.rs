//! Calling a running allot's admin API from the command line: where it is,
//! the token, errors with their status, and plain tables.

use std::collections::HashMap;

use anyhow::Context;
use serde_json::Value;

/// Where the API is and who is calling.
#[derive(clap::Args, Clone)]
pub struct Remote {
    /// Base URL of allot's API [default: $ALLOT_API, else http://127.0.0.1:7700].
    #[arg(long, global = true)]
    api: Option<String>,
    /// Bearer token [default: $ALLOT_TOKEN].
    #[arg(long, global = true)]
    token: Option<String>,
    /// Print the API's JSON answer instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// An API client for one command.
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
    pub json: bool,
}

/// A non-2xx answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: reqwest::StatusCode,
    pub body: Value,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let message = self.body["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| self.body.to_string());
        write!(f, "API answered {}: {message}", self.status)
    }
}

impl std::error::Error for ApiError {}

impl Client {
    pub fn new(r: &Remote, vars: &HashMap<String, String>) -> anyhow::Result<Client> {
        let base = r
            .api
            .clone()
            .or_else(|| vars.get("ALLOT_API").cloned())
            .unwrap_or_else(|| "http://127.0.0.1:7700".into());
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            anyhow::bail!("--api {base:?} is not an http(s) URL");
        }
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            token: r
                .token
                .clone()
                .or_else(|| vars.get("ALLOT_TOKEN").cloned())
                .filter(|t| !t.is_empty()),
            // A dry run or a replay over a large book can take minutes; a
            // dead or wrong address fails fast.
            http: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .timeout(std::time::Duration::from_secs(300))
                .build()?,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            json: r.json,
        })
    }

    /// Sends a request; the JSON answer, or an [`ApiError`] for non-2xx.
    pub fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Body>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        req = match body {
            None => req,
            Some(Body::Json(v)) => req.json(&v),
            Some(Body::Text(t)) => req.header("content-type", "application/toml").body(t),
        };
        self.rt.block_on(async {
            let resp = req.send().await.with_context(|| {
                format!("{method} {url}: cannot reach allot (is it running? --api)")
            })?;
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            if status.is_success() {
                Ok(body)
            } else {
                Err(ApiError { status, body }.into())
            }
        })
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None)
    }

    pub fn post(&self, path: &str, body: Option<Body>) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, body)
    }

    pub fn put(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::PUT, path, Some(Body::Json(body)))
    }

    pub fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::DELETE, path, None)
    }

    /// Prints `v` as JSON when `--json`, else with `human`.
    pub fn show(&self, v: &Value, human: impl FnOnce(&Value)) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(v)?);
        } else {
            human(v);
        }
        Ok(())
    }
}

/// A request body.
pub enum Body {
    Json(Value),
    Text(String),
}

/// A value as a table cell: strings bare, null as `-`.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Prints rows under headers, columns as wide as their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut width: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&width)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_uppercase()).collect());
    for r in rows {
        line(r.clone());
    }
}

/// Epoch ms as RFC 3339 (`-` when absent).
pub fn time(v: &Value) -> String {
    v.as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(|| cell(v), |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}
