use super::*;

fn file(text: &str) -> Layer {
    Layer::from_yaml(text, Path::new("/etc/podpeer/sidecar.yaml")).unwrap()
}

fn file_err(text: &str) -> ConfigError {
    match Layer::from_yaml(text, Path::new("/etc/podpeer/sidecar.yaml")) {
        Ok(l) => resolve(&[l]).unwrap_err(),
        Err(e) => e,
    }
}

fn env(vars: &[(&str, &str)]) -> Result<Layer, ConfigError> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Layer::from_env(move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
}

fn flags(pairs: &[(&str, &str)]) -> Layer {
    let mut l = Layer::default();
    for (name, v) in pairs {
        let flag = key(name).unwrap().flag;
        l.set(name, *v, Origin::Flag(flag.into()));
    }
    l
}

const FULL: &str = r#"
node: 10.0.0.1
nodeAs: 65010
localAs: 4200000002
routerId: 10.0.0.2
port: 1179
holdTime: 30s
vipInterface: lo
addVips: true
drainTime: 500ms
http: 127.0.0.1:9999
vips:
  - prefix: 198.51.100.10/32
    communities: ["65000:100", "no-export"]
    med: 10
    check:
      tcp: 127.0.0.1:80
      interval: 1s
      timeout: 500ms
      rise: 3
      fall: 1
  - prefix: 2001:db8::10/128
    check:
      http: http://127.0.0.1:8080/healthz
      expectStatus: 204
  - prefix: 198.51.100.0/24
    check:
      exec: ["/bin/sh", "-c", "test -e /tmp/ok"]
  - prefix: 203.0.113.7
    check:
      exec: /usr/bin/probe --fast "two words"
  - prefix: 203.0.113.8/32
    check:
      file: /run/ready
  - prefix: 203.0.113.9/32
"#;

#[test]
fn defaults() {
    let c = resolve(&[]).unwrap();
    assert_eq!(c.node, NodeSpec::Auto);
    assert_eq!(c.node_as, PeerAs::External);
    assert_eq!(c.local_as, 4_200_000_001);
    assert_eq!(c.router_id, None);
    assert_eq!(c.port, 179);
    assert_eq!(c.hold_time, Duration::from_secs(9));
    assert_eq!(c.vip_interface, "lo");
    assert!(!c.add_vips);
    assert_eq!(c.drain_time, Duration::from_secs(5));
    assert_eq!(c.http, "0.0.0.0:9179".parse().unwrap());
    assert!(c.vips.is_empty());
    assert_eq!(c.shutdown, ShutdownMode::Graceful);
}

#[test]
fn full_file() {
    let c = resolve(&[file(FULL)]).unwrap();
    assert_eq!(c.node, NodeSpec::Address("10.0.0.1".parse().unwrap()));
    assert_eq!(c.node_as, PeerAs::Number(65010));
    assert_eq!(c.local_as, 4_200_000_002);
    assert_eq!(c.router_id, Some(Ipv4Addr::new(10, 0, 0, 2)));
    assert_eq!(c.port, 1179);
    assert_eq!(c.hold_time, Duration::from_secs(30));
    assert!(c.add_vips);
    assert_eq!(c.drain_time, Duration::from_millis(500));
    assert_eq!(c.http, "127.0.0.1:9999".parse().unwrap());
    assert_eq!(c.vips.len(), 6);
    let v = &c.vips[0];
    assert_eq!(v.prefix, "198.51.100.10/32".parse().unwrap());
    assert_eq!(
        v.communities,
        vec![Community::new(65000, 100), Community::NO_EXPORT]
    );
    assert_eq!(v.med, Some(10));
    assert_eq!(
        v.check,
        Some(Check {
            kind: CheckKind::Tcp("127.0.0.1:80".into()),
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            rise: 3,
            fall: 1,
        })
    );
    let ch = c.vips[1].check.as_ref().unwrap();
    assert_eq!(
        ch.kind,
        CheckKind::Http {
            url: "http://127.0.0.1:8080/healthz".into(),
            expect: 204
        }
    );
    assert_eq!(
        (ch.interval, ch.timeout, ch.rise, ch.fall),
        (Duration::from_secs(2), Duration::from_secs(1), 2, 2),
        "check defaults"
    );
    assert_eq!(
        c.vips[2].check.as_ref().unwrap().kind,
        CheckKind::Exec(vec![
            "/bin/sh".into(),
            "-c".into(),
            "test -e /tmp/ok".into()
        ])
    );
    assert_eq!(c.vips[3].prefix, "203.0.113.7/32".parse().unwrap());
    assert_eq!(
        c.vips[3].check.as_ref().unwrap().kind,
        CheckKind::Exec(vec![
            "/usr/bin/probe".into(),
            "--fast".into(),
            "two words".into()
        ])
    );
    assert_eq!(
        c.vips[4].check.as_ref().unwrap().kind,
        CheckKind::File("/run/ready".into())
    );
    assert_eq!(c.vips[5].check, None);
}

