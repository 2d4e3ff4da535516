//! The Kubernetes manifests under deploy/k8s.

use std::collections::{BTreeMap, BTreeSet};

use serde_norway::Value;

use super::*;

const K8S: &str = "deploy/k8s";

/// Every object of every manifest the kustomization lists, with its file.
fn k8s_objects() -> Vec<(String, Value)> {
    let k = yaml(&format!("{K8S}/kustomization.yaml"));
    let listed: Vec<String> = strs(&k["resources"])
        .into_iter()
        .map(str::to_string)
        .collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(root().join(K8S))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml")
        .collect();
    on_disk.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, on_disk, "kustomization.yaml lists every manifest");
    listed
        .iter()
        .flat_map(|f| {
            yaml_docs(&format!("{K8S}/{f}"))
                .into_iter()
                .map(move |d| (f.clone(), d))
        })
        .collect()
}

fn find<'a>(objs: &'a [(String, Value)], kind: &str, name: &str) -> Option<&'a Value> {
    objs.iter()
        .map(|(_, o)| o)
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

fn dns_label(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 63
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !n.starts_with('-')
        && !n.ends_with('-')
}

#[test]
fn every_kubernetes_object_is_well_formed() {
    let objs = k8s_objects();
    let k = yaml(&format!("{K8S}/kustomization.yaml"));
    assert_eq!(s(&k["kind"]), "Kustomization");
    let ns = s(&k["namespace"]);
    assert!(
        find(&objs, "Namespace", ns).is_some(),
        "namespace {ns} is created"
    );
    let mut seen = BTreeSet::new();
    for (file, o) in &objs {
        let (api, kind, name) = (
            s(&o["apiVersion"]),
            s(&o["kind"]),
            s(&o["metadata"]["name"]),
        );
        assert!(dns_label(name), "{file}: {name}");
        assert!(
            seen.insert((kind.to_string(), name.to_string())),
            "{file}: {kind}/{name} twice"
        );
        let want_api = match kind {
            "Namespace" | "ConfigMap" | "Secret" | "Service" => "v1",
            "Deployment" | "StatefulSet" => "apps/v1",
            other => panic!("{file}: unexpected kind {other}"),
        };
        assert_eq!(api, want_api, "{file}: {kind}");
        assert!(
            o["metadata"].get("namespace").is_none(),
            "{file}: the kustomization sets it"
        );
    }
    let images = k["images"].as_sequence().unwrap();
    assert!(images.iter().any(|i| i["name"] == "allot"));
}

#[test]
fn the_configmap_carries_the_kubernetes_overlay_and_the_secret_its_variables() {
    let objs = k8s_objects();
    let cm = find(&objs, "ConfigMap", "allot-config").unwrap();
    assert_eq!(
        s(&cm["data"]["kubernetes.toml"]),
        read("config/kubernetes.toml"),
        "deploy/k8s/configmap.yaml and config/kubernetes.toml differ"
    );
    assert!(config_value("config/kubernetes.toml", "kafka.enabled")
        .as_bool()
        .unwrap());
    let secret = find(&objs, "Secret", "allot-secrets").unwrap();
    let keys: BTreeSet<String> = secret["stringData"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| s(k).to_string())
        .collect();
    assert_eq!(keys, secret_vars("config/kubernetes.toml"));
}

