//! The example configuration in `examples/node.yaml` (shown in the README)
//! stays valid, and what it says is what the node reads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use podpeer_node::config::NodeConfig;

#[test]
fn the_example_configuration_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/node.yaml");
    let config = NodeConfig::load(&path).unwrap();
    assert_eq!(config.local_as, 65010);
    assert_eq!(config.pod_groups.len(), 1);
    let lb = &config.pod_groups[0];
    assert_eq!(lb.table, 100, "the group's VRF gives its table");
    assert_eq!(lb.max_prefixes, Some(16));
    assert_eq!(lb.allowed_prefixes.len(), 2);
    assert_eq!(config.forbidden_prefixes.len(), 5);
    assert_eq!(config.bpf_attach_list(), vec!["br.vips", "eth1"]);
}

#[test]
fn podpeer_node_check_accepts_the_example_and_names_a_bad_field() {
    let bin = env!("CARGO_BIN_EXE_podpeer-node");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/node.yaml");
    let ok = std::process::Command::new(bin)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = tempfile::NamedTempFile::new().unwrap();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("ge: 32, le: 32}", "ge: 32, le: 33}");
    std::fs::write(bad.path(), text).unwrap();
    let out = std::process::Command::new(bin)
        .args(["check", "--config"])
        .arg(bad.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("podGroups[0].allowedPrefixes[0].le"),
        "the field is named: {err}"
    );
    assert!(
        err.contains(&bad.path().display().to_string()),
        "the file is named: {err}"
    );
}
