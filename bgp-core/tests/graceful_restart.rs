//! Graceful restart against a bgp-core speaker over real TCP on loopback
//! addresses (127.102.T.H, port 11181; one T per test so tests run in
//! parallel).
//!
//! The speaker S (127.102.T.1, AS 65001) talks to scripted peers: a plain
//! tokio socket from 127.102.T.H that sends whatever OPEN, UPDATEs,
//! End-of-RIB markers and NOTIFICATIONs the test wants (encoded with the
//! crate's codec), reads everything S sends, and can vanish without a word
//! (both halves of its socket dropped: S sees the connection close, no
//! NOTIFICATION). Hold time 0 on the peers' side, so no keepalives are
//! needed (but where S's hold timer is to expire). Timers are real: restart and stale times of 1 to 3 seconds.
//!
//! As helper, S must keep a vanished peer's routes, report no change for a
//! route that comes back the same, drop the rest at End-of-RIB or when a
//! timer ends, apply the N bit (RFC 8538) and the long-lived phase (RFC
//! 9494). As restarting speaker, it must set R and F, and hold its routes,
//! its route events and its End-of-RIB until its peers' End-of-RIB.

// A failed expectation in a test is a panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{eventually, route, status};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bgp_core::fsm::{RemoteAs, State};
use bgp_core::policy::RouteMap;
use bgp_core::speaker::{
    DynamicRange, Event, GracefulRestartConfig, NeighborConfig, Speaker, SpeakerConfig,
    SpeakerHandle,
};
use bgp_core::wire::{
    AfiSafi, AsPath, Capability, Community, Context, Framer, GracefulRestart,
    GracefulRestartFamily, LlgrFamily, Message, Nlri, Notification, Open, Origin, PathAttributes,
    Update, error_code, error_subcode,
};
use bytes::BytesMut;
use ipnet::{IpNet, Ipv4Net};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio::time::timeout;

const PORT: u16 = 11181;
const V4: AfiSafi = AfiSafi::IPV4_UNICAST;
const V6: AfiSafi = AfiSafi::IPV6_UNICAST;

fn addr(t: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 102, t, host))
}

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

async fn speaker(t: u8, gr: Option<GracefulRestartConfig>) -> SpeakerHandle {
    let mut c = SpeakerConfig::new(65001, Ipv4Addr::new(10, 255, t, 1));
    c.listen = vec![SocketAddr::new(addr(t, 1), PORT)];
    c.graceful_restart = gr;
    Speaker::start(c).await.unwrap()
}

/// A passive neighbor of S at 127.102.T.`host`, accept-all both ways.
fn neighbor(t: u8, host: u8) -> NeighborConfig {
    let mut n = NeighborConfig::new(addr(t, host), RemoteAs::External);
    n.port = PORT;
    n.passive = true;
    n.import = Some(RouteMap::accept_all("in"));
    n.export = Some(RouteMap::accept_all("out"));
    n
}

fn helper() -> Option<GracefulRestartConfig> {
    Some(GracefulRestartConfig::default())
}

/// A graceful restart capability: restart time, N, R, and the families with
/// their F bit.
fn gr(time: u16, n: bool, r: bool, families: &[(AfiSafi, bool)]) -> Capability {
    Capability::GracefulRestart(GracefulRestart {
        restart_state: r,
        notification: n,
        restart_time: time,
        families: families
            .iter()
            .map(|&(family, forwarding)| GracefulRestartFamily { family, forwarding })
            .collect(),
    })
}

fn llgr(families: &[(AfiSafi, u32)]) -> Capability {
    Capability::LongLivedGracefulRestart(
        families
            .iter()
            .map(|&(family, stale_time)| LlgrFamily {
                family,
                forwarding: true,
                stale_time,
            })
            .collect(),
    )
}

/// A scripted peer, Established with S.
struct Peer {
    asn: u32,
    me: Ipv4Addr,
    wr: OwnedWriteHalf,
    from_s: mpsc::UnboundedReceiver<Message>,
    reader: JoinHandle<()>,
    /// S's OPEN.
    open: Open,
}

