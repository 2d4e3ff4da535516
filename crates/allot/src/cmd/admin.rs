//! `allot rules | explain | reps | admin`: the admin API of a running allot
//! from the command line, as tables (or `--json`).

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{json, Value};

use super::remote::{cell, table, time, Body, Client, Remote};

#[derive(clap::Subcommand)]
pub enum RulesCmd {
    /// The version in force (`--text` prints the rules file).
    Get {
        #[arg(long)]
        text: bool,
    },
    /// Validate a rules file on the server; exit 1 when invalid.
    Validate { file: String },
    /// Upload a rules file as a new version; `--activate` dry-runs and activates it.
    Push {
        file: String,
        #[arg(long)]
        activate: bool,
        /// Effective time with --activate (RFC 3339); now when absent.
        #[arg(long, requires = "activate")]
        at: Option<String>,
    },
    /// Every stored version and its state.
    Versions,
    /// What activating VERSION would move (the realign report).
    DryRun { version: String },
    /// Activate VERSION (after its dry run), now or `--at` a later time.
    Activate {
        version: String,
        #[arg(long)]
        at: Option<String>,
    },
    /// Activate the previously active version now.
    Rollback,
    /// Progress of the last realignment.
    Realignment,
}

#[derive(clap::Subcommand)]
pub enum RepsCmd {
    /// Every rep: availability, loads, caps, eligible now and why not.
    List,
    /// Out of office until a time (`--clear` drops the windows set here).
    Ooo {
        rep: String,
        #[arg(long, required_unless_present = "clear")]
        until: Option<String>,
        #[arg(long)]
        from: Option<String>,
        #[arg(long, conflicts_with_all = ["until", "from"])]
        clear: bool,
    },
    /// Override caps: a number, or `none` for no cap; `--reset` returns to the rules file.
    Capacity {
        rep: String,
        #[arg(long)]
        max_open: Option<String>,
        #[arg(long)]
        max_per_day: Option<String>,
        #[arg(long)]
        reset: bool,
    },
    /// Activate or deactivate a rep (`default` returns to the rules file).
    Active { rep: String, state: String },
    /// Where the rep's open records would go; `--apply` deactivates and moves them.
    Offboard {
        rep: String,
        #[arg(long)]
        apply: bool,
    },
}

#[derive(clap::Subcommand)]
pub enum AdminCmd {
    /// Mutating API calls: who, what, when, result.
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[derive(clap::Args)]
pub struct Rules {
    #[command(subcommand)]
    cmd: RulesCmd,
    #[command(flatten)]
    remote: Remote,
}

#[derive(clap::Args)]
pub struct Reps {
    #[command(subcommand)]
    cmd: RepsCmd,
    #[command(flatten)]
    remote: Remote,
}

#[derive(clap::Args)]
pub struct Admin {
    #[command(subcommand)]
    cmd: AdminCmd,
    #[command(flatten)]
    remote: Remote,
}

#[derive(clap::Args)]
pub struct Explain {
    /// The record id.
    record: String,
    #[command(flatten)]
    remote: Remote,
}

fn read(file: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))
}

fn name_of(file: &str) -> String {
    std::path::Path::new(file)
        .file_name()
        .map_or_else(|| file.to_string(), |n| n.to_string_lossy().into_owned())
}

fn versions_table(v: &Value) {
    let rows: Vec<Vec<String>> = v["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| {
            vec![
                cell(&x["version_id"]),
                cell(&x["state"]),
                time(&x["effective_at"]),
                cell(&x["activated_by"]),
                x["dry_run"]["against"].as_str().map_or("-".into(), |a| {
                    format!("vs {a}: {} moved", cell(&x["dry_run"]["moved"]))
                }),
            ]
        })
        .collect();
    table(
        &["version", "state", "effective", "activated by", "dry run"],
        &rows,
    );
}

fn report(v: &Value) {
    println!(
        "realign {} → {}: {} records, {} move",
        cell(&v["old_version"]),
        cell(&v["new_version"]),
        cell(&v["records"]),
        cell(&v["moved"])
    );
    let mut rows: Vec<Vec<String>> = v["reps"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(rep, t)| {
            vec![
                rep.clone(),
                cell(&t["before"]),
                cell(&t["after"]),
                cell(&t["moved_in"]),
                cell(&t["moved_out"]),
            ]
        })
        .collect();
    rows.sort();
    table(&["rep", "before", "after", "in", "out"], &rows);
}

fn activated(v: &Value) {
    println!(
        "activated {} from {}; in force now: {}",
        cell(&v["version_id"]),
        time(&v["effective_at"]),
        cell(&v["active_version"])
    );
    if let Some(j) = v["realignment"].as_object() {
        println!(
            "realignment {} → {} started: known records are re-decided at the configured rate (allot rules realignment)",
            cell(&j["from_version"]),
            cell(&j["to_version"])
        );
    }
}

