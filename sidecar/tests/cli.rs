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
