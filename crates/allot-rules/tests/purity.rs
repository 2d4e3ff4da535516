//! The decision core does no I/O: allot-core and allot-rules depend on no
//! runtime, network, storage or randomness crate.

const FORBIDDEN: &[&str] = &[
    "tokio",
    "rdkafka",
    "reqwest",
    "sled",
    "hyper",
    "axum",
    "rand",
    "opentelemetry",
];

fn dependencies(manifest: &str) -> Vec<String> {
    let doc: toml::Table = manifest.parse().expect("Cargo.toml parses");
    ["dependencies", "build-dependencies"]
        .iter()
        .filter_map(|t| doc.get(*t).and_then(|v| v.as_table()))
        .flat_map(|t| t.keys().cloned())
        .collect()
}

#[test]
fn core_and_rules_pull_in_no_io() {
    let cases = [
        ("allot-core", include_str!("../../allot-core/Cargo.toml")),
        ("allot-rules", include_str!("../Cargo.toml")),
    ];
    for (name, manifest) in cases {
        let deps = dependencies(manifest);
        assert!(
            !deps.is_empty() || name == "allot-core",
            "{name}: no dependencies read"
        );
        for d in &deps {
            assert!(!FORBIDDEN.contains(&d.as_str()), "{name} depends on {d}");
        }
    }
}
