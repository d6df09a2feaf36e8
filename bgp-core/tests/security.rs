//! Session security between two bgp-core speakers over real TCP on loopback
//! addresses (127.120.T.0/24, one block per test; port 11190): TCP-MD5 keys
//! per neighbor and per dynamic range, GTSM, BGP roles and OTC, graceful
//! shutdown, and a flood of unadmitted connections while sessions stay up.

// A failed expectation in a test is a panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{eventually, route, status};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bgp_core::fsm::{RemoteAs, State};
use bgp_core::policy::{Action, RouteMap, Set, Term};
use bgp_core::speaker::{
    DynamicRange, Event, NeighborConfig, NeighborStatus, Speaker, SpeakerConfig, SpeakerError,
    SpeakerHandle,
};
use bgp_core::wire::{AsPath, Community, Origin, PathAttributes, Role};

const PORT: u16 = 11190;

fn addr(t: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 120, t, host))
}

async fn speaker(t: u8, host: u8, asn: u32) -> SpeakerHandle {
    let mut c = SpeakerConfig::new(asn, Ipv4Addr::new(10, 255, t, host));
    c.listen = vec![SocketAddr::new(addr(t, host), PORT)];
    Speaker::start(c).await.unwrap()
}

fn neighbor(t: u8, me: u8, them: u8) -> NeighborConfig {
    let mut n = NeighborConfig::new(addr(t, them), RemoteAs::Any);
    n.port = PORT;
    n.source_address = Some(addr(t, me));
    n.connect_retry = Duration::from_secs(1);
    n.hold_time = 9;
    n.import = Some(RouteMap::accept_all("in"));
    n.export = Some(RouteMap::accept_all("out"));
    n
}

fn attrs(otc: Option<u32>) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        otc,
        ..Default::default()
    }
}

async fn established(s: &SpeakerHandle, peer: IpAddr) -> NeighborStatus {
    eventually("Established", || async {
        status(s, peer)
            .await
            .filter(|n| n.state == State::Established)
    })
    .await
}

