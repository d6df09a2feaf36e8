//! Sessions built for many quiet peers: the read buffer starts small and grows
//! for a peer that sends a lot, and a trickle of changes to a neighbor waits
//! for the neighbor's batch interval, to go in one UPDATE.

// A failed expectation in a test is a panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bgp_core::fsm::{RemoteAs, State};
use bgp_core::policy::RouteMap;
use bgp_core::speaker::{NeighborConfig, Speaker, SpeakerConfig, SpeakerHandle};
use bgp_core::wire::{
    AfiSafi, AsPath, Capability, Context, Framer, Message, Nlri, Open, Origin, PathAttributes,
    UpdatePacker,
};
use bytes::BytesMut;
use common::{eventually, status};
use ipnet::Ipv4Net;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;

const PORT: u16 = 11184;

fn addr(t: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 104, t, host)
}

/// Speaker S at 127.104.`t`.1 (AS 65001) with one passive neighbor at
/// 127.104.`t`.3 whose batch interval is `batch`.
async fn speaker(t: u8, batch: Duration) -> SpeakerHandle {
    let mut c = SpeakerConfig::new(65001, addr(t, 1));
    c.listen = vec![SocketAddr::new(addr(t, 1).into(), PORT)];
    let s = Speaker::start(c).await.unwrap();
    let mut n = NeighborConfig::new(addr(t, 3).into(), RemoteAs::External);
    n.port = PORT;
    n.passive = true;
    n.import = Some(RouteMap::accept_all("in"));
    n.export = Some(RouteMap::accept_all("out"));
    n.families = vec![AfiSafi::IPV4_UNICAST];
    n.batch_interval = batch;
    s.add_neighbor(n).await.unwrap();
    s
}

/// A raw peer at 127.104.`t`.3 (AS 65003, hold time 0) with its OPEN
/// exchange done.
struct Peer {
    stream: TcpStream,
    framer: Framer,
    buf: BytesMut,
}

impl Peer {
    async fn connect(t: u8) -> Peer {
        let stream = eventually("connected to S", || async {
            let socket = TcpSocket::new_v4().ok()?;
            socket.bind(SocketAddr::new(addr(t, 3).into(), 0)).ok()?;
            socket
                .connect(SocketAddr::new(addr(t, 1).into(), PORT))
                .await
                .ok()
        })
        .await;
        let mut p = Peer {
            stream,
            framer: Framer::new(),
            buf: BytesMut::new(),
        };
        let caps = vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::FourOctetAs(65003),
        ];
        p.send(&Message::Open(Open::new(65003, 0, addr(t, 3), caps)))
            .await;
        assert!(matches!(p.next().await, Message::Open(_)));
        p.send(&Message::Keepalive).await;
        assert!(matches!(p.next().await, Message::Keepalive));
        p
    }

    async fn send(&mut self, m: &Message) {
        let bytes = m.to_bytes(&Context::MODERN).unwrap();
        self.stream.write_all(&bytes).await.unwrap();
    }

    /// The next message from S, within 5 s.
    async fn next(&mut self) -> Message {
        timeout(Duration::from_secs(5), async {
            loop {
                if let Some(frame) = self.framer.next_frame(&mut self.buf).unwrap() {
                    return Message::decode(&frame, &Context::MODERN).unwrap();
                }
                assert!(self.stream.read_buf(&mut self.buf).await.unwrap() > 0);
            }
        })
        .await
        .expect("a message from S within 5 s")
    }

    /// The IPv4 prefixes of the next UPDATE that announces any, with when it
    /// arrived.
    async fn next_announcement(&mut self) -> (Vec<Ipv4Net>, Instant) {
        loop {
            if let Message::Update(u) = self.next().await
                && !u.nlri.is_empty()
            {
                let mut prefixes: Vec<Ipv4Net> = u.nlri.iter().map(|n| n.prefix).collect();
                prefixes.sort();
                return (prefixes, Instant::now());
            }
        }
    }
}

fn attrs() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        ..Default::default()
    }
}

fn host_route(i: u32) -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::from(0xc633_0000 + i), 32).unwrap()
}

#[tokio::test]
async fn a_trickle_waits_for_the_batch_interval_and_goes_in_one_update() {
    // A long interval: the trickle below is surely queued within it even on a
    // loaded machine, and "waited" cannot be mistaken for "at once" (compare
    // the test below).
    let s = speaker(1, Duration::from_secs(2)).await;
    let mut p = Peer::connect(1).await;
    // Something is sent first (at most one interval late): the trickle after
    // it has to wait. The interval starts when S sends it, after `t0`.
    let t0 = Instant::now();
    s.announce(host_route(0).into(), attrs()).await.unwrap();
    let (first, _) = p.next_announcement().await;
    assert_eq!(first, vec![host_route(0)]);
    for i in 1..=3 {
        s.announce(host_route(i).into(), attrs()).await.unwrap();
    }
    let (batch, at) = p.next_announcement().await;
    assert_eq!(batch, (1..=3).map(host_route).collect::<Vec<_>>());
    let waited = at - t0;
    assert!(
        waited >= Duration::from_millis(1950),
        "the trickle went {waited:?} after the first announce, before its batch interval"
    );
}

#[tokio::test]
async fn without_a_batch_interval_each_change_goes_at_once() {
    let s = speaker(2, Duration::ZERO).await;
    let mut p = Peer::connect(2).await;
    for i in 0..3 {
        let asked = Instant::now();
        s.announce(host_route(i).into(), attrs()).await.unwrap();
        let (prefixes, at) = p.next_announcement().await;
        assert_eq!(prefixes, vec![host_route(i)]);
        // Well under the 2 s a batch interval holds a trickle above, with
        // room for a loaded machine.
        assert!(at - asked < Duration::from_secs(1), "took {:?}", at - asked);
    }
}

/// The read buffer starts at 4 KB: a full-size UPDATE, and a burst of them,
/// arrive whole.
#[tokio::test]
async fn large_updates_and_bursts_grow_the_read_buffer() {
    let s = speaker(3, Duration::from_millis(10)).await;
    let mut p = Peer::connect(3).await;
    let mut a = attrs();
    a.as_path = Some(AsPath::from_sequence([65003]));
    a.next_hop = Some(addr(3, 3));
    let prefixes: Vec<Nlri<Ipv4Net>> = (0..20_000).map(|i| Nlri::new(host_route(i))).collect();
    let mut out = BytesMut::new();
    let packer = UpdatePacker::new(&Context::MODERN);
    // One message of the largest size first, then the rest in one write.
    let first = packer
        .announce(&a, None, &prefixes[..800], &mut out)
        .unwrap();
    assert_eq!(first, 1);
    assert!(out.len() > 3000, "a large UPDATE: {} octets", out.len());
    p.stream.write_all(&out).await.unwrap();
    out.clear();
    packer
        .announce(&a, None, &prefixes[800..], &mut out)
        .unwrap();
    p.stream.write_all(&out).await.unwrap();
    eventually("20000 routes from the peer", || async {
        let n = status(&s, IpAddr::V4(addr(3, 3))).await?;
        (n.state == State::Established && n.counters.accepted == 20_000).then_some(())
    })
    .await;
}