#[test]
fn yaml_output_reads_back_the_same() {
    let c = resolve(&[file(FULL)]).unwrap();
    let text = to_yaml(&c);
    assert_eq!(resolve(&[file(&text)]).unwrap(), c, "{text}");
}

#[test]
fn precedence_flags_over_env_over_file_over_defaults() {
    let f = file("port: 1001\nholdTime: 30s\ndrainTime: 1s\nnode: 10.0.0.1\n");
    let e = env(&[("PODPEER_PORT", "1002"), ("PODPEER_HOLD_TIME", "60s")]).unwrap();
    let fl = flags(&[("port", "1003")]);
    let c = resolve(&[fl, e, f]).unwrap();
    assert_eq!(c.port, 1003, "flag wins");
    assert_eq!(c.hold_time, Duration::from_secs(60), "env over file");
    assert_eq!(c.drain_time, Duration::from_secs(1), "file over default");
    assert_eq!(c.node, NodeSpec::Address("10.0.0.1".parse().unwrap()));
    assert_eq!(c.local_as, DEFAULT_LOCAL_AS, "default");
}

#[test]
fn vip_lists_replace_each_other_whole() {
    let f = file("vips:\n  - prefix: 198.51.100.1/32\n  - prefix: 198.51.100.2/32\n");
    let e = env(&[(
        "PODPEER_VIPS",
        "198.51.100.3/32; 198.51.100.4/32,check=file:/ok\n",
    )])
    .unwrap();
    let c = resolve(&[e.clone(), f.clone()]).unwrap();
    let prefixes: Vec<String> = c.vips.iter().map(|v| v.prefix.to_string()).collect();
    assert_eq!(prefixes, ["198.51.100.3/32", "198.51.100.4/32"]);
    let mut fl = Layer::default();
    fl.set_vip_specs(&["198.51.100.5/32".into()], Origin::Flag("--vip".into()))
        .unwrap();
    let c = resolve(&[fl, e, f]).unwrap();
    assert_eq!(c.vips.len(), 1);
    assert_eq!(c.vips[0].prefix.to_string(), "198.51.100.5/32");
}

#[test]
fn vip_spec() {
    let v = parse_vip_spec(
        "198.51.100.10/32,check=exec:/bin/sh -c \"a,b\",interval=500ms,timeout=200ms,rise=1,fall=3,med=7,community=65000:1,community=65000:2",
    )
    .unwrap();
    let l = Layer {
        vips: Some((vec![v], Origin::Flag("--vip".into()))),
        ..Layer::default()
    };
    let c = resolve(&[l]).unwrap();
    let vip = &c.vips[0];
    assert_eq!(vip.med, Some(7));
    assert_eq!(
        vip.communities,
        vec![Community::new(65000, 1), Community::new(65000, 2)]
    );
    assert_eq!(
        vip.check,
        Some(Check {
            kind: CheckKind::Exec(vec!["/bin/sh".into(), "-c".into(), "a,b".into()]),
            interval: Duration::from_millis(500),
            timeout: Duration::from_millis(200),
            rise: 1,
            fall: 3,
        })
    );
    assert!(parse_vip_spec("interval=2s").is_err());
    assert!(
        parse_vip_spec("198.51.100.1/32,interval=2s")
            .unwrap_err()
            .contains("without check=URL")
    );
}