/// Asserts the session with `peer` does not come up for `d`; its status then.
async fn stays_down(s: &SpeakerHandle, peer: IpAddr, d: Duration) -> Option<NeighborStatus> {
    let end = Instant::now() + d;
    loop {
        let st = status(s, peer).await;
        assert!(
            st.as_ref().is_none_or(|n| n.state != State::Established),
            "session with {peer} came up: {st:?}"
        );
        if Instant::now() >= end {
            return st;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A (AS 65001, .1, connecting) and B (AS 65002, .2, passive), each side's
/// neighbor adjusted; does not wait for the session.
async fn pair(
    t: u8,
    a_side: impl FnOnce(&mut NeighborConfig),
    b_side: impl FnOnce(&mut NeighborConfig),
) -> (SpeakerHandle, SpeakerHandle) {
    let a = speaker(t, 1, 65001).await;
    let b = speaker(t, 2, 65002).await;
    let mut na = neighbor(t, 1, 2);
    a_side(&mut na);
    let mut nb = neighbor(t, 2, 1);
    nb.passive = true;
    b_side(&mut nb);
    b.add_neighbor(nb).await.unwrap();
    a.add_neighbor(na).await.unwrap();
    (a, b)
}

fn password(p: &'static str) -> impl FnOnce(&mut NeighborConfig) {
    move |n| n.password = Some(p.into())
}

#[tokio::test]
async fn md5_same_password_establishes_a_wrong_or_missing_one_never_does() {
    let t = 1;
    let (a, b) = pair(t, password("s3cret"), password("s3cret")).await;
    established(&a, addr(t, 2)).await;
    established(&b, addr(t, 1)).await;
    drop((a, b));

    let t = 2;
    let (a, b) = pair(t, password("wrong"), password("s3cret")).await;
    stays_down(&b, addr(t, 1), Duration::from_secs(4)).await;
    let st = stays_down(&a, addr(t, 2), Duration::from_millis(1)).await;
    assert_eq!(st.unwrap().counters.updates_in, 0);
    // The right key fixes it: the new one replaces the old on A's socket.
    let mut fixed = neighbor(t, 1, 2);
    fixed.password = Some("s3cret".into());
    a.update_neighbor(fixed).await.unwrap();
    established(&a, addr(t, 2)).await;
    drop((a, b));

    // No key at all on A while B wants one.
    let t = 3;
    let (a, b) = pair(t, |_| {}, password("s3cret")).await;
    stays_down(&b, addr(t, 1), Duration::from_secs(3)).await;
    // And the other way round: A signs, B does not expect it.
    drop((a, b));
    let t = 4;
    let (a, b) = pair(t, password("s3cret"), |_| {}).await;
    stays_down(&b, addr(t, 1), Duration::from_secs(3)).await;
    drop(a);
}

#[tokio::test]
async fn removing_a_neighbor_removes_its_key_from_the_listener() {
    let t = 5;
    let (a, b) = pair(t, password("k1"), password("k1")).await;
    established(&b, addr(t, 1)).await;
    a.remove_neighbor(addr(t, 2), None).await.unwrap();
    b.remove_neighbor(addr(t, 1), None).await.unwrap();
    // Both without a key now: B's listener must not ask A for one any more.
    let mut nb = neighbor(t, 2, 1);
    nb.passive = true;
    b.add_neighbor(nb).await.unwrap();
    a.add_neighbor(neighbor(t, 1, 2)).await.unwrap();
    established(&b, addr(t, 1)).await;
}

#[tokio::test]
async fn range_key_admits_the_right_password_only() {
    let t = 6;
    let b = speaker(t, 2, 65002).await;
    let mut template = neighbor(t, 2, 0);
    template.password = Some("range-pw".into());
    b.add_dynamic_range(DynamicRange {
        prefix: format!("127.120.{t}.0/24").parse().unwrap(),
        template,
        limit: 10,
    })
    .await
    .unwrap();
    // .1 with the range's password comes in as a dynamic neighbor.
    let a = speaker(t, 1, 65001).await;
    let mut na = neighbor(t, 1, 2);
    na.password = Some("range-pw".into());
    a.add_neighbor(na).await.unwrap();
    let st = established(&b, addr(t, 1)).await;
    assert_eq!(
        st.dynamic_range,
        Some(format!("127.120.{t}.0/24").parse().unwrap())
    );
    // .3 with another one does not.
    let c = speaker(t, 3, 65003).await;
    let mut nc = neighbor(t, 3, 2);
    nc.password = Some("guess".into());
    c.add_neighbor(nc).await.unwrap();
    stays_down(&c, addr(t, 2), Duration::from_secs(3)).await;
    assert!(status(&b, addr(t, 3)).await.is_none(), "never accepted");
    // Without the range (and its key) .3's unsigned retries reach the
    // speaker and are refused there, no longer by the kernel.
    let mut nc = neighbor(t, 3, 2);
    nc.password = None;
    c.update_neighbor(nc).await.unwrap();
    b.remove_dynamic_range(format!("127.120.{t}.0/24").parse().unwrap())
        .await
        .unwrap();
    let before = b.metrics().connections_refused.get();
    eventually("an unsigned connection refused by the speaker", || async {
        (b.metrics().connections_refused.get() > before).then_some(())
    })
    .await;
    // The session already up keeps its key (the kernel copied it).
    assert_eq!(
        status(&b, addr(t, 1)).await.unwrap().state,
        State::Established
    );
}

#[tokio::test]
async fn bad_passwords_are_refused_by_the_api() {
    let t = 7;
    let a = speaker(t, 1, 65001).await;
    let mut n = neighbor(t, 1, 2);
    n.password = Some("x".repeat(81).into());
    let e = a.add_neighbor(n).await.unwrap_err();
    assert!(matches!(e, SpeakerError::TcpMd5 { .. }), "{e}");
    assert!(e.to_string().contains("1 to 80 octets"), "{e}");
    assert!(a.neighbors().await.unwrap().is_empty());
}

#[tokio::test]
async fn gtsm_refuses_a_peer_that_does_not_send_ttl_255() {
    // Loopback does not decrement the TTL: hops 1 works when both sides send
    // 255 (A's outgoing connection checks the SYN-ACK of B's listener), and
    // a peer sending the default 64 is dropped by the kernel.
    let gtsm = |n: &mut NeighborConfig| n.ttl_security = Some(1);
    let t = 8;
    let (a, b) = pair(t, gtsm, gtsm).await;
    established(&a, addr(t, 2)).await;
    drop((a, b));

    // B's only neighbor uses GTSM, so B's listener drops A's SYNs: B never
    // even accepts a connection.
    let t = 9;
    let (a, b) = pair(t, |_| {}, gtsm).await;
    let st = stays_down(&b, addr(t, 1), Duration::from_secs(3)).await;
    assert_eq!(st.unwrap().state, State::Active, "nothing accepted");

    // With a neighbor without GTSM too, B's listener cannot filter: B accepts
    // A's connection and its minimum applies from then on (A's OPEN may slip
    // in before; A's KEEPALIVE, sent after B's OPEN, never does).
    let mut other = neighbor(t, 2, 3);
    other.passive = true;
    b.add_neighbor(other).await.unwrap();
    stays_down(&b, addr(t, 1), Duration::from_secs(3)).await;
    let st = eventually("A's connection accepted", || async {
        status(&b, addr(t, 1))
            .await
            .filter(|s| s.state != State::Active)
    })
    .await;
    assert!(
        matches!(st.state, State::OpenSent | State::OpenConfirm),
        "{st:?}"
    );
    drop(a);
}

fn role(r: Role) -> impl FnOnce(&mut NeighborConfig) {
    move |n| n.role = Some(r)
}

#[tokio::test]
async fn roles_that_fit_establish_and_mismatches_are_refused() {
    let t = 11;
    let (a, b) = pair(t, role(Role::Customer), role(Role::Provider)).await;
    let st = established(&a, addr(t, 2)).await;
    assert!(
        st.remote_capabilities
            .contains(&bgp_core::wire::Capability::Role(Role::Provider)),
        "{:?}",
        st.remote_capabilities
    );
    drop((a, b));

    let t = 12;
    let (a, b) = pair(t, role(Role::Customer), role(Role::Customer)).await;
    stays_down(&a, addr(t, 2), Duration::from_secs(2)).await;
    let why = eventually("a Role Mismatch on record", || async {
        status(&b, addr(t, 1))
            .await
            .and_then(|s| s.last_error)
            .filter(|e| e.contains("Role Mismatch"))
    })
    .await;
    assert!(
        why.starts_with("sent OPEN Message Error/Role Mismatch"),
        "{why}"
    );
    let theirs = status(&a, addr(t, 2)).await.unwrap().last_error.unwrap();
    assert!(theirs.contains("Role Mismatch"), "{theirs}");
    drop((a, b));

    // Strict mode: a neighbor without a role is refused; without strict mode
    // it is accepted.
    let t = 13;
    let (a, b) = pair(
        t,
        |_| {},
        |n| {
            n.role = Some(Role::Provider);
            n.role_strict = true;
        },
    )
    .await;
    stays_down(&a, addr(t, 2), Duration::from_secs(2)).await;
    drop((a, b));
    let t = 14;
    let (a, b) = pair(t, |_| {}, role(Role::Provider)).await;
    established(&a, addr(t, 2)).await;
    drop(b);
}

#[tokio::test]
async fn otc_marks_routes_from_a_provider_and_stops_leaks_both_ways() {
    let t = 15;
    // A: no role (as a speaker unaware of RFC 9234); B: A's provider.
    let (a, b) = pair(t, |_| {}, role(Role::Provider)).await;
    established(&b, addr(t, 1)).await;
    let mut events = b.subscribe();
    // A leaks a route that already went "down" to a customer (OTC set).
    a.announce("192.0.2.0/24".parse().unwrap(), attrs(Some(65099)))
        .await
        .unwrap();
    a.announce("198.51.100.0/24".parse().unwrap(), attrs(None))
        .await
        .unwrap();
    eventually("the clean route at B", || route(&b, "198.51.100.0/24")).await;
    let reason = eventually("the leak rejected", || {
        let ev = events.try_recv().ok();
        async move {
            match ev {
                Some(Event::Rejected { prefix, reason, .. })
                    if prefix == "192.0.2.0/24".parse().unwrap() =>
                {
                    Some(reason)
                }
                _ => None,
            }
        }
    })
    .await;
    assert!(reason.contains("route leak: OTC 65099"), "{reason}");
    assert!(route(&b, "192.0.2.0/24").await.is_none());
    let st = status(&b, addr(t, 1)).await.unwrap();
    assert_eq!(st.counters.rejected_by_reason.get("route-leak"), Some(&1));
    assert_eq!(
        st.state,
        State::Established,
        "a leak is not a session error"
    );

    // B (provider) to A (customer): OTC = B's AS added on the way down.
    b.announce("203.0.113.0/24".parse().unwrap(), attrs(None))
        .await
        .unwrap();
    let e = eventually("B's route at A", || route(&a, "203.0.113.0/24")).await;
    assert_eq!(e.paths[0].attrs.attributes.otc, Some(65002));
    drop((a, b));

    // A as customer of B: routes with OTC never go up to B; those without
    // do, and B as provider finds no leak.
    let t = 16;
    let (a, b) = pair(t, role(Role::Customer), role(Role::Provider)).await;
    established(&b, addr(t, 1)).await;
    a.announce("192.0.2.0/24".parse().unwrap(), attrs(Some(65099)))
        .await
        .unwrap();
    a.announce("198.51.100.0/24".parse().unwrap(), attrs(None))
        .await
        .unwrap();
    let e = eventually("the clean route at B", || route(&b, "198.51.100.0/24")).await;
    assert_eq!(e.paths[0].attrs.attributes.otc, None, "from a customer");
    let out = a.advertised(addr(t, 2)).await.unwrap();
    assert_eq!(out.len(), 1, "only the route without OTC: {out:?}");
    assert!(route(&b, "192.0.2.0/24").await.is_none());
    // B's routes reach A marked, and A (customer) learns them with OTC 65002.
    b.announce("203.0.113.0/24".parse().unwrap(), attrs(None))
        .await
        .unwrap();
    let e = eventually("B's route at A", || route(&a, "203.0.113.0/24")).await;
    assert_eq!(e.paths[0].attrs.attributes.otc, Some(65002));
}

fn gshut(e: &bgp_core::speaker::RibEntry) -> (bool, Option<u32>) {
    let a = &e.paths[0].attrs.attributes;
    (
        a.communities.contains(&Community::GRACEFUL_SHUTDOWN),
        a.local_pref,
    )
}

#[tokio::test]
async fn graceful_shutdown_marks_drains_and_closes_with_the_message() {
    let t = 17;
    // B's import policy sets LOCAL_PREF 300 (as podpeer-node's does).
    let (a, b) = pair(
        t,
        |_| {},
        |n| {
            n.import = Some(RouteMap {
                name: "in".into(),
                terms: vec![Term {
                    name: "pref".into(),
                    matches: Vec::new(),
                    sets: vec![Set::LocalPref(300)],
                    action: Action::Accept,
                }],
                default_accept: false,
            })
        },
    )
    .await;
    established(&b, addr(t, 1)).await;
    let p = "198.51.100.0/24";
    a.announce(p.parse().unwrap(), attrs(None)).await.unwrap();
    let e = eventually("the route at B", || route(&b, p)).await;
    assert_eq!(gshut(&e), (false, Some(300)));

    // Marked: B sees the community and, honoring it, LOCAL_PREF 0 (over
    // its policy's). The drain is long enough for the marked route to reach B
    // and for B's status to be read on a loaded machine.
    let drain = Duration::from_secs(5);
    let a2 = a.clone();
    let started = Instant::now();
    let shutdown = tokio::spawn(async move {
        a2.graceful_shutdown(drain, Some("maintenance window".into()))
            .await
    });
    let e = eventually("the marked route at B", || async {
        route(&b, p).await.filter(|e| gshut(e).0)
    })
    .await;
    assert_eq!(gshut(&e), (true, Some(0)));
    let marked_after = started.elapsed();
    // Still up while draining; closed after, with the message.
    assert_eq!(
        status(&b, addr(t, 1)).await.unwrap().state,
        State::Established
    );
    shutdown.await.unwrap().unwrap();
    assert!(started.elapsed() >= drain);
    let why = eventually("the Cease at B", || async {
        status(&b, addr(t, 1))
            .await
            .filter(|s| s.state != State::Established)
            .and_then(|s| s.last_error)
    })
    .await;
    assert_eq!(
        why,
        "received Cease/Administrative Shutdown \"maintenance window\""
    );
    assert!(
        marked_after < drain,
        "marked at {marked_after:?}, before the close"
    );
}

#[tokio::test]
async fn graceful_shutdown_of_one_neighbor_and_unmarking() {
    let t = 18;
    // iBGP: the marking sets LOCAL_PREF 0 itself; B does not honor the
    // community, so what it sees is what A sent.
    let a = speaker(t, 1, 65001).await;
    let b = speaker(t, 2, 65001).await;
    let mut nb = neighbor(t, 2, 1);
    nb.passive = true;
    nb.honor_graceful_shutdown = false;
    b.add_neighbor(nb).await.unwrap();
    a.add_neighbor(neighbor(t, 1, 2)).await.unwrap();
    established(&b, addr(t, 1)).await;
    let p = "198.51.100.0/24";
    a.announce(p.parse().unwrap(), attrs(None)).await.unwrap();
    let e = eventually("the route at B", || route(&b, p)).await;
    assert_eq!(gshut(&e), (false, Some(100)));
    a.set_graceful_shutdown(Some(addr(t, 2)), true)
        .await
        .unwrap();
    let e = eventually("the marked route", || async {
        route(&b, p).await.filter(|e| gshut(e).0)
    })
    .await;
    assert_eq!(gshut(&e), (true, Some(0)), "LOCAL_PREF 0 towards iBGP");
    a.set_graceful_shutdown(Some(addr(t, 2)), false)
        .await
        .unwrap();
    let e = eventually("the unmarked route", || async {
        route(&b, p).await.filter(|e| !gshut(e).0)
    })
    .await;
    assert_eq!(gshut(&e), (false, Some(100)));
    let e = a
        .set_graceful_shutdown(Some(addr(t, 9)), true)
        .await
        .unwrap_err();
    assert!(matches!(e, SpeakerError::NoSuchNeighbor(_)), "{e}");
    // Per neighbor: marked, drained, removed with the message.
    a.graceful_shutdown_neighbor(addr(t, 2), Duration::from_millis(300), Some("bye".into()))
        .await
        .unwrap();
    assert!(status(&a, addr(t, 2)).await.is_none());
    let why = eventually("the Cease at B", || async {
        status(&b, addr(t, 1))
            .await
            .filter(|s| s.state != State::Established)
            .and_then(|s| s.last_error)
    })
    .await;
    assert!(why.contains("\"bye\""), "{why}");
}

/// Connections from addresses no neighbor or range admits (127.121.0.0/16,
/// a different source address each) while two sessions with a 9 s hold time
/// must stay up: the speaker refuses them at accept without state per
/// connection. The flood outlasts a hold time, so a speaker it starved would
/// drop the sessions; 9 s rather than less leaves room for the test itself
/// competing for 2 cores. Prints the rate; fails only if a session drops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unadmitted_connections_drops_no_session() {
    let t = 19;
    let a = speaker(t, 1, 65001).await;
    let b = speaker(t, 2, 65002).await;
    let c = speaker(t, 3, 65003).await;
    for (s, me, them) in [(&a, 1, 2), (&b, 2, 1), (&a, 1, 3), (&c, 3, 1)] {
        let mut n = neighbor(t, me, them);
        n.hold_time = 9;
        n.passive = me == 1;
        s.add_neighbor(n).await.unwrap();
    }
    for peer in [2, 3] {
        let st = established(&a, addr(t, peer)).await;
        assert_eq!(st.hold_time, Some(9));
    }
    let mut events = a.subscribe();
    let target = SocketAddr::new(addr(t, 1), PORT);
    const TOTAL: u64 = 20_000;
    let min_time = Duration::from_secs(10);
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    // The flood on its own thread and runtime, so it competes for the CPU as
    // another process would.
    let flood = {
        let (opened, failed) = (Arc::clone(&opened), Arc::clone(&failed));
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let started = Instant::now();
                let mut set = tokio::task::JoinSet::new();
                let mut i: u64 = 0;
                while i < TOTAL || started.elapsed() < min_time {
                    while set.len() < 256 {
                        // A fresh source address for each connection, cycling
                        // through 127.121.0.1 - 127.121.249.250.
                        let n = i % 62_500;
                        let src = Ipv4Addr::new(127, 121, (n / 250) as u8, (n % 250 + 1) as u8);
                        i += 1;
                        set.spawn(async move {
                            let s = tokio::net::TcpSocket::new_v4()?;
                            s.set_reuseaddr(true)?;
                            s.bind(SocketAddr::new(IpAddr::V4(src), 0))?;
                            let conn =
                                tokio::time::timeout(Duration::from_secs(5), s.connect(target))
                                    .await
                                    .map_err(|_| std::io::Error::other("timeout"))??;
                            drop(conn);
                            Ok::<_, std::io::Error>(())
                        });
                    }
                    match set.join_next().await {
                        Some(Ok(Ok(()))) => opened.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
                while let Some(r) = set.join_next().await {
                    match r {
                        Ok(Ok(())) => opened.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
                started.elapsed()
            })
        })
    };
    // Watch the sessions meanwhile.
    let stop2 = Arc::clone(&stop);
    let watch = tokio::spawn(async move {
        let mut dropped = Vec::new();
        while !stop2.load(Ordering::Relaxed) {
            if let Ok(Ok(Event::NeighborState {
                neighbor,
                from: State::Established,
                to,
            })) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await
            {
                dropped.push((neighbor, to));
            }
        }
        dropped
    });
    let took = tokio::task::spawn_blocking(move || flood.join().unwrap())
        .await
        .unwrap();
    // Let the speaker finish refusing what is queued.
    let n = opened.load(Ordering::Relaxed);
    eventually("every connection refused", || async {
        (a.metrics().connections_refused.get() >= n).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let dropped = watch.await.unwrap();
    let refused = a.metrics().connections_refused.get();
    println!(
        "flood: {n} connections opened ({} failed) in {took:.1?}: {:.0} refused/s; \
         sessions dropped: {}",
        failed.load(Ordering::Relaxed),
        refused as f64 / took.as_secs_f64(),
        dropped.len()
    );
    assert!(dropped.is_empty(), "sessions dropped: {dropped:?}");
    assert!(n >= TOTAL / 2, "the flood itself mostly failed: {n} opened");
    for peer in [2, 3] {
        let st = status(&a, addr(t, peer)).await.unwrap();
        assert_eq!(st.state, State::Established);
        let est = a
            .metrics()
            .session_established
            .get_or_create(&bgp_core::metrics::NeighborLabels {
                neighbor: addr(t, peer).to_string(),
            })
            .get();
        assert_eq!(est, 1, "established once, never again");
    }
}
