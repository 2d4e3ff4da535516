//! The dependency rules of `docs/ARCHITECTURE.md`, checked against
//! `cargo metadata`.
//!
//! [`ALLOWED`] is the "may depend on" column of the crate table in
//! `docs/ARCHITECTURE.md`; [`doc_table_matches_allowed`] fails when the two
//! drift apart, so change both together. [`check`] is a pure function over
//! [`Graph`] so the rules can be shown failing on a made-up workspace
//! ([`checker_reports_upward_and_io_dependencies`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Every workspace crate, and the only workspace crates it may have as
/// normal (non-dev) dependencies. Same table as `docs/ARCHITECTURE.md`.
/// Crates listed here but not (yet) in the workspace are skipped.
const ALLOWED: &[(&str, &[&str])] = &[
    ("allot-core", &[]),
    ("allot-rules", &["allot-core"]),
    ("allot-events", &["allot-core"]),
    ("allot-store", &["allot-core"]),
    ("allot-bus", &["allot-core", "allot-store"]),
    ("allot-crm", &["allot-core", "allot-events"]),
    ("allot-emulator", &["allot-core", "allot-events"]),
    ("allot-writer", &["allot-core", "allot-store", "allot-crm"]),
    (
        "allot-api",
        &[
            "allot-core",
            "allot-store",
            "allot-rules",
            "allot-bus",
            "allot-events",
        ],
    ),
    (
        "allot-services",
        &[
            "allot-core",
            "allot-rules",
            "allot-events",
            "allot-store",
            "allot-bus",
            "allot-crm",
            "allot-writer",
            "allot-api",
        ],
    ),
    (
        "allot",
        &[
            "allot-core",
            "allot-rules",
            "allot-events",
            "allot-store",
            "allot-bus",
            "allot-crm",
            "allot-emulator",
            "allot-writer",
            "allot-api",
            "allot-services",
        ],
    ),
    (
        "allot-tests",
        &[
            "allot-core",
            "allot-rules",
            "allot-events",
            "allot-store",
            "allot-bus",
            "allot-crm",
            "allot-emulator",
            "allot-writer",
            "allot-api",
            "allot-services",
        ],
    ),
];

/// The engine, the decoders and the domain types: no I/O, no clock, no
/// network.
const PURE: &[&str] = &["allot-core", "allot-rules", "allot-events"];

/// Crates that do I/O (async runtimes, sockets, HTTP, Kafka, storage) and
/// must not be direct normal dependencies of a [`PURE`] crate.
const DENY_IO: &[&str] = &[
    "tokio",
    "async-std",
    "smol",
    "mio",
    "socket2",
    "reqwest",
    "ureq",
    "hyper",
    "hyper-util",
    "h2",
    "tower",
    "axum",
    "tonic",
    "rdkafka",
    "sled",
    "rusqlite",
];

/// Workspace packages and the names of their normal (non-dev) dependencies.
#[derive(Debug, Default, Clone)]
struct Graph {
    packages: BTreeMap<String, Vec<String>>,
}

impl Graph {
    fn from_pairs(pairs: &[(&str, &[&str])]) -> Graph {
        Graph {
            packages: pairs
                .iter()
                .map(|(name, deps)| {
                    (
                        name.to_string(),
                        deps.iter().map(|d| d.to_string()).collect(),
                    )
                })
                .collect(),
        }
    }

    /// Reads `cargo metadata --format-version 1` output. Normal and build
    /// dependencies count (any target, optional or not); dev-dependencies
    /// do not. Names are package names, so a renamed dependency is still
    /// caught.
    fn from_metadata(metadata: &Value) -> Result<Graph, String> {
        let packages = metadata["packages"]
            .as_array()
            .ok_or("cargo metadata: no `packages` array")?;
        let mut graph = Graph::default();
        for package in packages {
            let name = package["name"]
                .as_str()
                .ok_or("cargo metadata: a package without a name")?;
            let deps = package["dependencies"]
                .as_array()
                .ok_or_else(|| format!("cargo metadata: {name} has no `dependencies` array"))?;
            let mut names = Vec::new();
            for dep in deps {
                if dep["kind"].as_str() == Some("dev") {
                    continue;
                }
                let dep_name = dep["name"]
                    .as_str()
                    .ok_or_else(|| format!("cargo metadata: {name} has a nameless dependency"))?;
                names.push(dep_name.to_string());
            }
            names.sort();
            names.dedup();
            graph.packages.insert(name.to_string(), names);
        }
        Ok(graph)
    }
}