#[test]
fn check_urls() {
    assert_eq!(
        parse_check_url("tcp://127.0.0.1:80"),
        Ok(CheckKind::Tcp("127.0.0.1:80".into()))
    );
    assert_eq!(
        parse_check_url("tcp://[::1]:80"),
        Ok(CheckKind::Tcp("[::1]:80".into()))
    );
    assert_eq!(
        parse_check_url("tcp://backend.local:8080"),
        Ok(CheckKind::Tcp("backend.local:8080".into()))
    );
    assert_eq!(
        parse_check_url("http://127.0.0.1:8080/healthz"),
        Ok(CheckKind::Http {
            url: "http://127.0.0.1:8080/healthz".into(),
            expect: 200
        })
    );
    assert_eq!(
        parse_check_url("exec:/bin/true"),
        Ok(CheckKind::Exec(vec!["/bin/true".into()]))
    );
    assert_eq!(
        parse_check_url("file:/run/ready"),
        Ok(CheckKind::File("/run/ready".into()))
    );
    for (bad, why) in [
        ("tcp://127.0.0.1", "HOST:PORT"),
        ("tcp://127.0.0.1:0", "HOST:PORT"),
        ("tcp://::1:80", "HOST:PORT"),
        ("https://x/", "https is not supported"),
        ("http:///x", "no host"),
        ("exec:", "empty"),
        ("exec:'unclosed", "unclosed quote"),
        ("file:", "empty"),
        ("ftp://x", "expected tcp://"),
    ] {
        let e = parse_check_url(bad).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
    // The display form reads back.
    for url in ["tcp://127.0.0.1:80", "exec:/bin/true", "file:/run/ready"] {
        assert_eq!(parse_check_url(url).unwrap().to_string(), url);
    }
}

#[test]
fn durations() {
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
    assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration(" 0s "), Ok(Duration::ZERO));
    for bad in ["", "2", "2x", "s", "1.5s", "-1s", "2 s"] {
        assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
    }
    for d in [
        Duration::from_millis(500),
        Duration::from_secs(2),
        Duration::from_secs(90),
        Duration::from_millis(3_601_250),
        Duration::ZERO,
    ] {
        assert_eq!(parse_duration(&fmt_duration(d)), Ok(d));
    }
}

#[test]
fn node_forms() {
    assert_eq!("auto".parse(), Ok(NodeSpec::Auto));
    assert_eq!(
        "unnumbered".parse(),
        Ok(NodeSpec::Unnumbered("eth0".into()))
    );
    assert_eq!(
        "unnumbered:net1".parse(),
        Ok(NodeSpec::Unnumbered("net1".into()))
    );
    assert_eq!(
        "fd00::1".parse(),
        Ok(NodeSpec::Address("fd00::1".parse().unwrap()))
    );
    assert!("gateway".parse::<NodeSpec>().is_err());
    assert!("unnumbered:".parse::<NodeSpec>().is_err());
}