#[test]
fn a_workload_per_stage_with_probes_resources_and_the_right_storage() {
    // The alternative stage is shipped beside the kustomization, not in it.
    let alternative = format!("alternatives/{ALTERNATIVE}.yaml");
    let mut objs = k8s_objects();
    assert!(objs.iter().all(|(f, _)| *f != alternative));
    objs.extend(
        yaml_docs(&format!("{K8S}/{alternative}"))
            .into_iter()
            .map(|d| (alternative.clone(), d)),
    );
    let port = listen_port("config/kubernetes.toml");
    let partitions = config_value("config/kubernetes.toml", "kafka.partitions")
        .as_integer()
        .unwrap();
    let store = config_value("config/kubernetes.toml", "store.path");
    let store = store.as_str().unwrap();
    let dockerfile = read("deploy/Dockerfile");
    for stage in stages() {
        let stateful = keeps_state(&stage);
        let kind = if stateful {
            "StatefulSet"
        } else {
            "Deployment"
        };
        let name = format!("allot-{stage}");
        let w = find(&objs, kind, &name).unwrap_or_else(|| panic!("{kind} {name} missing"));
        let spec = &w["spec"];
        let pod = &spec["template"]["spec"];
        let labels = spec["template"]["metadata"]["labels"].as_mapping().unwrap();
        for (k, v) in spec["selector"]["matchLabels"].as_mapping().unwrap() {
            assert_eq!(labels.get(k), Some(v), "{name}: selector matches the pods");
        }
        assert_eq!(s(&labels["app.kubernetes.io/component"]), stage);
        let replicas = spec["replicas"].as_i64().unwrap();
        assert!(
            replicas >= 1 && replicas <= partitions,
            "{name}: replicas ≤ partitions"
        );
        if stage == "api" {
            assert_eq!(
                replicas, 1,
                "one consumer group: one replica holds every decision"
            );
        }
        let annotations = &spec["template"]["metadata"]["annotations"];
        assert_eq!(s(&annotations["prometheus.io/port"]), port.to_string());
        assert_eq!(pod["securityContext"]["runAsUser"].as_u64(), Some(10001));
        assert!(dockerfile.contains("--uid 10001"));
        let containers = pod["containers"].as_sequence().unwrap();
        assert_eq!(containers.len(), 1, "{name}");
        let c = &containers[0];
        assert!(
            s(&c["image"]).starts_with("allot:"),
            "{name}: kustomize sets the image"
        );
        assert_eq!(
            strs(&c["args"]),
            [
                "serve",
                stage.as_str(),
                "--config-dir",
                "/etc/allot/config",
                "--env",
                "kubernetes"
            ]
        );
        let ports = c["ports"].as_sequence().unwrap();
        let http = ports.iter().find(|p| p["name"] == "http").unwrap();
        assert_eq!(
            http["containerPort"].as_u64(),
            Some(u64::from(port)),
            "{name}: api.listen"
        );
        for (probe, path) in [
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
            ("startupProbe", "/healthz"),
        ] {
            let get = &c[probe]["httpGet"];
            assert_eq!(s(&get["path"]), path, "{name} {probe}");
            assert_eq!(s(&get["port"]), "http", "{name} {probe}");
        }
        for r in ["cpu", "memory"] {
            assert!(
                c["resources"]["requests"][r].is_string(),
                "{name}: requests.{r}"
            );
        }
        assert!(
            c["resources"]["limits"]["memory"].is_string(),
            "{name}: limits.memory"
        );
        let secret = s(&c["envFrom"][0]["secretRef"]["name"]);
        assert!(
            find(&objs, "Secret", secret).is_some(),
            "{name}: secret {secret}"
        );
        for e in c
            .get("env")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            assert_config_var(s(&e["name"]), &name);
        }

        // Volumes: the overlay from the ConfigMap, the store where store.path is.
        let mut volumes: BTreeMap<&str, &Value> = pod["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| (s(&v["name"]), v))
            .collect();
        let claims: Vec<&str> = spec
            .get("volumeClaimTemplates")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .map(|c| s(&c["metadata"]["name"]))
            .collect();
        for m in c["volumeMounts"].as_sequence().unwrap() {
            let v = s(&m["name"]);
            assert!(
                volumes.contains_key(v) || claims.contains(&v),
                "{name}: volume {v}"
            );
        }
        let mount = |vol: &str| {
            let m = c["volumeMounts"]
                .as_sequence()
                .unwrap()
                .iter()
                .find(|m| m["name"] == vol);
            s(&m.unwrap_or_else(|| panic!("{name}: {vol} not mounted"))["mountPath"]).to_string()
        };
        assert_eq!(mount("config"), "/etc/allot/config/kubernetes.toml");
        let cm = s(&volumes["config"]["configMap"]["name"]);
        assert!(
            find(&objs, "ConfigMap", cm).is_some(),
            "{name}: configmap {cm}"
        );
        assert!(
            store.starts_with(&format!("{}/", mount("store"))),
            "{name}: store.path on the store volume"
        );
        if stateful {
            assert_eq!(claims, ["store"], "{name}: a claim per pod for its store");
            assert!(!volumes.contains_key("store"));
            let svc = s(&spec["serviceName"]);
            let headless =
                find(&objs, "Service", svc).unwrap_or_else(|| panic!("{name}: service {svc}"));
            assert_eq!(
                s(&headless["spec"]["clusterIP"]),
                "None",
                "{name}: headless service"
            );
        } else {
            let v = volumes.remove("store").unwrap();
            assert!(v.get("emptyDir").is_some(), "{name}: store on an emptyDir");
        }

        // A Service that selects these pods on the named port.
        let svc = find(&objs, "Service", &name).unwrap_or_else(|| panic!("service {name}"));
        for (k, v) in svc["spec"]["selector"].as_mapping().unwrap() {
            assert_eq!(labels.get(k), Some(v), "service {name} selects the pods");
        }
        assert_eq!(s(&svc["spec"]["ports"][0]["targetPort"]), "http");
    }
}