impl Peer {
    /// Connects from 127.102.T.`host` in `asn` with IPv4 unicast, 4-octet AS
    /// and `caps`, and completes the OPEN exchange.
    async fn connect(t: u8, host: u8, asn: u32, caps: Vec<Capability>) -> Peer {
        Self::connect_with_hold(t, host, asn, 0, caps).await
    }

    /// [`Peer::connect`] proposing hold time `hold` (it sends no keepalives).
    async fn connect_with_hold(
        t: u8,
        host: u8,
        asn: u32,
        hold: u16,
        caps: Vec<Capability>,
    ) -> Peer {
        let IpAddr::V4(me) = addr(t, host) else {
            unreachable!()
        };
        let stream = eventually("connected to S", || async {
            let socket = TcpSocket::new_v4().ok()?;
            socket.bind(SocketAddr::new(me.into(), 0)).ok()?;
            socket.connect(SocketAddr::new(addr(t, 1), PORT)).await.ok()
        })
        .await;
        let (mut rd, wr) = stream.into_split();
        let (tx, mut from_s) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            let mut framer = Framer::new();
            let mut buf = BytesMut::with_capacity(65536);
            loop {
                while let Ok(Some(frame)) = framer.next_frame(&mut buf) {
                    let m = Message::decode(&frame, &Context::MODERN).unwrap();
                    if tx.send(m).is_err() {
                        return;
                    }
                }
                match rd.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        });
        let mut caps = caps;
        caps.splice(
            0..0,
            [Capability::Multiprotocol(V4), Capability::FourOctetAs(asn)],
        );
        let mut p = Peer {
            asn,
            me,
            wr,
            from_s: mpsc::unbounded_channel().1,
            reader,
            open: Open::new(0, 0, Ipv4Addr::UNSPECIFIED, Vec::new()),
        };
        p.send(Message::Open(Open::new(asn, hold, me, caps))).await;
        let Some(Message::Open(open)) = timeout(Duration::from_secs(5), from_s.recv())
            .await
            .unwrap()
        else {
            panic!("S did not answer with an OPEN");
        };
        p.send(Message::Keepalive).await;
        let m = timeout(Duration::from_secs(5), from_s.recv())
            .await
            .unwrap();
        assert_eq!(m, Some(Message::Keepalive), "S confirms");
        p.open = open;
        p.from_s = from_s;
        p
    }

    async fn send(&mut self, m: Message) {
        let bytes = m.to_bytes(&Context::MODERN).unwrap();
        self.wr.write_all(&bytes).await.unwrap();
    }

    /// Announces IPv4 `prefixes` with next hop self, AS path [own AS], `med`
    /// and `communities`.
    async fn announce(&mut self, prefixes: &[&str], med: u32, communities: &[Community]) {
        let u = Update {
            attributes: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::from_sequence([self.asn])),
                next_hop: Some(self.me),
                med: Some(med),
                communities: communities.to_vec(),
                ..Default::default()
            },
            nlri: prefixes.iter().map(|p| Nlri::new(net(p))).collect(),
            ..Default::default()
        };
        self.send(Message::Update(u)).await;
    }

    async fn end_of_rib(&mut self, family: AfiSafi) {
        self.send(Message::Update(Update::end_of_rib(family))).await;
    }

    /// The next message from S, within `limit`.
    async fn next(&mut self, limit: Duration) -> Option<Message> {
        timeout(limit, self.from_s.recv()).await.ok().flatten()
    }

    /// S's graceful restart capability.
    fn s_gr(&self) -> GracefulRestart {
        self.open
            .capabilities
            .iter()
            .find_map(|c| match c {
                Capability::GracefulRestart(g) => Some(g.clone()),
                _ => None,
            })
            .expect("S advertises graceful restart")
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // The read half goes with the task, the write half with us: the
        // socket closes without a NOTIFICATION.
        self.reader.abort();
    }
}

/// Route events for `prefix` received so far: the number of paths of each.
fn route_events(ev: &mut broadcast::Receiver<Event>, prefix: &str) -> Vec<Event> {
    let p: IpNet = prefix.parse().unwrap();
    let mut v = Vec::new();
    while let Ok(e) = ev.try_recv() {
        if matches!(&e, Event::Route { prefix, .. } if *prefix == p) {
            v.push(e);
        }
    }
    v
}

