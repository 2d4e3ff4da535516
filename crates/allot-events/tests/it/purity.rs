//! The crate stays pure: no I/O, network, runtime, clock or global state.

#[test]
fn no_io_dependencies() {
    let manifest: toml::Table = toml::from_str(include_str!("../../Cargo.toml")).unwrap();
    let forbidden = [
        "tokio", "rdkafka", "reqwest", "sled", "hyper", "chrono", "rand",
    ];
    for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
        let Some(deps) = manifest.get(section).and_then(|d| d.as_table()) else {
            continue;
        };
        for name in forbidden {
            assert!(!deps.contains_key(name), "{section} has {name}");
        }
    }
}

#[test]
fn sources_use_no_io_clock_or_globals() {
    let sources = [
        include_str!("../../src/lib.rs"),
        include_str!("../../src/error.rs"),
        include_str!("../../src/json.rs"),
        include_str!("../../src/salesforce.rs"),
        include_str!("../../src/hubspot.rs"),
        include_str!("../../src/native.rs"),
        include_str!("../../src/lines.rs"),
        include_str!("../../src/fieldmap.rs"),
        include_str!("../../src/domain.rs"),
        include_str!("../../src/merge.rs"),
        include_str!("../../src/echo.rs"),
    ];
    let forbidden = [
        "std::fs",
        "std::net",
        "std::env",
        "SystemTime",
        "Instant",
        "static mut",
        "thread_local",
        "OnceLock",
        "Mutex",
    ];
    for (i, src) in sources.iter().enumerate() {
        for word in forbidden {
            assert!(!src.contains(word), "source #{i} uses {word}");
        }
    }
}