fn problems(e: &anyhow::Error) {
    if let Some(api) = e.downcast_ref::<super::remote::ApiError>() {
        for d in api.body["diagnostics"].as_array().into_iter().flatten() {
            eprintln!("{}", cell(&d["text"]));
        }
    }
}

pub fn rules(a: Rules, vars: HashMap<String, String>) -> anyhow::Result<ExitCode> {
    let c = Client::new(&a.remote, &vars)?;
    let r = match a.cmd {
        RulesCmd::Get { text } => c.get("/api/rules").and_then(|v| {
            c.show(&v, |v| {
                if text {
                    print!("{}", cell(&v["toml"]));
                    return;
                }
                println!(
                    "{} (activated by {} from {}): {} reps, {} teams, {} territories",
                    cell(&v["version_id"]),
                    cell(&v["activated_by"]),
                    time(&v["effective_at"]),
                    cell(&v["reps"]),
                    cell(&v["teams"]),
                    cell(&v["territories"])
                );
                for w in v["warnings"].as_array().into_iter().flatten() {
                    println!("{}", cell(&w["text"]));
                }
            })
        }),
        RulesCmd::Validate { file } => {
            let path = format!("/api/rules/validate?name={}", name_of(&file));
            match c.post(&path, Some(Body::Text(read(&file)?))) {
                Ok(v) => c.show(&v, |v| {
                    println!(
                        "{file}: valid (version {}, {} reps, {} territories)",
                        cell(&v["version_id"]),
                        cell(&v["reps"]),
                        cell(&v["territories"])
                    );
                    for w in v["warnings"].as_array().into_iter().flatten() {
                        println!("{}", cell(&w["text"]));
                    }
                }),
                Err(e) => Err(e),
            }
        }
        RulesCmd::Push { file, activate, at } => {
            let path = format!("/api/rules/versions?name={}", name_of(&file));
            c.post(&path, Some(Body::Text(read(&file)?))).and_then(|v| {
                let id = cell(&v["version_id"]);
                if !activate {
                    return c.show(&v, |v| {
                        println!("{}: {} ({})", cell(&v["message"]), id, cell(&v["state"]))
                    });
                }
                let dry = c.post(&format!("/api/rules/versions/{id}/dry-run"), None)?;
                let body = json!({ "effective_at": at });
                let act = c.post(
                    &format!("/api/rules/versions/{id}/activate"),
                    Some(Body::Json(body)),
                )?;
                c.show(
                    &json!({ "version": v, "dry_run": dry, "activation": act }),
                    |_| {
                        report(&dry);
                        activated(&act);
                    },
                )
            })
        }
        RulesCmd::Versions => c
            .get("/api/rules/versions")
            .and_then(|v| c.show(&v, versions_table)),
        RulesCmd::DryRun { version } => c
            .post(&format!("/api/rules/versions/{version}/dry-run"), None)
            .and_then(|v| c.show(&v, report)),
        RulesCmd::Activate { version, at } => c
            .post(
                &format!("/api/rules/versions/{version}/activate"),
                Some(Body::Json(json!({ "effective_at": at }))),
            )
            .and_then(|v| c.show(&v, activated)),
        RulesCmd::Rollback => c
            .post("/api/rules/rollback", None)
            .and_then(|v| c.show(&v, activated)),
        RulesCmd::Realignment => c.get("/api/rules/realignment").and_then(|v| {
            c.show(&v, |v| match v["realignment"].as_object() {
                None => println!("no realignment has run"),
                Some(j) => println!(
                    "{} → {} (activated by {}): {} scanned, {} moved, {}",
                    cell(&j["from_version"]),
                    cell(&j["to_version"]),
                    cell(&j["activated_by"]),
                    cell(&j["scanned"]),
                    cell(&j["moved"]),
                    if j["finished_at"].is_null() {
                        "running".to_string()
                    } else {
                        format!("finished {}", time(&j["finished_at"]))
                    }
                ),
            })
        }),
    };
    finish(r)
}

fn finish(r: anyhow::Result<()>) -> anyhow::Result<ExitCode> {
    match r {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            problems(&e);
            Err(e)
        }
    }
}

pub fn explain(a: Explain, vars: HashMap<String, String>) -> anyhow::Result<ExitCode> {
    let c = Client::new(&a.remote, &vars)?;
    let r = c
        .get(&format!("/api/records/{}/decisions", a.record))
        .and_then(|v| {
            c.show(&v, |v| {
                for d in v["decisions"].as_array().into_iter().flatten() {
                    println!(
                        "{}  {} → {}  territory {}  ({}, rules {})",
                        time(&d["decided_at"]),
                        cell(&d["previous_owner"]),
                        cell(&d["owner"]),
                        cell(&d["territory"]),
                        cell(&d["strategy"]),
                        cell(&d["rules_version"])
                    );
                    for line in d["explanation"].as_array().into_iter().flatten() {
                        println!("    {}", cell(line));
                    }
                }
            })
        });
    finish(r)
}

