use super::*;

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// The timeout of checks that are not about timeouts: far above what any of
/// them takes, even on a loaded machine.
const T: Duration = Duration::from_secs(10);

#[test]
fn first_result_decides_then_rise_and_fall() {
    let mut m = RiseFall::new(2, 3);
    assert_eq!(m.health(), Health::Pending);
    assert_eq!(m.record(true), Some(Health::Healthy), "first pass counts");
    assert_eq!(m.record(false), None);
    assert_eq!(m.record(false), None);
    assert_eq!(m.record(true), None, "a pass resets the failures");
    assert_eq!(m.record(false), None);
    assert_eq!(m.record(false), None);
    assert_eq!(m.record(false), Some(Health::Unhealthy), "fall = 3");
    assert_eq!(m.record(true), None);
    assert_eq!(m.record(false), None, "a failure resets the passes");
    assert_eq!(m.record(true), None);
    assert_eq!(m.record(true), Some(Health::Healthy), "rise = 2");
    assert_eq!(m.health(), Health::Healthy);
}

#[test]
fn first_failure_is_unhealthy_at_once() {
    let mut m = RiseFall::new(2, 2);
    assert_eq!(m.record(false), Some(Health::Unhealthy));
    assert!(!m.health().is_up());
    assert_eq!(m.record(true), None);
    assert_eq!(m.record(true), Some(Health::Healthy));
}

#[test]
fn rise_and_fall_of_one_follow_every_result() {
    let mut m = RiseFall::new(1, 1);
    let seq = [true, false, true, true, false, false, true];
    let got: Vec<Option<Health>> = seq.iter().map(|&p| m.record(p)).collect();
    use Health::*;
    assert_eq!(
        got,
        vec![
            Some(Healthy),
            Some(Unhealthy),
            Some(Healthy),
            None,
            Some(Unhealthy),
            None,
            Some(Healthy)
        ]
    );
}

#[tokio::test]
async fn tcp_connects_or_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let o = run(&CheckKind::Tcp(addr.to_string()), T).await;
    assert!(o.passed, "{o:?}");
    assert_eq!(o.reason, "connected");
    drop(listener);
    let o = run(&CheckKind::Tcp(addr.to_string()), T).await;
    assert!(!o.passed);
    assert_eq!(o.reason, "connection refused");
}

/// A server answering every request with `status`.
async fn http_server(status: u16) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                let body = "hi";
                let r = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(r.as_bytes()).await;
            });
        }
    });
    addr
}

/// Needs podpeer_host::http::get (branch `host`).
#[tokio::test]
async fn http_status_decides() {
    let ok = http_server(200).await;
    let bad = http_server(503).await;
    let check = |addr: std::net::SocketAddr, expect| CheckKind::Http {
        url: format!("http://{addr}/healthz"),
        expect,
    };
    let o = run(&check(ok, 200), T).await;
    assert!(o.passed, "{o:?}");
    assert_eq!(o.reason, "HTTP 200");
    let o = run(&check(bad, 200), T).await;
    assert!(!o.passed);
    assert_eq!(o.reason, "HTTP 503 (expected 200)");
    let o = run(&check(bad, 503), T).await;
    assert!(o.passed, "expectStatus 503 passes on 503: {o:?}");
}

#[tokio::test]
async fn http_without_server_fails() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let o = run(
        &CheckKind::Http {
            url: format!("http://{addr}/"),
            expect: 200,
        },
        T,
    )
    .await;
    assert!(!o.passed, "{o:?}");
}

#[tokio::test]
async fn exec_exit_status() {
    let o = run(&CheckKind::Exec(vec!["/bin/true".into()]), T).await;
    assert!(o.passed, "{o:?}");
    assert_eq!(o.reason, "exit 0");
    let o = run(&CheckKind::Exec(vec!["/bin/false".into()]), T).await;
    assert!(!o.passed);
    assert_eq!(o.reason, "exit status 1");
    let argv = ["/bin/sh", "-c", "echo 'backend down' >&2; exit 3"];
    let o = run(&CheckKind::Exec(argv.map(String::from).to_vec()), T).await;
    assert_eq!(o.reason, "exit status 3: backend down");
    let o = run(&CheckKind::Exec(vec!["/nonexistent/probe".into()]), T).await;
    assert!(!o.passed);
    assert!(
        o.reason
            .starts_with("cannot run /nonexistent/probe: no such file"),
        "{o:?}"
    );
}

fn alive(pid: i32) -> bool {
    // Gone, or a zombie nobody reaped yet: not running either way.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

#[tokio::test]
async fn exec_past_timeout_is_killed_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
    // The shell is killed at the timeout: if a loaded machine did not let it
    // record its child's pid by then, there is nothing to look for; try again
    // with a longer timeout.
    for timeout in [1, 3, 9].map(Duration::from_secs) {
        let _ = std::fs::remove_file(&pidfile);
        let start = std::time::Instant::now();
        let o = run(
            &CheckKind::Exec(vec!["/bin/sh".into(), "-c".into(), script.clone()]),
            timeout,
        )
        .await;
        let took = start.elapsed();
        assert!(!o.passed);
        assert_eq!(
            o.reason,
            format!("still running after {}, killed", fmt_duration(timeout))
        );
        assert!(took < timeout + Duration::from_secs(3), "took {took:?}");
        // The shell is dead: the file is as it left it.
        let Some(pid) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        else {
            println!("the shell recorded no pid within {timeout:?}");
            continue;
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while alive(pid) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!alive(pid), "the shell's child {pid} survived");
        return;
    }
    panic!("the shell never recorded its child's pid");
}

#[tokio::test]
async fn exec_background_child_does_not_hold_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    // The child outlives the timeout: a check that waited for it would fail
    // after 10 s rather than pass at once.
    let script = format!(
        "sleep 30 >/dev/null 2>&1 & echo $! > {}; exit 0",
        pidfile.display()
    );
    let start = std::time::Instant::now();
    let o = run(
        &CheckKind::Exec(vec!["/bin/sh".into(), "-c".into(), script]),
        T,
    )
    .await;
    let took = start.elapsed();
    // Tidy up the child, which the check rightly left running.
    if let Some(pid) = std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(o.passed, "{o:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[tokio::test]
async fn file_present_or_absent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ready");
    let check = CheckKind::File(path.clone());
    let o = run(&check, T).await;
    assert!(!o.passed);
    assert_eq!(o.reason, "missing");
    std::fs::write(&path, b"").unwrap();
    let o = run(&check, T).await;
    assert!(o.passed);
    assert_eq!(o.reason, "exists");
}

#[test]
fn io_reasons_are_short() {
    let e = std::io::Error::from_raw_os_error(111);
    assert_eq!(io_reason(&e), "connection refused");
}