/// Every bad field is reported with the file and the field's path.
#[test]
fn bad_file_fields_are_named() {
    let cases: &[(&str, &str, &str)] = &[
        ("node: gateway\n", "node", "expected auto"),
        ("nodeAs: internal\n", "nodeAs", "expected external"),
        ("localAs: 0\n", "localAs", "1-4294967295"),
        ("localAs: 4294967296\n", "localAs", "1-4294967295"),
        ("routerId: 0.0.0.0\n", "routerId", "IPv4"),
        ("routerId: fd00::1\n", "routerId", "IPv4"),
        ("port: 70000\n", "port", "1-65535"),
        ("holdTime: 2s\n", "holdTime", "3s to 65535s"),
        ("holdTime: 9\n", "holdTime", "unit"),
        ("vipInterface: \"a/b\"\n", "vipInterface", "interface"),
        ("addVips: maybe\n", "addVips", "true or false"),
        ("drainTime: 5x\n", "drainTime", "invalid duration"),
        (
            "shutdown: drain\n",
            "shutdown",
            "expected graceful or withdraw",
        ),
        ("http: 9179\n", "http", "IP:PORT"),
        ("vips:\n  - med: 1\n", "vips[0].prefix", "missing"),
        (
            "vips:\n  - prefix: 198.51.100.1/24\n",
            "vips[0].prefix",
            "did you mean 198.51.100.0/24",
        ),
        (
            "vips:\n  - prefix: nope\n",
            "vips[0].prefix",
            "invalid prefix",
        ),
        (
            "vips:\n  - prefix: 198.51.100.1/32\n  - prefix: 198.51.100.1\n",
            "vips[1].prefix",
            "listed twice",
        ),
        (
            "vips:\n  - prefix: 198.51.100.1/32\n    communities: [\"65000:70000\"]\n",
            "vips[0].communities[0]",
            "invalid community",
        ),
        (
            "vips:\n  - prefix: 198.51.100.1/32\n    med: -1\n",
            "vips[0].med",
            "invalid MED",
        ),
        (
            "vips:\n  - prefix: 198.51.100.1/32\n    check: {}\n",
            "vips[0].check",
            "needs one of tcp, http, exec or file",
        ),
        (
            "vips:\n  - prefix: 198.51.100.1/32\n    check: {tcp: 'a:1', file: /x}\n",
            "vips[0].check",
            "tcp and file",
        ),
        (
            "vips:\n  - prefix: 198.51.100.1/32\n    check: {tcp: 'a'}\n",
            "vips[0].check.tcp",
            "HOST:PORT",
        ),
        (
            "vips:\n  - prefix: 198.51.100.1/32\n    check: {http: 'ftp://x'}\n",
            "vips[0].check.http",
            "http://",
        ),
        (
            "vips:\n  - prefix: 198.51.100.1/32\n    check: {http: 'http://x/', expectStatus: 999}\n",
            "vips[0].check.expectStatus",
            "100-599",
        ),
        (
            "vips:\n  - prefix: 198.51.100.1/32\n    check: {file: /x, expectStatus: 200}\n",
            "vips[0].check.expectStatus",
            "only applies to an http check",
        ),
        (
            "vips:\n  - prefix: 198.51.100.1/32\n    check: {exec: []}\n",
            "vips[0].check.exec",
            "empty",
        ),
        (
            "vips:\n  - prefix: 198.51.100.1/32\n    check: {file: /x, interval: 2x}\n",
            "vips[0].check.interval",
            "invalid duration",
        ),
        (
            "vips:\n  - prefix: 198.51.100.1/32\n    check: {file: /x, interval: 0s}\n",
            "vips[0].check.interval",
            "more than 0",
        ),
        (
            "vips:\n  - prefix: 198.51.100.1/32\n    check: {file: /x, interval: 1s, timeout: 2s}\n",
            "vips[0].check.timeout",
            "longer than the interval",
        ),
        (
            "vips:\n  - prefix: 198.51.100.1/32\n    check: {file: /x, rise: 0}\n",
            "vips[0].check.rise",
            "1 or more",
        ),
        (
            "vips:\n  - prefix: 198.51.100.1/32\n    check: {file: /x, fall: many}\n",
            "vips[0].check.fall",
            "1 or more",
        ),
    ];
    for (text, field, message) in cases {
        let e = file_err(text);
        assert_eq!(&e.field, field, "{text}: {e}");
        assert!(e.message.contains(message), "{text}: {e}");
        assert_eq!(e.origin, Origin::File("/etc/podpeer/sidecar.yaml".into()));
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!(
                "config file \"/etc/podpeer/sidecar.yaml\": {field}: "
            )),
            "{shown}"
        );
    }
}