fn cap(what: &str, s: &str) -> anyhow::Result<Value> {
    if s == "none" {
        return Ok(Value::Null);
    }
    s.parse::<u32>()
        .map(|n| json!(n))
        .map_err(|_| anyhow::anyhow!("--{what} {s:?}: a whole number, or none for no cap"))
}

pub fn reps(a: Reps, vars: HashMap<String, String>) -> anyhow::Result<ExitCode> {
    let c = Client::new(&a.remote, &vars)?;
    let done = |v: &Value| println!("{} updated: {}", cell(&v["rep"]), v["override"]);
    let r = match a.cmd {
        RepsCmd::List => c.get("/api/reps").and_then(|v| {
            c.show(&v, |v| {
                let rows: Vec<Vec<String>> = v["reps"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        vec![
                            cell(&r["id"]),
                            cell(&r["name"]),
                            cell(&r["active"]),
                            cell(&r["out_of_office_until"]),
                            cell(&r["open"]),
                            cell(&r["max_open"]),
                            cell(&r["today"]),
                            cell(&r["max_per_day"]),
                            if r["eligible_now"] == true {
                                "yes".into()
                            } else {
                                format!("no: {}", cell(&r["reason"]))
                            },
                        ]
                    })
                    .collect();
                table(
                    &[
                        "rep",
                        "name",
                        "active",
                        "ooo until",
                        "open",
                        "max open",
                        "today",
                        "max/day",
                        "eligible",
                    ],
                    &rows,
                );
            })
        }),
        RepsCmd::Ooo {
            rep,
            until,
            from,
            clear,
        } => {
            let r = if clear {
                c.delete(&format!("/api/reps/{rep}/ooo"))
            } else {
                c.put(
                    &format!("/api/reps/{rep}/ooo"),
                    json!({ "until": until, "from": from }),
                )
            };
            r.and_then(|v| c.show(&v, done))
        }
        RepsCmd::Capacity {
            rep,
            max_open,
            max_per_day,
            reset,
        } => {
            let mut body = serde_json::Map::new();
            if let Some(m) = max_open {
                body.insert("max_open".into(), cap("max-open", &m)?);
            }
            if let Some(m) = max_per_day {
                body.insert("max_per_day".into(), cap("max-per-day", &m)?);
            }
            if reset {
                body.insert("reset".into(), json!(true));
            }
            c.put(&format!("/api/reps/{rep}/capacity"), Value::Object(body))
                .and_then(|v| c.show(&v, done))
        }
        RepsCmd::Active { rep, state } => {
            let active = match state.as_str() {
                "true" | "yes" | "on" => json!(true),
                "false" | "no" | "off" => json!(false),
                "default" => Value::Null,
                other => anyhow::bail!("{other:?}: give true, false or default"),
            };
            c.put(
                &format!("/api/reps/{rep}/active"),
                json!({ "active": active }),
            )
            .and_then(|v| c.show(&v, done))
        }
        RepsCmd::Offboard { rep, apply } => c
            .post(
                &format!("/api/reps/{rep}/offboard?preview={}", !apply),
                None,
            )
            .and_then(|v| {
                c.show(&v, |v| {
                    if let Some(by) = v["re_decided_by"].as_str() {
                        // Microservice mode: published to the control topic.
                        println!(
                            "{rep}: offboarded (control topic {} at offset {}); open records re-decided by {by}",
                            cell(&v["published"]["topic"]),
                            cell(&v["published"]["offset"])
                        );
                        return;
                    }
                    let list = if apply { &v["moved"] } else { &v["moves"] };
                    let rows: Vec<Vec<String>> = list
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|m| {
                            vec![
                                cell(&m["id"]),
                                cell(&m["object"]),
                                cell(&m["to_owner"]),
                                cell(&m["territory"]),
                            ]
                        })
                        .collect();
                    let verb = if apply {
                        "moved"
                    } else {
                        "would move (preview; --apply does it)"
                    };
                    println!("{rep}: {} open record(s) {verb}", rows.len());
                    table(&["record", "object", "to", "territory"], &rows);
                })
            }),
    };
    finish(r)
}

pub fn admin(a: Admin, vars: HashMap<String, String>) -> anyhow::Result<ExitCode> {
    let c = Client::new(&a.remote, &vars)?;
    let r = match a.cmd {
        AdminCmd::Audit { limit } => {
            c.get(&format!("/api/admin/audit?limit={limit}"))
                .and_then(|v| {
                    c.show(&v, |v| {
                        let rows: Vec<Vec<String>> = v["entries"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|e| {
                                vec![
                                    time(&e["at"]),
                                    cell(&e["who"]),
                                    cell(&e["role"]),
                                    cell(&e["action"]),
                                    cell(&e["status"]),
                                    cell(&e["detail"]),
                                ]
                            })
                            .collect();
                        table(&["at", "who", "role", "action", "status", "detail"], &rows);
                    })
                })
        }
    };
    finish(r)
}
