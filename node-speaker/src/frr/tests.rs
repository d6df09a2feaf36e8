#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use super::*;
use crate::config::NodeConfig;
use crate::provision::attach;

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/frr/testdata")
        .join(name)
}

/// The node configuration of testdata with its operator file.
pub(crate) fn node() -> NodeConfig {
    let mut node = NodeConfig::load(&testdata("node.yaml")).unwrap();
    attach(&mut node, &testdata("operator.yaml")).unwrap();
    node
}

fn routes() -> Vec<VrfRouteConfiguration> {
    routecfg::load(&testdata("routes.yaml")).unwrap()
}

/// Compares with testdata/NAME; `PODPEER_BLESS=1` rewrites it.
fn golden(name: &str, text: &str) {
    let path = testdata(name);
    if std::env::var_os("PODPEER_BLESS").is_some() {
        std::fs::write(&path, text).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(text, want, "{name} differs (PODPEER_BLESS=1 rewrites it)");
}

fn template() -> String {
    std::fs::read_to_string(testdata("template.conf")).unwrap()
}

#[test]
fn golden_full_render() {
    let r = render(&template(), &node(), &routes()).unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    golden("full.conf", &r.config);
}

#[test]
fn golden_without_route_configurations() {
    let r = render(&template(), &node(), &[]).unwrap();
    golden("bare.conf", &r.config);
}

#[test]
fn the_template_stays_as_it_is_around_the_hints() {
    let r = render(&template(), &node(), &routes()).unwrap();
    // The management route map's pre-existing entry, once, and no other
    // 65535 entry for mgmt_vrf.
    assert_eq!(
        r.config
            .matches("route-map rm_mgmt_vrf_export deny 65535")
            .count(),
        1
    );
    assert!(
        r.config
            .contains("route-map rm_mgmt_vrf_export permit 30\n")
    );
    assert!(
        r.config
            .contains("router bgp 65010\n bgp router-id 192.0.2.10\n")
    );
    assert!(!r.config.contains("#++"));
    // No VRF or BGP instance for the skipped VRF.
    assert!(!r.config.contains("vrf mgmt_vrf"));
}

#[test]
fn conflicting_sequences_are_reported_and_left_out() {
    let mut configs = routes();
    let mut twin = configs[0].clone();
    twin.name = "vips-twin".into();
    twin.import[0].cidr = "192.0.2.128/25".parse().unwrap();
    configs.push(twin);
    let r = render(&template(), &node(), &configs).unwrap();
    assert_eq!(
        r.problems,
        vec![
            "VRFRouteConfigurations vips-leak and vips-twin both have seq 10 in VRF vips; both left out"
        ]
    );
    assert!(!r.config.contains("pl_vips_import_10"));
    assert!(!r.config.contains("192.0.2.128/25"));
    // The other configuration still renders.
    assert!(r.config.contains("pl_mgmt_vrf_export_30"));

    let mut dup = routes();
    dup[1].export.push(PrefixItem {
        cidr: "192.0.2.64/26".parse().unwrap(),
        seq: Some(7),
        action: PrefixAction::Deny,
        ge: None,
        le: None,
    });
    dup.push(VrfRouteConfiguration {
        name: "nowhere".into(),
        vrf: "nope".into(),
        seq: 5,
        import: vec![],
        export: vec![],
        aggregate: vec![],
        community: None,
    });
    let r = render(&template(), &node(), &dup).unwrap();
    assert_eq!(
        r.problems,
        vec![
            "VRFRouteConfiguration mgmt-extra: two export items have seq 7; left out".to_owned(),
            "VRFRouteConfiguration nowhere: VRF \"nope\" is not in vnimap; left out".to_owned(),
        ]
    );
    assert!(!r.config.contains("pl_mgmt_vrf_export_30"));
}

#[test]
fn hints_unknown_or_missing_are_errors() {
    let bad = template().replace("#++{{.RouteMaps}}", "#++{{.RouteMapz}}");
    assert_eq!(
        render(&bad, &node(), &[]).unwrap_err().to_string(),
        "template line 31: unknown hint {{.RouteMapz}}"
    );
    let missing = template().replace("#++{{.BGP}}", "!");
    assert_eq!(
        render(&missing, &node(), &[]).unwrap_err(),
        RenderError::MissingHint(Hint::Bgp)
    );
}

#[test]
fn route_configuration_file_errors_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.yaml");
    std::fs::write(&path, "- {name: a, vrf: v, seq: 65535}\n").unwrap();
    let e = routecfg::load(&path).unwrap_err();
    assert_eq!(e.field, "[0].seq");
    std::fs::write(
        &path,
        "- {name: a, vrf: v, seq: 1, import: [{cidr: 10.0.0.0/8, le: 7}]}\n",
    )
    .unwrap();
    assert_eq!(routecfg::load(&path).unwrap_err().field, "[0].import[0].le");
    std::fs::write(&path, "").unwrap();
    assert!(routecfg::load(&path).unwrap().is_empty());
}

#[test]
fn diff_sections_are_read() {
    let d = reload::parse_diff(
        "Lines To Delete\n===============\nno router bgp 65010\n\nLines To Add\n============\nip prefix-list a seq 5 permit 10.0.0.0/8\n",
    );
    assert_eq!(d.delete, vec!["no router bgp 65010"]);
    assert_eq!(d.add, vec!["ip prefix-list a seq 5 permit 10.0.0.0/8"]);
}

#[test]
fn written_only_when_changed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frr.conf");
    assert!(reload::write_if_changed(&path, "a\n").unwrap());
    assert!(!reload::write_if_changed(&path, "a\n").unwrap());
    assert!(reload::write_if_changed(&path, "b\n").unwrap());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "b\n");
}

#[test]
fn a_group_password_with_spaces_is_refused_not_rendered_half() {
    let mut n = node();
    let text = "localAs: 65010\nrouterId: 192.0.2.10\npodGroups: [{name: g, peers: [10.9.0.0/24], password: two words}]\n";
    n.pod_groups = NodeConfig::parse(text, Path::new("t.yaml"))
        .unwrap()
        .pod_groups;
    assert_eq!(
        render(&template(), &n, &[]).unwrap_err().to_string(),
        "pod group g: FRR takes a password of one word, without spaces"
    );
}
