//! The real binary's configuration handling: flags, environment and file
//! merged with the right precedence, and bad configuration exiting 2 with the
//! field and the file named. No namespaces needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_podpeer-sidecar");

/// Runs the binary with a clean `PODPEER_*` environment plus `env`.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("PODPEER_") {
            c.env_remove(k);
        }
    }
    c.envs(env.iter().copied());
    c.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn flags_over_env_over_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sidecar.yaml");
    std::fs::write(
        &file,
        "port: 1001\nholdTime: 30s\ndrainTime: 2s\nvips:\n  - prefix: 198.51.100.1/32\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let env = [("PODPEER_PORT", "1002"), ("PODPEER_HOLD_TIME", "60s")];

    let o = run(&["--config", f, "--port", "1003", "--check-config"], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("port: 1003\n"), "flag wins:\n{out}");
    assert!(out.contains("holdTime: 1m\n"), "env over file:\n{out}");
    assert!(out.contains("drainTime: 2s\n"), "file over default:\n{out}");
    assert!(out.contains("localAs: 4200000001\n"), "default:\n{out}");
    assert!(out.contains("- prefix: 198.51.100.1/32\n"), "{out}");

    // The file named by PODPEER_CONFIG; VIPs from the environment replace its list.
    let o = run(
        &["run", "--check-config"],
        &[
            ("PODPEER_CONFIG", f),
            (
                "PODPEER_VIPS",
                "198.51.100.7/32,check=tcp://127.0.0.1:80;2001:db8::7",
            ),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("port: 1001\n"), "{out}");
    assert!(!out.contains("198.51.100.1/32"), "{out}");
    assert!(
        out.contains("- prefix: 198.51.100.7/32\n  check:\n    tcp: 127.0.0.1:80\n"),
        "{out}"
    );
    assert!(out.contains("- prefix: 2001:db8::7/128\n"), "{out}");

    // --vip flags replace both.
    let o = run(
        &["--vip", "203.0.113.1/32", "--check-config"],
        &[("PODPEER_CONFIG", f), ("PODPEER_VIPS", "198.51.100.7/32")],
    );
    let out = stdout(&o);
    assert!(
        out.contains("203.0.113.1/32") && !out.contains("198.51.100"),
        "{out}"
    );
}

#[test]
fn bad_config_exits_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "vips:\n  - prefix: 198.51.100.1/32\n    check:\n      tcp: 127.0.0.1:80\n      rise: 0\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let o = run(&["--config", f], &[]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(
        err.trim(),
        format!(
            "podpeer-sidecar: config file {f:?}: vips[0].check.rise: invalid count \"0\": expected 1 or more"
        )
    );

    let o = run(&[], &[("PODPEER_LOCAL_AS", "private")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("environment variable PODPEER_LOCAL_AS: localAs: invalid AS"),
        "{}",
        stderr(&o)
    );

    let o = run(&["--vip", "198.51.100.1/32,check=smtp://x"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("flag --vip: vips[0]: invalid check"),
        "{}",
        stderr(&o)
    );

    let o = run(&["--config", "/nonexistent/podpeer.yaml"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("/nonexistent/podpeer.yaml"),
        "{}",
        stderr(&o)
    );

    // Unknown keys are named too.
    std::fs::write(&file, "nodeAS: 65000\n").unwrap();
    let o = run(&["--config", f], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(&format!("config file {f:?}: nodeAS: ")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn unnumbered_is_parsed() {
    let o = run(&["--node", "unnumbered", "--check-config"], &[]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("node: unnumbered:eth0\n"));
    let o = run(&["--node", "unnumbered:net1", "--check-config"], &[]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("node: unnumbered:net1\n"));
}

#[test]
fn status_without_a_sidecar_fails_clearly() {
    // A port nothing listens on: bind one and let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let o = run(&["status", "--http", &addr], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("cannot reach the sidecar at {addr}")),
        "{}",
        stderr(&o)
    );
}

/// The session security settings through the real binary: each source,
/// the key file relative to the config file, exit 2 on a bad or doubled
/// key, and the key in none of stdout, stderr or `--help`.
#[test]
fn session_security_settings_never_show_the_key() {
    const KEY: &str = "s3cret-pod-key";
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("secret")).unwrap();
    std::fs::write(dir.path().join("secret/key"), format!("{KEY}\n")).unwrap();
    let file = dir.path().join("sidecar.yaml");
    std::fs::write(&file, "passwordFile: secret/key\nttlSecurityHops: 1\n").unwrap();
    let f = file.to_str().unwrap();
    let shown = |o: &Output| format!("{}{}", stdout(o), stderr(o));

    // From the file (relative to it, whatever the working directory).
    let o = run(&["--config", f, "--check-config"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let key_path = dir.path().join("secret/key");
    assert!(
        out.contains(&format!("passwordFile: {}\n", key_path.display())),
        "{out}"
    );
    assert!(out.contains("ttlSecurityHops: 1\n"), "{out}");
    assert!(!shown(&o).contains(KEY), "{}", shown(&o));

    // Environment over file for the hops; an inline key from the environment
    // together with the file's passwordFile is refused, naming both.
    let o = run(
        &["--config", f, "--check-config"],
        &[
            ("PODPEER_PASSWORD", KEY),
            ("PODPEER_TTL_SECURITY_HOPS", "2"),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", shown(&o));
    assert_eq!(
        stderr(&o).trim(),
        format!(
            "podpeer-sidecar: environment variable PODPEER_PASSWORD: password: give password or passwordFile, not both (passwordFile is set by config file {f:?})"
        )
    );
    let o = run(
        &["--check-config"],
        &[
            ("PODPEER_PASSWORD", KEY),
            ("PODPEER_TTL_SECURITY_HOPS", "2"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("ttlSecurityHops: 2\n"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("# password: set, not shown\n"),
        "{}",
        stdout(&o)
    );
    assert!(!shown(&o).contains(KEY), "{}", shown(&o));

    // Flags: a bad key or hop count exits 2 naming the flag.
    let long = "k".repeat(81);
    let o = run(&["--password", &long, "--check-config"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o).trim(),
        "podpeer-sidecar: flag --password: password: the password has 81 bytes: a TCP-MD5 key has at most 80 (TCP_MD5SIG_MAXKEYLEN)"
    );
    let o = run(&["--ttl-security-hops", "255", "--check-config"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("flag --ttl-security-hops: ttlSecurityHops: invalid hop count \"255\""),
        "{}",
        stderr(&o)
    );
    let o = run(
        &["--password-file", "/nonexistent/key", "--check-config"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with(
            "podpeer-sidecar: flag --password-file: passwordFile: cannot read /nonexistent/key: "
        ),
        "{}",
        stderr(&o)
    );

    // --help names the variables but never the key's value.
    let o = run(&["--help"], &[("PODPEER_PASSWORD", KEY)]);
    assert!(o.status.success());
    let help = stdout(&o);
    assert!(help.contains("--password <KEY>"), "{help}");
    assert!(help.contains("PODPEER_PASSWORD_FILE"), "{help}");
    assert!(help.contains("--ttl-security-hops <HOPS>"), "{help}");
    assert!(!help.contains(KEY), "{help}");
}
