//! `allot writes failed | retry | discard`: the owner changes a running
//! allot's writer gave up on, through its admin API, as tables (or `--json`).

use std::collections::HashMap;
use std::process::ExitCode;

use serde_json::Value;

use super::remote::{cell, table, time, Client, Remote};

#[derive(clap::Subcommand)]
pub enum WritesCmd {
    /// Failed writes, oldest record key first, with the counts per error code.
    Failed {
        /// Only this CRM: salesforce, hubspot or native.
        #[arg(long)]
        crm: Option<String>,
        /// Only this kind: lead, account or contact.
        #[arg(long)]
        object: Option<String>,
        /// Only this error code (inactive_owner, invalid_reference, not_found, rejected, gave_up).
        #[arg(long)]
        code: Option<String>,
        /// Most entries listed (the API pages; this follows its cursor).
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Decide the record of failed write ID again and queue the owner picked.
    Retry { id: String },
    /// Drop failed write ID without writing it.
    Discard { id: String },
}

#[derive(clap::Args)]
pub struct Writes {
    #[command(subcommand)]
    cmd: WritesCmd,
    #[command(flatten)]
    remote: Remote,
}

/// Percent-encodes a query value or path segment (ids may hold any character).
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Up to `limit` failed writes, following the API's `next` cursor.
fn list(c: &Client, filters: &[(&str, Option<String>)], limit: usize) -> anyhow::Result<Value> {
    let mut query: Vec<String> = filters
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", enc(v))))
        .collect();
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    let mut last;
    loop {
        let page = (limit - items.len()).min(1000);
        query.retain(|q| !q.starts_with("limit=") && !q.starts_with("after="));
        query.push(format!("limit={page}"));
        if let Some(a) = &after {
            query.push(format!("after={}", enc(a)));
        }
        last = c.get(&format!("/api/writes/failed?{}", query.join("&")))?;
        items.extend(last["items"].as_array().cloned().unwrap_or_default());
        after = last["next"].as_str().map(str::to_string);
        if after.is_none() || items.len() >= limit {
            break;
        }
    }
    last["items"] = Value::Array(items);
    Ok(last)
}

fn failed_table(v: &Value) {
    let counts: Vec<String> = v["counts"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(code, n)| format!("{code} {n}"))
        .collect();
    println!(
        "failed writes: {}{}",
        cell(&v["total"]),
        if counts.is_empty() {
            String::new()
        } else {
            format!(" ({})", counts.join(", "))
        }
    );
    let rows: Vec<Vec<String>> = v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            vec![
                cell(&f["id"]),
                cell(&f["crm"]),
                cell(&f["owner"]),
                cell(&f["code"]),
                cell(&f["attempts"]),
                time(&f["failed_at"]),
                cell(&f["message"]),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("none listed");
    } else {
        table(
            &[
                "id",
                "crm",
                "owner",
                "code",
                "attempts",
                "failed at",
                "message",
            ],
            &rows,
        );
    }
    if !v["next"].is_null() {
        println!("more: raise --limit, or filter with --crm/--object/--code");
    }
}

pub fn run(a: Writes, vars: HashMap<String, String>) -> anyhow::Result<ExitCode> {
    let c = Client::new(&a.remote, &vars)?;
    let r = match a.cmd {
        WritesCmd::Failed {
            crm,
            object,
            code,
            limit,
        } => {
            if limit == 0 {
                anyhow::bail!("--limit 0: give at least 1");
            }
            let filters = [("crm", crm), ("object", object), ("code", code)];
            list(&c, &filters, limit).and_then(|v| c.show(&v, failed_table))
        }
        WritesCmd::Retry { id } => c
            .post(&format!("/api/writes/failed/{}/retry", enc(&id)), None)
            .and_then(|v| c.show(&v, |v| println!("{}", cell(&v["message"])))),
        WritesCmd::Discard { id } => c
            .post(&format!("/api/writes/failed/{}/discard", enc(&id)), None)
            .and_then(|v| c.show(&v, |v| println!("{}", cell(&v["message"])))),
    };
    r.map(|()| ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_filters_are_encoded_for_urls() {
        let cases = [
            ("lead:00Q1:17", "lead:00Q1:17"),
            ("contact:a/b c:5", "contact:a%2Fb%20c:5"),
            ("x?y&z#", "x%3Fy%26z%23"),
            ("é", "%C3%A9"),
        ];
        for (raw, want) in cases {
            assert_eq!(enc(raw), want, "{raw}");
        }
    }
}