/// Every violation of `allowed` (workspace edges), `deny` (I/O crates in
/// `pure` crates) and missing table rows in `graph`, one message each.
fn check(graph: &Graph, allowed: &[(&str, &[&str])], pure: &[&str], deny: &[&str]) -> Vec<String> {
    let table: BTreeMap<&str, &[&str]> = allowed.iter().copied().collect();
    let workspace: BTreeSet<&str> = graph
        .packages
        .keys()
        .map(String::as_str)
        .chain(table.keys().copied())
        .collect();
    let mut violations = Vec::new();
    for (krate, deps) in &graph.packages {
        let Some(may) = table.get(krate.as_str()) else {
            violations.push(format!(
                "{krate}: a workspace crate with no row in the crate table \
                 (add it to docs/ARCHITECTURE.md and ALLOWED in tests/tests/architecture.rs)"
            ));
            continue;
        };
        for dep in deps {
            let dep = dep.as_str();
            if workspace.contains(dep) && !may.contains(&dep) {
                let may = if may.is_empty() {
                    "no workspace crate".to_string()
                } else {
                    may.join(", ")
                };
                violations.push(format!(
                    "{krate} depends on {dep}: not allowed by the crate table \
                     ({krate} may depend on: {may})"
                ));
            }
            if pure.contains(&krate.as_str()) && deny.contains(&dep) {
                violations.push(format!(
                    "{krate} depends on {dep}: {dep} is an I/O crate, and {krate} \
                     must stay pure (no I/O, clock or network)"
                ));
            }
        }
    }
    violations
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent: the workspace root")
        .to_path_buf()
}