#[test]
fn bad_yaml_names_the_file_and_the_key() {
    let e = file_err("prot: 179\n");
    assert_eq!(e.field, "prot", "{e}");
    assert!(e.to_string().contains("/etc/podpeer/sidecar.yaml"), "{e}");
    let e = file_err("vips:\n  - prefix: 198.51.100.1/32\n    chek: {file: /x}\n");
    assert_eq!(e.field, "chek", "{e}");
    let e = file_err("vips: [\n");
    assert!(
        e.to_string()
            .starts_with("config file \"/etc/podpeer/sidecar.yaml\": "),
        "{e}"
    );
    let e = file_err("vips: 5\n");
    assert!(e.to_string().contains("/etc/podpeer/sidecar.yaml"), "{e}");
    let missing = Layer::from_file(Path::new("/nonexistent/sidecar.yaml")).unwrap_err();
    assert!(missing.to_string().contains("cannot read it"), "{missing}");
}

#[test]
fn bad_env_and_flags_are_named() {
    let e = resolve(&[env(&[("PODPEER_PORT", "http")]).unwrap()]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "environment variable PODPEER_PORT: port: invalid port \"http\": expected 1-65535"
    );
    let e = env(&[(
        "PODPEER_VIPS",
        "198.51.100.1/32;198.51.100.2/32,check=gopher://x",
    )])
    .unwrap_err();
    assert_eq!(e.field, "vips[1]");
    assert_eq!(e.origin, Origin::Env("PODPEER_VIPS".into()));
    let e = resolve(&[flags(&[("drainTime", "soon")])]).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("flag --drain-time: drainTime: invalid duration"),
        "{e}"
    );
    // A bad value in a lower layer is not looked at when a higher one wins.
    let c = resolve(&[
        flags(&[("port", "1179")]),
        env(&[("PODPEER_PORT", "bad")]).unwrap(),
    ])
    .unwrap();
    assert_eq!(c.port, 1179);
}

#[test]
fn empty_file_is_all_defaults() {
    assert_eq!(resolve(&[file("")]).unwrap(), resolve(&[]).unwrap());
    assert_eq!(
        resolve(&[file("# nothing\n")]).unwrap(),
        resolve(&[]).unwrap()
    );
}

#[test]
fn command_splitting() {
    assert_eq!(
        split_command(r#"/bin/sh -c 'echo "hi there"' a\ b "x\"y""#).unwrap(),
        vec!["/bin/sh", "-c", "echo \"hi there\"", "a b", "x\"y"]
    );
    assert_eq!(split_command("  ").unwrap(), Vec::<String>::new());
    assert_eq!(split_command("''").unwrap(), vec![""]);
}

#[test]
fn shutdown_mode_from_each_source() {
    let c = resolve(&[file("shutdown: withdraw\n")]).unwrap();
    assert_eq!(c.shutdown, ShutdownMode::Withdraw);
    let c = resolve(&[
        env(&[("PODPEER_SHUTDOWN", "graceful")]).unwrap(),
        file("shutdown: withdraw\n"),
    ])
    .unwrap();
    assert_eq!(c.shutdown, ShutdownMode::Graceful, "environment over file");
    let e = resolve(&[flags(&[("shutdown", "never")])]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "flag --shutdown: shutdown: invalid shutdown mode \"never\": expected graceful or withdraw"
    );
    assert!(
        to_yaml(&c).contains("shutdown: graceful\n"),
        "{}",
        to_yaml(&c)
    );
}

const KEY: &str = "s3cret-pod-key";

/// A config file `sidecar.yaml` with `text` next to a key file `key` holding
/// `key`; the directory, and the file's layer.
fn file_with_key(text: &str, key: &str) -> (tempfile::TempDir, Layer) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), key).unwrap();
    let path = dir.path().join("sidecar.yaml");
    std::fs::write(&path, text).unwrap();
    let layer = Layer::from_file(&path).unwrap();
    (dir, layer)
}

