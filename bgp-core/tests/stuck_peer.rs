//! A peer that stops reading must not stall anyone else: the speaker keeps
//! serving a second neighbor and its own API while the stuck peer's socket is
//! full. The stuck peer completes the OPEN exchange (hold time 0, so no
//! keepalives are due) with a 4 KB receive buffer and then never reads again.

// A failed expectation in a test is a panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bgp_core::fsm::{RemoteAs, State};
use bgp_core::policy::RouteMap;
use bgp_core::speaker::{NeighborConfig, Speaker, SpeakerConfig, SpeakerHandle};
use bgp_core::wire::{
    AfiSafi, AsPath, Capability, Community, Context, Message, Open, Origin, PathAttributes,
};
use ipnet::{IpNet, Ipv4Net};

const PORT: u16 = 11182;

fn addr(host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 103, 1, host))
}

fn neighbor(me: u8, them: u8) -> NeighborConfig {
    let mut n = NeighborConfig::new(addr(them), RemoteAs::External);
    n.port = PORT;
    n.source_address = Some(addr(me));
    n.connect_retry = Duration::from_secs(1);
    n.import = Some(RouteMap::accept_all("in"));
    n.export = Some(RouteMap::accept_all("out"));
    n.families = vec![AfiSafi::IPV4_UNICAST];
    n
}

async fn speaker(host: u8, asn: u32) -> SpeakerHandle {
    let mut c = SpeakerConfig::new(asn, Ipv4Addr::new(10, 103, 1, host));
    c.listen = vec![SocketAddr::new(addr(host), PORT)];
    Speaker::start(c).await.unwrap()
}

fn root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Connects with a tiny receive buffer, exchanges OPENs, then stops reading.
fn stuck_peer() -> std::net::TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind(&SocketAddr::new(addr(3), 0).into()).unwrap();
    socket
        .connect(&SocketAddr::new(addr(1), PORT).into())
        .unwrap();
    let mut stream: std::net::TcpStream = socket.into();
    let caps = vec![
        Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
        Capability::FourOctetAs(65003),
    ];
    let open = Open::new(65003, 0, Ipv4Addr::new(10, 103, 1, 3), caps);
    let mut out = Message::Open(open).to_bytes(&Context::LEGACY).unwrap();
    Message::Keepalive
        .encode(&Context::LEGACY, &mut out)
        .unwrap();
    stream.write_all(&out).unwrap();
    // The speaker's OPEN and KEEPALIVE: read just those, then never again.
    let mut head = [0u8; 19];
    for _ in 0..2 {
        stream.read_exact(&mut head).unwrap();
        let len = usize::from(u16::from_be_bytes([head[16], head[17]]));
        let mut body = vec![0u8; len - 19];
        stream.read_exact(&mut body).unwrap();
    }
    stream
}

/// Reads UPDATEs until `want` distinct prefixes were announced (or 60 s
/// passed); returns how many were, and the stream to keep the session up.
fn read_prefixes(mut stream: std::net::TcpStream, want: usize) -> (usize, std::net::TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let start = Instant::now();
    let mut seen = std::collections::HashSet::new();
    let mut head = [0u8; 19];
    while seen.len() < want && start.elapsed() < Duration::from_secs(60) {
        if stream.read_exact(&mut head).is_err() {
            break;
        }
        let len = usize::from(u16::from_be_bytes([head[16], head[17]]));
        let mut frame = head.to_vec();
        frame.resize(len, 0);
        stream.read_exact(&mut frame[19..]).unwrap();
        let ctx = Context {
            four_octet_as: true,
            ..Context::LEGACY
        };
        if let Ok(Message::Update(u)) = Message::decode(&frame, &ctx) {
            seen.extend(u.nlri.iter().map(|n| n.prefix));
        }
    }
    (seen.len(), stream)
}

async fn state(s: &SpeakerHandle, peer: IpAddr) -> Option<State> {
    s.neighbors()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.address == peer)
        .map(|n| n.state)
}

async fn has(s: &SpeakerHandle, prefix: &str) -> bool {
    let p: IpNet = prefix.parse().unwrap();
    s.routes().await.unwrap().iter().any(|e| e.prefix == p)
}

async fn within(limit: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "{what} took longer than {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

#[tokio::test]
async fn a_peer_that_stops_reading_stalls_nobody() {
    let s = speaker(1, 65001).await;
    let g = speaker(2, 65002).await;
    let mut to_g = neighbor(1, 2);
    let mut to_s = neighbor(2, 1);
    if root() {
        // Interface binding (SO_BINDTODEVICE) needs CAP_NET_RAW.
        to_g.bind_interface = Some("lo".into());
        to_s.bind_interface = Some("lo".into());
    }
    s.add_neighbor(to_g).await.unwrap();
    g.add_neighbor(to_s).await.unwrap();
    let mut stuck_cfg = neighbor(1, 3);
    stuck_cfg.passive = true;
    s.add_neighbor(stuck_cfg).await.unwrap();

    let stuck = tokio::task::spawn_blocking(stuck_peer).await.unwrap();
    within(Duration::from_secs(15), "both sessions up", async || {
        state(&s, addr(2)).await == Some(State::Established)
            && state(&s, addr(3)).await == Some(State::Established)
    })
    .await;

    // 100k routes, each with its own MED and 60 communities, so none share an
    // UPDATE: about 26 MB, far beyond any socket buffer of the stuck peer.
    let communities: Vec<Community> = (0..60).map(|c| Community::new(65001, c)).collect();
    let attrs = |med| PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        med: Some(med),
        communities: communities.clone(),
        ..Default::default()
    };
    let last = 99_999u32;
    for i in 0..=last {
        let p = Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap();
        s.announce(IpNet::V4(p), attrs(i)).await.unwrap();
    }
    let last_prefix = Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (last << 8)), 24)
        .unwrap()
        .to_string();
    within(
        Duration::from_secs(120),
        "G receives all 100k",
        async || has(&g, &last_prefix).await,
    )
    .await;
    assert_eq!(g.routes().await.unwrap().len(), 100_000);

    // With the stuck peer's socket full, a new route still reaches G, and the
    // speaker answers its API. A stalled speaker would never send it; the
    // limit only leaves room for each poll copying 100k routes in debug.
    s.announce("192.0.2.0/24".parse().unwrap(), attrs(0))
        .await
        .unwrap();
    let took = within(Duration::from_secs(30), "a fresh route at G", async || {
        has(&g, "192.0.2.0/24").await
    })
    .await;
    assert!(took < Duration::from_secs(30));
    assert_eq!(
        state(&s, addr(3)).await,
        Some(State::Established),
        "stuck, not dead"
    );
    // Only a bounded part is queued for it; the rest waits as marks in its
    // export state, not as a growing backlog.
    let queued = s.advertised(addr(3)).await.unwrap().len();
    assert!(
        queued < 100_001,
        "{queued} routes queued for a peer that reads nothing"
    );

    // Once it reads again, it gets every route, the fresh one included.
    let (received, stuck) = tokio::task::spawn_blocking(move || read_prefixes(stuck, 100_001))
        .await
        .unwrap();
    assert_eq!(
        received, 100_001,
        "the stuck peer got everything in the end"
    );
    assert_eq!(s.advertised(addr(3)).await.unwrap().len(), 100_001);
    drop(stuck);
    s.shutdown(None).await.unwrap();
    g.shutdown(None).await.unwrap();
}
