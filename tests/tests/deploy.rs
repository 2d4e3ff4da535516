//! The deployment files cannot run here (no container engine), so they are
//! checked for what can go wrong without one: they parse, they point at each
//! other correctly, and they use what allot actually serves.

#![allow(clippy::unwrap_used)]

use serde_yaml::Value;

const COMPOSE: &str = include_str!("../../deploy/docker-compose.yml");
const PROMETHEUS: &str = include_str!("../../deploy/prometheus.yml");
const DOCKERFILE: &str = include_str!("../../deploy/Dockerfile");

#[test]
fn compose_wires_kafka_allot_and_prometheus() {
    let doc: Value = serde_yaml::from_str(COMPOSE).unwrap();
    let services = doc["services"].as_mapping().unwrap();
    for name in ["kafka", "allot", "prometheus"] {
        assert!(services.contains_key(name), "service {name} missing");
    }
    assert!(doc["services"]["kafka"]["image"]
        .as_str()
        .unwrap()
        .starts_with("apache/kafka:"));
    assert_eq!(
        doc["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"].as_str(),
        Some("broker,controller"),
        "KRaft, no ZooKeeper"
    );
    let command: Vec<&str> = doc["services"]["allot"]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        command,
        [
            "run",
            "--config-dir",
            "/etc/allot/config",
            "--env",
            "docker"
        ]
    );
    assert!(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/docker.toml"
    ))
    .exists());
    let overlay = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/docker.toml"
    ))
    .unwrap();
    assert!(
        overlay.contains("bootstrap_servers = \"kafka:9092\""),
        "allot reaches the compose broker by its service name"
    );
    assert_eq!(
        doc["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"].as_str(),
        Some("PLAINTEXT://kafka:9092")
    );
}

#[test]
fn prometheus_scrapes_the_metrics_endpoint() {
    let doc: Value = serde_yaml::from_str(PROMETHEUS).unwrap();
    let job = &doc["scrape_configs"][0];
    assert_eq!(job["metrics_path"].as_str(), Some("/metrics"));
    assert_eq!(
        job["static_configs"][0]["targets"][0].as_str(),
        Some("allot:7700")
    );
    let compose: Value = serde_yaml::from_str(COMPOSE).unwrap();
    let ports: Vec<&str> = compose["services"]["allot"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(ports.contains(&"7700:7700"));
}

#[test]
fn dockerfile_builds_the_binary_and_ships_the_config() {
    for want in [
        "cargo build --release --locked -p allot",
        "COPY config /etc/allot/config",
        "USER allot",
        "ENTRYPOINT [\"allot\"]",
    ] {
        assert!(
            DOCKERFILE.contains(want),
            "{want:?} missing from deploy/Dockerfile"
        );
    }
    assert!(
        DOCKERFILE.matches("FROM ").count() >= 2,
        "multi-stage build"
    );
}