#[test]
fn session_security_is_off_by_default() {
    let c = resolve(&[]).unwrap();
    assert_eq!(c.password, None);
    assert_eq!(c.password_file, None);
    assert_eq!(c.ttl_security_hops, None);
    let y = to_yaml(&c);
    assert!(
        !y.contains("password") && !y.contains("ttlSecurityHops"),
        "{y}"
    );
}

#[test]
fn password_and_hops_from_each_layer() {
    let c = resolve(&[file(&format!("password: {KEY}\nttlSecurityHops: 1\n"))]).unwrap();
    assert_eq!(c.password, Some(Password::from(KEY)));
    assert_eq!(c.password_file, None);
    assert_eq!(c.ttl_security_hops, Some(1));

    let e = env(&[
        ("PODPEER_PASSWORD", "from-env"),
        ("PODPEER_TTL_SECURITY_HOPS", "2"),
    ])
    .unwrap();
    let c = resolve(std::slice::from_ref(&e)).unwrap();
    assert_eq!(c.password, Some(Password::from("from-env")));
    assert_eq!(c.ttl_security_hops, Some(2));

    let fl = flags(&[("password", "from-flag"), ("ttlSecurityHops", "254")]);
    let c = resolve(std::slice::from_ref(&fl)).unwrap();
    assert_eq!(c.password, Some(Password::from("from-flag")));
    assert_eq!(c.ttl_security_hops, Some(254));

    // Precedence: flag > environment > file, for each setting.
    let f = file(&format!("password: {KEY}\nttlSecurityHops: 1\n"));
    let c = resolve(&[fl, e.clone(), f.clone()]).unwrap();
    assert_eq!(c.password, Some(Password::from("from-flag")));
    assert_eq!(c.ttl_security_hops, Some(254));
    let c = resolve(&[e, f.clone()]).unwrap();
    assert_eq!(c.password, Some(Password::from("from-env")));
    assert_eq!(c.ttl_security_hops, Some(2));
    let c = resolve(&[flags(&[("ttlSecurityHops", "3")]), f]).unwrap();
    assert_eq!(c.password, Some(Password::from(KEY)), "file under a flag");
    assert_eq!(c.ttl_security_hops, Some(3));
}

#[test]
fn password_file_relative_to_the_config_file() {
    let (dir, f) = file_with_key("passwordFile: key\n", &format!("{KEY}\n"));
    let c = resolve(&[f]).unwrap();
    assert_eq!(c.password, Some(Password::from(KEY)), "one newline trimmed");
    assert_eq!(c.password_file, Some(dir.path().join("key")));

    // From the environment and a flag the path is taken as given.
    let abs = dir.path().join("key");
    let abs = abs.to_str().unwrap();
    let c = resolve(&[env(&[("PODPEER_PASSWORD_FILE", abs)]).unwrap()]).unwrap();
    assert_eq!(c.password, Some(Password::from(KEY)));
    assert_eq!(c.password_file.as_deref(), Some(Path::new(abs)));
    let c = resolve(&[flags(&[("passwordFile", abs)])]).unwrap();
    assert_eq!(c.password, Some(Password::from(KEY)));

    // A flag's passwordFile over the file's.
    std::fs::write(dir.path().join("other"), "other-key").unwrap();
    let (_d2, f) = file_with_key("passwordFile: key\n", KEY);
    let other = dir.path().join("other");
    let c = resolve(&[flags(&[("passwordFile", other.to_str().unwrap())]), f]).unwrap();
    assert_eq!(c.password, Some(Password::from("other-key")));

    // CRLF, as a file written on Windows; no newline at all.
    for content in [format!("{KEY}\r\n"), KEY.to_owned()] {
        let (_d, f) = file_with_key("passwordFile: key\n", &content);
        assert_eq!(resolve(&[f]).unwrap().password, Some(Password::from(KEY)));
    }
}