fn cargo_metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let manifest = workspace_root().join("Cargo.toml");
    let out = Command::new(&cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .output()
        .unwrap_or_else(|e| panic!("running {cargo} metadata: {e}"));
    assert!(
        out.status.success(),
        "{cargo} metadata --manifest-path {} failed ({}):\n{}",
        manifest.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

fn fail_on(violations: &[String]) {
    if !violations.is_empty() {
        panic!(
            "{} architecture violation(s), see docs/ARCHITECTURE.md:\n  - {}",
            violations.len(),
            violations.join("\n  - ")
        );
    }
}

#[test]
fn workspace_dependencies_follow_the_crate_table() {
    let graph = Graph::from_metadata(&cargo_metadata()).expect("cargo metadata parses");
    assert!(
        graph.packages.contains_key("allot-core"),
        "cargo metadata lists no allot-core: {:?}",
        graph.packages.keys().collect::<Vec<_>>()
    );
    fail_on(&check(&graph, ALLOWED, PURE, DENY_IO));
}

#[test]
fn checker_reports_upward_and_io_dependencies() {
    // The workspace as the table allows it, except for two breaks: the
    // engine reaching up into the store, and the domain types pulling in an
    // async runtime.
    let graph = Graph::from_pairs(&[
        ("allot-core", &["serde", "tokio"]),
        ("allot-rules", &["allot-core", "allot-store", "chrono"]),
        ("allot-events", &["allot-core", "serde_json"]),
        ("allot-store", &["allot-core", "sled"]),
        (
            "allot-bus",
            &["allot-core", "allot-store", "rdkafka", "tokio"],
        ),
        ("allot-crm", &["allot-core", "allot-events", "reqwest"]),
        ("allot-emulator", &["allot-core", "allot-events", "axum"]),
        (
            "allot-services",
            &["allot-core", "allot-rules", "allot-bus", "allot-crm"],
        ),
        ("allot", &["allot-services", "allot-emulator", "clap"]),
        ("allot-tests", &["allot-core", "rdkafka"]),
    ]);
    let violations = check(&graph, ALLOWED, PURE, DENY_IO);
    assert_eq!(
        violations,
        vec![
            "allot-core depends on tokio: tokio is an I/O crate, and allot-core \
             must stay pure (no I/O, clock or network)"
                .to_string(),
            "allot-rules depends on allot-store: not allowed by the crate table \
             (allot-rules may depend on: allot-core)"
                .to_string(),
        ]
    );
}

#[test]
fn checker_reports_unlisted_crates_and_skips_missing_ones() {
    // allot-writer and allot-api are in the table but absent here: skipped.
    // allot-extra is in the workspace but not in the table: reported, and
    // a dependency on it from allot-core is reported too.
    let graph = Graph::from_pairs(&[
        ("allot-core", &["allot-extra"]),
        ("allot-extra", &["allot-core"]),
    ]);
    assert_eq!(
        check(&graph, ALLOWED, PURE, DENY_IO),
        vec![
            "allot-core depends on allot-extra: not allowed by the crate table \
             (allot-core may depend on: no workspace crate)"
                .to_string(),
            "allot-extra: a workspace crate with no row in the crate table \
             (add it to docs/ARCHITECTURE.md and ALLOWED in tests/tests/architecture.rs)"
                .to_string(),
        ]
    );
}

/// One row of the crate table in `docs/ARCHITECTURE.md`.
#[derive(Debug)]
struct DocRow {
    may_depend_on: Vec<String>,
    io: String,
    network: String,
}

/// The rows of the table under `## Crates`, by crate name.
fn doc_table(doc: &str) -> BTreeMap<String, DocRow> {
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("Crates"))
        .expect("docs/ARCHITECTURE.md has a `## Crates` section");
    let mut rows = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // "", crate, owns, may depend on, I/O, clock, network, ""
        assert_eq!(cells.len(), 8, "crate table row with 6 columns: {line}");
        let name = cells[1].trim_matches('`').to_string();
        let may_depend_on = cells[3]
            .split(',')
            .map(|c| c.trim().trim_matches('`'))
            .filter(|c| !c.is_empty() && *c != "none")
            .map(str::to_string)
            .collect();
        rows.insert(
            name,
            DocRow {
                may_depend_on,
                io: cells[4].to_string(),
                network: cells[6].to_string(),
            },
        );
    }
    rows
}

#[test]
fn doc_table_matches_allowed() {
    let path = workspace_root().join("docs/ARCHITECTURE.md");
    let doc = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let rows = doc_table(&doc);
    let mut drift = Vec::new();
    for (krate, may) in ALLOWED {
        match rows.get(*krate) {
            None => drift.push(format!("{krate}: in ALLOWED but not in the doc's table")),
            Some(row) => {
                let doc: BTreeSet<&str> = row.may_depend_on.iter().map(String::as_str).collect();
                let test: BTreeSet<&str> = may.iter().copied().collect();
                if doc != test {
                    drift.push(format!(
                        "{krate}: the doc allows {doc:?}, ALLOWED allows {test:?}"
                    ));
                }
                let pure_in_doc = row.io == "no" && row.network == "no";
                if pure_in_doc != PURE.contains(krate) {
                    drift.push(format!(
                        "{krate}: the doc says I/O {}, network {}, but PURE {} it",
                        row.io,
                        row.network,
                        if PURE.contains(krate) {
                            "lists"
                        } else {
                            "does not list"
                        }
                    ));
                }
            }
        }
    }
    for krate in rows.keys() {
        if !ALLOWED.iter().any(|(k, _)| k == krate) {
            drift.push(format!("{krate}: in the doc's table but not in ALLOWED"));
        }
    }
    assert!(
        drift.is_empty(),
        "docs/ARCHITECTURE.md and ALLOWED in tests/tests/architecture.rs disagree:\n  - {}",
        drift.join("\n  - ")
    );
}