/// Waits for a route event for `prefix` with one path.
async fn wait_route_event(ev: &mut broadcast::Receiver<Event>, prefix: &str) {
    let p: IpNet = prefix.parse().unwrap();
    timeout(Duration::from_secs(5), async {
        loop {
            if let Event::Route { prefix, paths } = ev.recv().await.unwrap()
                && prefix == p
                && paths.len() == 1
            {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no route event for {p}"));
}

async fn med_at(s: &SpeakerHandle, prefix: &str) -> Option<u32> {
    route(s, prefix).await?.paths[0].attrs.attributes.med
}

async fn down(s: &SpeakerHandle, peer: IpAddr) {
    eventually("the session down", || async {
        status(s, peer)
            .await
            .filter(|n| n.state != State::Established)
    })
    .await;
}

async fn up(s: &SpeakerHandle, peer: IpAddr) {
    eventually("the session up", || async {
        status(s, peer)
            .await
            .filter(|n| n.state == State::Established)
    })
    .await;
}

async fn stale(s: &SpeakerHandle, peer: IpAddr) -> u64 {
    status(s, peer).await.unwrap().counters.stale
}

/// The helper's whole cycle: a peer vanishes, its routes stay (no event), it
/// comes back with R and F, one route the same (no event), one changed (one
/// event), one not sent again: withdrawn at End-of-RIB.
#[tokio::test]
async fn helper_keeps_routes_across_a_lost_connection_without_churn() {
    let t = 1;
    let s = speaker(t, helper()).await;
    s.add_neighbor(neighbor(t, 2)).await.unwrap();
    let caps = || vec![gr(30, false, false, &[(V4, true)])];
    let mut p = Peer::connect(t, 2, 65002, caps()).await;
    p.announce(&["10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24"], 10, &[])
        .await;
    p.end_of_rib(V4).await;
    eventually("three routes", || async {
        route(&s, "10.3.0.0/24").await.map(drop)
    })
    .await;
    let mut ev = s.subscribe();

    drop(p);
    down(&s, addr(t, 2)).await;
    let st = status(&s, addr(t, 2)).await.unwrap();
    assert_eq!(st.counters.stale, 3);
    assert_eq!(st.counters.accepted, 3);
    assert!(st.last_error.unwrap().contains("connection lost"));
    for prefix in ["10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24"] {
        assert_eq!(
            med_at(&s, prefix).await,
            Some(10),
            "{prefix} kept as it was"
        );
    }

    let mut p = Peer::connect(t, 2, 65002, vec![gr(30, false, true, &[(V4, true)])]).await;
    up(&s, addr(t, 2)).await;
    p.announce(&["10.1.0.0/24"], 10, &[]).await;
    p.announce(&["10.2.0.0/24"], 20, &[]).await;
    eventually("10.2.0.0/24 replaced", || async {
        (med_at(&s, "10.2.0.0/24").await == Some(20)).then_some(())
    })
    .await;
    assert_eq!(
        stale(&s, addr(t, 2)).await,
        1,
        "only 10.3.0.0/24 left stale"
    );
    assert!(
        route(&s, "10.3.0.0/24").await.is_some(),
        "kept until End-of-RIB"
    );
    p.end_of_rib(V4).await;
    eventually("10.3.0.0/24 dropped at End-of-RIB", || async {
        route(&s, "10.3.0.0/24").await.is_none().then_some(())
    })
    .await;
    let st = status(&s, addr(t, 2)).await.unwrap();
    assert_eq!(st.counters.stale, 0);
    assert_eq!(st.counters.accepted, 2);

    // What a FIB installer saw: nothing for the route that came back the
    // same, one change for the one that changed, one withdrawal.
    let mut seen = Vec::new();
    while let Ok(e) = ev.try_recv() {
        seen.push(e);
    }
    let for_prefix = |p: &str| {
        let p: IpNet = p.parse().unwrap();
        seen.iter()
            .filter_map(|e| match e {
                Event::Route { prefix, paths } if *prefix == p => Some(paths.len()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(for_prefix("10.1.0.0/24"), Vec::<usize>::new());
    assert_eq!(
        for_prefix("10.2.0.0/24"),
        vec![1],
        "one change, no withdrawal"
    );
    assert_eq!(
        for_prefix("10.3.0.0/24"),
        vec![0],
        "withdrawn once, at End-of-RIB"
    );
}

/// The restart time ends before the peer is back: its routes go then, not
/// before.
#[tokio::test]
async fn routes_go_when_the_restart_time_ends() {
    let t = 2;
    let s = speaker(t, helper()).await;
    s.add_neighbor(neighbor(t, 2)).await.unwrap();
    let mut p = Peer::connect(t, 2, 65002, vec![gr(3, false, false, &[(V4, true)])]).await;
    p.announce(&["10.1.0.0/24", "10.2.0.0/24"], 10, &[]).await;
    eventually("routes", || async {
        route(&s, "10.2.0.0/24").await.map(drop)
    })
    .await;
    let dropped_at = tokio::time::Instant::now();
    drop(p);
    down(&s, addr(t, 2)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(route(&s, "10.1.0.0/24").await.is_some(), "kept for 3 s");
    eventually("routes gone after the restart time", || async {
        route(&s, "10.1.0.0/24").await.is_none().then_some(())
    })
    .await;
    assert!(dropped_at.elapsed() >= Duration::from_secs(3));
    assert!(route(&s, "10.2.0.0/24").await.is_none());
    let st = status(&s, addr(t, 2)).await.unwrap();
    assert_eq!((st.counters.stale, st.counters.accepted), (0, 0));
}

/// A peer that goes silent: our hold timer expires, and its routes are kept
/// as for a lost connection (N bit or not).
#[tokio::test]
async fn hold_timer_expiry_keeps_routes() {
    let t = 13;
    let s = speaker(t, helper()).await;
    s.add_neighbor(neighbor(t, 2)).await.unwrap();
    let mut p =
        Peer::connect_with_hold(t, 2, 65002, 3, vec![gr(30, false, false, &[(V4, true)])]).await;
    p.announce(&["10.1.0.0/24"], 10, &[]).await;
    eventually("route", || async {
        route(&s, "10.1.0.0/24").await.map(drop)
    })
    .await;
    down(&s, addr(t, 2)).await;
    let st = status(&s, addr(t, 2)).await.unwrap();
    assert!(
        st.last_error
            .as_deref()
            .unwrap_or("")
            .contains("Hold Timer Expired"),
        "{st:?}"
    );
    assert_eq!(st.counters.stale, 1);
    assert!(route(&s, "10.1.0.0/24").await.is_some());
    drop(p);
}

/// Without graceful restart on our side, or on the peer's, or with the peer
/// listing no family (helper only), a lost connection drops the routes at
/// once.
#[tokio::test]
async fn nothing_is_kept_unless_both_sides_agree() {
    nothing_kept(3, None, vec![gr(30, false, false, &[(V4, true)])]).await;
    nothing_kept(11, helper(), vec![]).await;
    nothing_kept(12, helper(), vec![gr(30, true, false, &[])]).await;
}

async fn nothing_kept(t: u8, ours: Option<GracefulRestartConfig>, theirs: Vec<Capability>) {
    let s = speaker(t, ours).await;
    s.add_neighbor(neighbor(t, 2)).await.unwrap();
    let mut p = Peer::connect(t, 2, 65002, theirs).await;
    p.announce(&["10.1.0.0/24"], 10, &[]).await;
    eventually("route", || async {
        route(&s, "10.1.0.0/24").await.map(drop)
    })
    .await;
    drop(p);
    down(&s, addr(t, 2)).await;
    assert!(route(&s, "10.1.0.0/24").await.is_none());
    assert_eq!(stale(&s, addr(t, 2)).await, 0);
}

/// Back without the F bit for the family: the kept routes go at once, before
/// any End-of-RIB.
#[tokio::test]
async fn back_without_forwarding_state_drops_at_once() {
    let t = 4;
    let s = speaker(t, helper()).await;
    s.add_neighbor(neighbor(t, 2)).await.unwrap();
    let mut p = Peer::connect(t, 2, 65002, vec![gr(30, false, false, &[(V4, true)])]).await;
    p.announce(&["10.1.0.0/24"], 10, &[]).await;
    eventually("route", || async {
        route(&s, "10.1.0.0/24").await.map(drop)
    })
    .await;
    drop(p);
    down(&s, addr(t, 2)).await;
    assert_eq!(stale(&s, addr(t, 2)).await, 1);
    let _p = Peer::connect(t, 2, 65002, vec![gr(30, false, true, &[(V4, false)])]).await;
    eventually("route dropped", || async {
        route(&s, "10.1.0.0/24").await.is_none().then_some(())
    })
    .await;
    assert_eq!(stale(&s, addr(t, 2)).await, 0);
}

/// RFC 8538: with the N bit, a NOTIFICATION other than Hard Reset keeps the
/// routes, a Hard Reset drops them; without it any NOTIFICATION drops them.
#[tokio::test]
async fn notifications_with_and_without_the_n_bit() {
    let t = 5;
    let s = speaker(t, helper()).await;
    s.add_neighbor(neighbor(t, 2)).await.unwrap();
    let with_n = || vec![gr(30, true, false, &[(V4, true)])];
    let cease = |sub| Message::Notification(Notification::new(error_code::CEASE, sub));

    let mut p = Peer::connect(t, 2, 65002, with_n()).await;
    p.announce(&["10.1.0.0/24"], 10, &[]).await;
    eventually("route", || async {
        route(&s, "10.1.0.0/24").await.map(drop)
    })
    .await;
    p.send(cease(error_subcode::cease::ADMINISTRATIVE_RESET))
        .await;
    down(&s, addr(t, 2)).await;
    assert_eq!(
        stale(&s, addr(t, 2)).await,
        1,
        "kept after Administrative Reset"
    );
    assert!(route(&s, "10.1.0.0/24").await.is_some());
    drop(p);

    let mut p = Peer::connect(t, 2, 65002, with_n()).await;
    up(&s, addr(t, 2)).await;
    let hard = Notification::with_data(
        error_code::CEASE,
        error_subcode::cease::HARD_RESET,
        vec![
            error_code::CEASE,
            error_subcode::cease::ADMINISTRATIVE_RESET,
        ],
    );
    p.send(Message::Notification(hard)).await;
    eventually("route dropped at the Hard Reset", || async {
        route(&s, "10.1.0.0/24").await.is_none().then_some(())
    })
    .await;
    drop(p);

    let mut p = Peer::connect(t, 2, 65002, vec![gr(30, false, false, &[(V4, true)])]).await;
    p.announce(&["10.1.0.0/24"], 10, &[]).await;
    eventually("route", || async {
        route(&s, "10.1.0.0/24").await.map(drop)
    })
    .await;
    p.send(cease(error_subcode::cease::OUT_OF_RESOURCES)).await;
    eventually("route dropped: no N bit", || async {
        route(&s, "10.1.0.0/24").await.is_none().then_some(())
    })
    .await;
}

/// Our own final Cease goes as Hard Reset when both set N, as it is
/// otherwise.
#[tokio::test]
async fn our_cease_is_a_hard_reset_with_the_n_bit() {
    let t = 6;
    let s = speaker(t, helper()).await;
    for (host, n) in [(2, true), (3, false)] {
        s.add_neighbor(neighbor(t, host)).await.unwrap();
        let mut p = Peer::connect(t, host, 65002, vec![gr(30, n, false, &[(V4, true)])]).await;
        assert!(p.s_gr().notification, "S sets N");
        s.remove_neighbor(addr(t, host), Some("bye".into()))
            .await
            .unwrap();
        let m = loop {
            match p.next(Duration::from_secs(5)).await {
                Some(Message::Notification(m)) => break m,
                Some(_) => continue,
                None => panic!("no NOTIFICATION"),
            }
        };
        let shutdown = [
            error_code::CEASE,
            error_subcode::cease::ADMINISTRATIVE_SHUTDOWN,
        ];
        if n {
            assert_eq!(m.subcode, error_subcode::cease::HARD_RESET, "{m}");
            assert_eq!(&m.data[..2], &shutdown, "{m}");
            assert_eq!(&m.data[2..], b"\x03bye");
        } else {
            assert_eq!([m.code, m.subcode], shutdown, "{m}");
        }
    }
}

/// RFC 9494: after a short restart time the routes become long-lived stale
/// (LLGR_STALE, least preferred, NO_LLGR ones dropped), are advertised only
/// to neighbors that advertised the long-lived capability, and go when the
/// long-lived stale time ends.
#[tokio::test]
async fn long_lived_stale_routes() {
    let t = 7;
    let s = speaker(t, helper()).await;
    for host in [2, 3, 4] {
        s.add_neighbor(neighbor(t, host)).await.unwrap();
    }
    let mut p = Peer::connect(
        t,
        2,
        65002,
        vec![gr(2, false, false, &[(V4, true)]), llgr(&[(V4, 3)])],
    )
    .await;
    let q_llgr = Peer::connect(t, 3, 65003, vec![gr(30, false, false, &[]), llgr(&[])]).await;
    let q_plain = Peer::connect(t, 4, 65004, vec![]).await;
    p.announce(&["10.1.0.0/24"], 10, &[]).await;
    p.announce(&["10.2.0.0/24"], 10, &[Community::NO_LLGR])
        .await;
    let advertised = |q: IpAddr| {
        let s = s.clone();
        async move {
            s.advertised(q)
                .await
                .unwrap()
                .into_iter()
                .find(|(p, _)| *p == "10.1.0.0/24".parse::<IpNet>().unwrap())
                .map(|(_, a)| a)
        }
    };
    eventually("advertised to both", || async {
        (advertised(addr(t, 3)).await.is_some() && advertised(addr(t, 4)).await.is_some())
            .then_some(())
    })
    .await;

    // Taken before the cause: the 2 s restart time cannot start earlier.
    let killed = tokio::time::Instant::now();
    drop(p);
    down(&s, addr(t, 2)).await;
    let llgr_stale = |e: Option<bgp_core::speaker::RibEntry>| {
        e.is_some_and(|e| {
            e.paths[0]
                .attrs
                .attributes
                .communities
                .contains(&Community::LLGR_STALE)
        })
    };
    let first = route(&s, "10.1.0.0/24").await;
    // Measured after the read: the read was within the restart time if this
    // is under 2 s. A slower machine cannot tell, so checks nothing here.
    let read_by = killed.elapsed();
    if read_by < Duration::from_secs(2) {
        assert!(!llgr_stale(first), "restart phase first");
    } else {
        println!("restart phase not checked: the route was read {read_by:?} after the drop");
    }
    eventually("long-lived stale", || async {
        llgr_stale(route(&s, "10.1.0.0/24").await).then_some(())
    })
    .await;
    assert!(
        route(&s, "10.2.0.0/24").await.is_none(),
        "NO_LLGR routes are not kept"
    );
    assert_eq!(stale(&s, addr(t, 2)).await, 1);
    eventually("withdrawn from the neighbor without LLGR", || async {
        advertised(addr(t, 4)).await.is_none().then_some(())
    })
    .await;
    let a = advertised(addr(t, 3))
        .await
        .expect("still advertised with LLGR");
    assert!(a.attributes.communities.contains(&Community::LLGR_STALE));

    eventually("gone after the long-lived stale time", || async {
        route(&s, "10.1.0.0/24").await.is_none().then_some(())
    })
    .await;
    assert_eq!(stale(&s, addr(t, 2)).await, 0);
    drop((q_llgr, q_plain));
}

/// Restarting: R and F set; no route event, no UPDATE and no End-of-RIB to
/// the peer until its End-of-RIB; then the whole table, and the next session
/// no longer sets R.
#[tokio::test]
async fn restarting_speaker_defers_until_end_of_rib() {
    let t = 8;
    let s = speaker(
        t,
        Some(GracefulRestartConfig {
            restarting: true,
            preserved_forwarding: true,
            selection_deferral: Duration::from_secs(30),
            ..Default::default()
        }),
    )
    .await;
    let mut ev = s.subscribe();
    s.announce(
        "192.0.2.0/24".parse().unwrap(),
        PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    s.add_neighbor(neighbor(t, 2)).await.unwrap();
    let mut p = Peer::connect(t, 2, 65002, vec![gr(30, true, false, &[(V4, true)])]).await;
    let g = p.s_gr();
    assert!(g.restart_state, "R");
    assert_eq!(g.restart_time, 120);
    assert!(
        g.families.iter().any(|f| f.family == V4 && f.forwarding),
        "F for IPv4: {g:?}"
    );
    assert!(g.families.iter().any(|f| f.family == V6));
    p.announce(&["10.1.0.0/24"], 10, &[]).await;
    eventually("the peer's route in the RIB", || async {
        route(&s, "10.1.0.0/24").await.map(drop)
    })
    .await;
    assert_eq!(
        p.next(Duration::from_millis(300)).await,
        None,
        "nothing yet"
    );
    assert!(
        route_events(&mut ev, "192.0.2.0/24").is_empty()
            && route_events(&mut ev, "10.1.0.0/24").is_empty(),
        "no route event during the deferral"
    );

    p.end_of_rib(V4).await;
    let Some(Message::Update(u)) = p.next(Duration::from_secs(5)).await else {
        panic!("S's routes after our End-of-RIB");
    };
    assert_eq!(u.nlri, vec![Nlri::new(net("192.0.2.0/24"))]);
    let Some(Message::Update(eor)) = p.next(Duration::from_secs(5)).await else {
        panic!("End-of-RIB");
    };
    assert_eq!(eor.end_of_rib_family(), Some(V4));
    wait_route_event(&mut ev, "192.0.2.0/24").await;
    wait_route_event(&mut ev, "10.1.0.0/24").await;

    drop(p);
    down(&s, addr(t, 2)).await;
    let p = Peer::connect(t, 2, 65002, vec![gr(30, true, false, &[(V4, true)])]).await;
    assert!(!p.s_gr().restart_state, "R only for the restart");
}

/// The selection deferral timer ends the wait for a peer that never sends
/// End-of-RIB.
#[tokio::test]
async fn selection_deferral_timer() {
    let t = 9;
    let s = speaker(
        t,
        Some(GracefulRestartConfig {
            restarting: true,
            selection_deferral: Duration::from_secs(1),
            ..Default::default()
        }),
    )
    .await;
    s.announce(
        "192.0.2.0/24".parse().unwrap(),
        PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    s.add_neighbor(neighbor(t, 2)).await.unwrap();
    let mut p = Peer::connect(t, 2, 65002, vec![gr(30, false, false, &[(V4, true)])]).await;
    let Some(Message::Update(u)) = p.next(Duration::from_secs(5)).await else {
        panic!("S's routes after the deferral time");
    };
    assert_eq!(u.nlri, vec![Nlri::new(net("192.0.2.0/24"))]);
}

/// Dynamic neighbors named in `wait_for` are waited for too, End-of-RIB or
/// not advertised graceful restart; the others are not.
#[tokio::test]
async fn restart_waits_for_the_named_dynamic_neighbors() {
    let t = 10;
    let s = speaker(
        t,
        Some(GracefulRestartConfig {
            restarting: true,
            selection_deferral: Duration::from_secs(30),
            wait_for: vec![addr(t, 3)],
            ..Default::default()
        }),
    )
    .await;
    s.add_neighbor(neighbor(t, 2)).await.unwrap();
    let mut template = neighbor(t, 0);
    template.passive = true;
    s.add_dynamic_range(DynamicRange {
        prefix: "127.102.10.0/28".parse().unwrap(),
        template,
        limit: 10,
    })
    .await
    .unwrap();
    let mut ev = s.subscribe();
    let mut p = Peer::connect(t, 2, 65002, vec![gr(30, false, false, &[(V4, true)])]).await;
    p.end_of_rib(V4).await;
    // A dynamic neighbor not named: not waited for.
    let mut other = Peer::connect(t, 4, 65004, vec![]).await;
    other.end_of_rib(V4).await;
    assert_eq!(
        p.next(Duration::from_millis(500)).await,
        None,
        "still waiting"
    );

    let mut d = Peer::connect(t, 3, 65003, vec![]).await;
    d.announce(&["10.3.0.0/24"], 10, &[]).await;
    assert_eq!(
        p.next(Duration::from_millis(300)).await,
        None,
        "still waiting"
    );
    d.end_of_rib(V4).await;
    let Some(Message::Update(u)) = p.next(Duration::from_secs(5)).await else {
        panic!("routes after the named neighbor's End-of-RIB");
    };
    assert_eq!(u.nlri, vec![Nlri::new(net("10.3.0.0/24"))]);
    wait_route_event(&mut ev, "10.3.0.0/24").await;
}