#[test]
fn password_and_password_file_together_are_refused() {
    let (_d, f) = file_with_key(&format!("password: {KEY}\npasswordFile: key\n"), KEY);
    let e = resolve(&[f]).unwrap_err();
    assert_eq!(e.field, "password");
    assert!(e.message.contains("not both"), "{e}");
    assert!(!e.to_string().contains(KEY), "{e}");

    // Also from different sources, each named.
    let (_d, f) = file_with_key("passwordFile: key\n", KEY);
    let e = resolve(&[flags(&[("password", KEY)]), f]).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with("flag --password: password: give password or passwordFile, not both"),
        "{text}"
    );
    assert!(text.contains("sidecar.yaml"), "{text}");
    assert!(!text.contains(KEY), "{text}");
    let e = resolve(&[
        env(&[("PODPEER_PASSWORD_FILE", "/run/secrets/key")]).unwrap(),
        file(&format!("password: {KEY}\n")),
    ])
    .unwrap_err();
    assert_eq!(e.origin, Origin::File("/etc/podpeer/sidecar.yaml".into()));
    assert!(
        e.to_string()
            .contains("set by environment variable PODPEER_PASSWORD_FILE"),
        "{e}"
    );
}

#[test]
fn bad_passwords_are_named_without_the_key() {
    let long = "k".repeat(81);
    let cases: Vec<(Layer, &str, &str)> = vec![
        (
            file("password: \"\"\n"),
            "config file \"/etc/podpeer/sidecar.yaml\": password: the password is empty",
            "",
        ),
        (
            env(&[("PODPEER_PASSWORD", &long)]).unwrap(),
            "environment variable PODPEER_PASSWORD: password: the password has 81 bytes: a TCP-MD5 key has at most 80 (TCP_MD5SIG_MAXKEYLEN)",
            &long,
        ),
        (
            flags(&[("password", "tab\there")]),
            "flag --password: password: the password holds a control character (a line break?)",
            "tab\there",
        ),
        (
            file("password: \"two\\nlines\"\n"),
            "config file \"/etc/podpeer/sidecar.yaml\": password: the password holds a control character (a line break?)",
            "two\nlines",
        ),
    ];
    for (layer, want, key) in cases {
        let e = resolve(&[layer]).unwrap_err();
        assert_eq!(e.to_string(), want);
        if !key.is_empty() {
            assert!(!e.to_string().contains(key), "{e}");
        }
    }
    // 80 bytes is the most.
    let c = resolve(&[flags(&[("password", &"k".repeat(80))])]).unwrap();
    assert_eq!(c.password.map(|p| p.len()), Some(80));
}

#[test]
fn bad_password_files_are_named_without_the_key() {
    let (dir, f) = file_with_key("passwordFile: key\n", "\n");
    let e = resolve(&[f]).unwrap_err();
    let key_path = dir.path().join("key");
    assert_eq!(e.field, "passwordFile");
    assert_eq!(
        e.message,
        format!("the key in {} is empty", key_path.display())
    );
    assert!(
        matches!(&e.origin, Origin::File(p) if p.ends_with("sidecar.yaml")),
        "{e}"
    );

    // Two trailing newlines: only one is trimmed.
    let (_d, f) = file_with_key("passwordFile: key\n", &format!("{KEY}\n\n"));
    let e = resolve(&[f]).unwrap_err();
    assert!(e.message.contains("control character"), "{e}");
    assert!(!e.to_string().contains(KEY), "{e}");

    let long = "x".repeat(100);
    let (_d, f) = file_with_key("passwordFile: key\n", &long);
    let e = resolve(&[f]).unwrap_err();
    assert!(e.message.contains("has 100 bytes"), "{e}");
    assert!(!e.to_string().contains(&long), "{e}");

    let e = resolve(&[env(&[("PODPEER_PASSWORD_FILE", "/nonexistent/key")]).unwrap()]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "environment variable PODPEER_PASSWORD_FILE: passwordFile: cannot read /nonexistent/key: No such file or directory (os error 2)"
    );
    let e = resolve(&[flags(&[("passwordFile", " ")])]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "flag --password-file: passwordFile: the path is empty"
    );
    // Relative to the config file's directory, not the working directory.
    let e = resolve(&[file("passwordFile: secrets/key\n")]).unwrap_err();
    assert!(
        e.message
            .starts_with("cannot read /etc/podpeer/secrets/key: "),
        "{e}"
    );
}

#[test]
fn ttl_security_hops_range() {
    for ok in ["1", "254", " 64 "] {
        let c = resolve(&[flags(&[("ttlSecurityHops", ok)])]).unwrap();
        assert_eq!(c.ttl_security_hops, Some(ok.trim().parse().unwrap()));
    }
    for bad in ["0", "255", "-1", "one", ""] {
        let e = resolve(&[env(&[("PODPEER_TTL_SECURITY_HOPS", bad)]).unwrap()]).unwrap_err();
        assert_eq!(e.origin, Origin::Env("PODPEER_TTL_SECURITY_HOPS".into()));
        assert_eq!(e.field, "ttlSecurityHops");
        assert!(e.message.contains("expected 1 to 254"), "{e}");
    }
    let e = file_err("ttlSecurityHops: 300\n");
    assert_eq!(
        e.to_string(),
        "config file \"/etc/podpeer/sidecar.yaml\": ttlSecurityHops: invalid hop count \"300\": expected 1 to 254 (1: the node is directly connected)"
    );
}

/// The key is in no `Debug` of the configuration, nor in what
/// `--check-config` prints, nor in a YAML error about the file.
#[test]
fn the_key_is_never_shown() {
    let f = file(&format!("password: {KEY}\nttlSecurityHops: 1\n"));
    let e = env(&[("PODPEER_PASSWORD", KEY)]).unwrap();
    let fl = flags(&[("password", KEY)]);
    for layer in [&f, &e, &fl] {
        let d = format!("{layer:?}");
        assert!(!d.contains(KEY), "{d}");
        assert!(d.contains("<redacted>"), "{d}");
    }
    let c = resolve(&[fl, e, f]).unwrap();
    let d = format!("{c:?}");
    assert!(!d.contains(KEY), "{d}");
    assert!(d.contains("Password(<redacted>)"), "{d}");
    let y = to_yaml(&c);
    assert!(!y.contains(KEY), "{y}");
    assert!(y.contains("# password: set, not shown\n"), "{y}");
    assert!(y.contains("ttlSecurityHops: 1\n"), "{y}");

    // A file's key shows as the file.
    let (dir, f) = file_with_key("passwordFile: key\nttlSecurityHops: 2\n", KEY);
    let c = resolve(&[f]).unwrap();
    assert!(!format!("{c:?}").contains(KEY));
    let y = to_yaml(&c);
    assert!(!y.contains(KEY), "{y}");
    assert!(
        y.contains(&format!(
            "passwordFile: {}\n",
            dir.path().join("key").display()
        )),
        "{y}"
    );
    assert_eq!(resolve(&[file(&y)]).unwrap(), c, "reads back:\n{y}");

    // YAML errors carry no snippet of the file: any line may hold the key.
    for text in [
        format!("password: {KEY}\n  bad: [\n"),
        format!("pasword: {KEY}\n"),
        format!("password: {KEY}\nvips: 5\n"),
    ] {
        let e = file_err(&text);
        assert!(!e.to_string().contains(KEY), "{e}");
        assert!(e.to_string().contains("line"), "{e}");
    }
}
