//! Misbehaving peers against a bgp-core speaker over real TCP on loopback
//! addresses (127.101.T.H, port 11180; one T per test so tests run in parallel).
//!
//! In every test, speaker S (127.101.T.1, AS 65001) has two neighbors:
//! - G (127.101.T.2, AS 65002), a well-behaved bgp-core speaker that announces
//!   198.51.100.0/24 and must stay Established, with its route, throughout;
//! - a hand-written peer (127.101.T.3, AS 65003) that speaks raw bytes over a
//!   plain tokio `TcpStream`, completes as much of the OPEN/KEEPALIVE exchange as
//!   the case needs, then misbehaves. The NOTIFICATION S answers with is read off
//!   the socket and compared octet by octet (code, subcode, data), then the
//!   connection must be closed by S.
//!
//! The malformed messages are built by the small byte builders below, never by
//! the crate's encoder. A panic hook records any panic outside this file (the
//! speaker's tasks run on the test's runtime, where a panic would otherwise go
//! unnoticed), and after each reset S must still answer a new connection on the
//! misbehaving peer's address with an OPEN: its neighbor task survived.

// A failed expectation in a test is a panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{eventually, route, status};

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Mutex, Once};
use std::time::Duration;

use bgp_core::fsm::{RemoteAs, State};
use bgp_core::policy::RouteMap;
use bgp_core::speaker::{Event, NeighborConfig, Speaker, SpeakerConfig, SpeakerHandle};
use bgp_core::wire::{AsPath, Origin, PathAttributes};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::broadcast;
use tokio::time::{Instant, timeout};

const PORT: u16 = 11180;
const SPEAKER_AS: u32 = 65001;
const GOOD_AS: u32 = 65002;
const RAW_AS: u32 = 65003;
/// G's route at S.
const GOOD_PREFIX: &str = "198.51.100.0/24";
/// What the raw peer announces.
const P: &str = "203.0.113.0/24";
const Q: &str = "192.0.2.0/24";
/// An upper bound on waits that should end much sooner (a guard, not a measure).
const GUARD: Duration = Duration::from_secs(5);

// Message types.
const OPEN: u8 = 1;
const UPDATE: u8 = 2;
const NOTIFICATION: u8 = 3;
const KEEPALIVE: u8 = 4;
const ROUTE_REFRESH: u8 = 5;

// Attribute flags.
const WELL_KNOWN: u8 = 0x40;
const OPT_TRANSITIVE: u8 = 0xc0;
const OPT_NON_TRANSITIVE: u8 = 0x80;

// Attribute type codes.
const ORIGIN: u8 = 1;
const AS_PATH: u8 = 2;
const NEXT_HOP: u8 = 3;
const MP_REACH_NLRI: u8 = 14;

fn addr(t: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 101, t, host))
}

fn v4(t: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 101, t, host)
}

// ---------------------------------------------------------------------------
// Byte builders
// ---------------------------------------------------------------------------

/// A message with the header fields given as they go on the wire, right or wrong.
fn raw_message(marker: [u8; 16], length: u16, kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = marker.to_vec();
    m.extend_from_slice(&length.to_be_bytes());
    m.push(kind);
    m.extend_from_slice(body);
    m
}

/// A message with a correct header.
fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    raw_message([0xff; 16], (19 + body.len()) as u16, kind, body)
}

fn keepalive() -> Vec<u8> {
    message(KEEPALIVE, &[])
}

/// ROUTE-REFRESH for IPv4 unicast (RFC 2918): AFI 1, reserved, SAFI 1.
fn route_refresh_v4() -> Vec<u8> {
    message(ROUTE_REFRESH, &[0, 1, 0, 1])
}

/// One capability (RFC 5492): code, length, value.
fn capability(code: u8, value: &[u8]) -> Vec<u8> {
    let mut c = vec![code, value.len() as u8];
    c.extend_from_slice(value);
    c
}

/// One optional parameter: type, length, value.
fn parameter(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut p = vec![kind, value.len() as u8];
    p.extend_from_slice(value);
    p
}

/// The Capabilities parameter of a well-behaved peer in `asn`: IPv4 and IPv6
/// unicast, route refresh, 4-octet AS numbers.
fn capabilities(asn: u32) -> Vec<u8> {
    let caps = [
        capability(1, &[0, 1, 0, 1]),
        capability(1, &[0, 2, 0, 1]),
        capability(2, &[]),
        capability(65, &asn.to_be_bytes()),
    ]
    .concat();
    parameter(2, &caps)
}

/// An OPEN message with every field given.
fn open(version: u8, my_as: u16, hold: u16, id: Ipv4Addr, params: &[u8]) -> Vec<u8> {
    let mut b = vec![version];
    b.extend_from_slice(&my_as.to_be_bytes());
    b.extend_from_slice(&hold.to_be_bytes());
    b.extend_from_slice(&id.octets());
    b.push(params.len() as u8);
    b.extend_from_slice(params);
    message(OPEN, &b)
}

/// The OPEN of a well-behaved peer in AS 65003.
fn good_open(t: u8, hold: u16) -> Vec<u8> {
    open(
        4,
        RAW_AS as u16,
        hold,
        Ipv4Addr::new(10, 0, t, 3),
        &capabilities(RAW_AS),
    )
}

/// One path attribute with a 1-octet length.
fn attr(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut a = vec![flags, code, value.len() as u8];
    a.extend_from_slice(value);
    a
}

fn origin_igp() -> Vec<u8> {
    attr(WELL_KNOWN, ORIGIN, &[0])
}

/// AS_PATH of one AS_SEQUENCE, 4-octet AS numbers (negotiated with S).
fn as_path(asns: &[u32]) -> Vec<u8> {
    let mut v = vec![2, asns.len() as u8];
    for a in asns {
        v.extend_from_slice(&a.to_be_bytes());
    }
    attr(WELL_KNOWN, AS_PATH, &v)
}

fn next_hop(a: Ipv4Addr) -> Vec<u8> {
    attr(WELL_KNOWN, NEXT_HOP, &a.octets())
}

/// One IPv4 NLRI: length, then as many octets as the length needs.
fn nlri_v4(prefix: &str) -> Vec<u8> {
    let p: Ipv4Net = prefix.parse().unwrap();
    let n = usize::from(p.prefix_len()).div_ceil(8);
    let mut v = vec![p.prefix_len()];
    v.extend_from_slice(&p.network().octets()[..n]);
    v
}

/// An MP_REACH_NLRI for IPv6 unicast with next hop fd00::3, with the given flags.
fn mp_reach_v6(flags: u8, prefix: &str) -> Vec<u8> {
    let p: Ipv6Net = prefix.parse().unwrap();
    let mut v = vec![0, 2, 1, 16];
    v.extend_from_slice(&"fd00::3".parse::<std::net::Ipv6Addr>().unwrap().octets());
    v.push(0);
    let n = usize::from(p.prefix_len()).div_ceil(8);
    v.push(p.prefix_len());
    v.extend_from_slice(&p.network().octets()[..n]);
    attr(flags, MP_REACH_NLRI, &v)
}

/// An UPDATE message with its two length fields computed.
fn update(withdrawn: &[u8], attrs: &[Vec<u8>], nlri: &[u8]) -> Vec<u8> {
    let attrs = attrs.concat();
    let mut b = (withdrawn.len() as u16).to_be_bytes().to_vec();
    b.extend_from_slice(withdrawn);
    b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    b.extend_from_slice(&attrs);
    b.extend_from_slice(nlri);
    message(UPDATE, &b)
}

/// ORIGIN, AS_PATH and NEXT_HOP of a well-behaved announcement from the raw peer.
fn good_attrs(t: u8) -> Vec<Vec<u8>> {
    vec![origin_igp(), as_path(&[RAW_AS]), next_hop(v4(t, 3))]
}

/// A well-formed announcement of `prefixes` from the raw peer.
fn good_update(t: u8, prefixes: &[&str]) -> Vec<u8> {
    let nlri: Vec<u8> = prefixes.iter().flat_map(|p| nlri_v4(p)).collect();
    update(&[], &good_attrs(t), &nlri)
}

/// Deterministic noise (xorshift), never starting with a marker octet.
fn garbage(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut v: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    v[0] = 0;
    v
}

// ---------------------------------------------------------------------------
// Panic watch
// ---------------------------------------------------------------------------

static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static HOOK: Once = Once::new();

/// Records every panic raised outside this file (in the speaker's tasks, whose
/// panics tokio would otherwise swallow), then reports it as usual.
fn watch_panics() {
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let ours = info
                .location()
                .is_some_and(|l| l.file().ends_with("bad_peers.rs"));
            if !ours {
                PANICS
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(info.to_string());
            }
            default(info);
        }));
    });
}

fn assert_no_panics() {
    let p = PANICS.lock().unwrap_or_else(|e| e.into_inner());
    assert!(p.is_empty(), "panics in bgp-core: {p:?}");
}

// ---------------------------------------------------------------------------
// Speakers
// ---------------------------------------------------------------------------

fn neighbor(address: IpAddr, remote: RemoteAs) -> NeighborConfig {
    let mut n = NeighborConfig::new(address, remote);
    n.port = PORT;
    n.connect_retry = Duration::from_secs(1);
    n.import = Some(RouteMap::accept_all("in"));
    n.export = Some(RouteMap::accept_all("out"));
    n
}

async fn start(t: u8, host: u8, asn: u32) -> SpeakerHandle {
    let mut c = SpeakerConfig::new(asn, Ipv4Addr::new(10, 0, t, host));
    c.listen = vec![SocketAddr::new(addr(t, host), PORT)];
    Speaker::start(c).await.unwrap()
}

/// Speaker S, its well-behaved neighbor G, and the events S reported since G's
/// session came up.
struct Lab {
    t: u8,
    speaker: SpeakerHandle,
    good: SpeakerHandle,
    events: broadcast::Receiver<Event>,
}

impl Lab {
    /// S with G Established and G's route in S's RIB, and the raw peer's
    /// address configured on S: passive, any external AS, accept-all policies
    /// (RFC 8212), proposing `hold` seconds.
    async fn new(t: u8, hold: u16) -> Self {
        watch_panics();
        let speaker = start(t, 1, SPEAKER_AS).await;
        let good = start(t, 2, GOOD_AS).await;
        let mut g = neighbor(addr(t, 2), RemoteAs::Number(GOOD_AS));
        g.passive = true;
        speaker.add_neighbor(g).await.unwrap();
        let mut raw = neighbor(addr(t, 3), RemoteAs::External);
        raw.passive = true;
        raw.hold_time = hold;
        speaker.add_neighbor(raw).await.unwrap();
        let mut s = neighbor(addr(t, 1), RemoteAs::Number(SPEAKER_AS));
        s.source_address = Some(addr(t, 2));
        good.add_neighbor(s).await.unwrap();
        let attrs = PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::default()),
            ..Default::default()
        };
        good.announce(GOOD_PREFIX.parse().unwrap(), attrs)
            .await
            .unwrap();
        eventually("G's route at S", || async {
            route(&speaker, GOOD_PREFIX)
                .await
                .filter(|e| e.paths[0].neighbor == Some(addr(t, 2)))
        })
        .await;
        let events = speaker.subscribe();
        Self {
            t,
            speaker,
            good,
            events,
        }
    }

    fn raw(&self) -> IpAddr {
        addr(self.t, 3)
    }

    /// The events since the last call; fails on any that touches G's session or
    /// G's route.
    fn events(&mut self) -> Vec<Event> {
        let g = addr(self.t, 2);
        let good: IpNet = GOOD_PREFIX.parse().unwrap();
        let mut v = Vec::new();
        loop {
            match self.events.try_recv() {
                Ok(e) => {
                    match &e {
                        Event::NeighborState { neighbor, .. } => {
                            assert_ne!(*neighbor, g, "G's session changed state: {e:?}")
                        }
                        Event::Route { prefix, .. } => {
                            assert_ne!(*prefix, good, "G's route changed: {e:?}")
                        }
                        Event::Rejected { .. } => {}
                    }
                    v.push(e);
                }
                Err(broadcast::error::TryRecvError::Empty) => return v,
                Err(e) => panic!("event stream: {e}"),
            }
        }
    }

    /// State changes of the raw peer's session among `events`.
    fn raw_state_changes(&self, events: &[Event]) -> Vec<(State, State)> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::NeighborState { neighbor, from, to } if *neighbor == self.raw() => {
                    Some((*from, *to))
                }
                _ => None,
            })
            .collect()
    }

    /// G's session never left Established and G's route never changed; G sees
    /// S Established too; nothing panicked.
    async fn check_good_session(&mut self) {
        let t = self.t;
        self.events();
        let s = status(&self.speaker, addr(t, 2)).await.unwrap();
        assert_eq!(s.state, State::Established, "G at S: {s:?}");
        let e = route(&self.speaker, GOOD_PREFIX)
            .await
            .expect("G's route at S");
        assert_eq!(e.paths.len(), 1);
        assert_eq!(e.paths[0].neighbor, Some(addr(t, 2)));
        let g = status(&self.good, addr(t, 1)).await.unwrap();
        assert_eq!(g.state, State::Established, "S at G: {g:?}");
        assert_no_panics();
    }

    /// S's session with the raw peer is down (S's Down event may trail the
    /// closed socket a little) and the raw peer's routes are gone.
    async fn check_raw_down(&self) {
        let raw = self.raw();
        eventually("raw peer's session down at S", || async {
            status(&self.speaker, raw)
                .await
                .filter(|s| s.state != State::Established)
        })
        .await;
        for p in [P, Q] {
            if let Some(e) = route(&self.speaker, p).await {
                assert!(
                    e.paths.iter().all(|x| x.neighbor != Some(raw)),
                    "{p} from the raw peer outlived its session: {e:?}"
                );
            }
        }
    }

    /// The neighbor task for the raw peer's address survived: a new connection
    /// is answered with S's OPEN.
    async fn check_still_serves(&self) {
        let mut p = Raw::connect(self.t).await;
        p.expect_open().await;
    }

    /// Everything that must hold after a session reset: the NOTIFICATION was
    /// checked by the caller; S's side of the session is down, G's is
    /// untouched, and S still takes connections from the raw peer's address.
    async fn after_reset(&mut self) {
        self.check_raw_down().await;
        self.check_good_session().await;
        self.check_still_serves().await;
        self.check_good_session().await;
    }
}

// ---------------------------------------------------------------------------
// The raw peer
// ---------------------------------------------------------------------------

/// Why the connection ended.
#[derive(Debug)]
enum Closed {
    Eof,
    Error(std::io::ErrorKind),
}

/// A misbehaving peer: a TCP connection from 127.101.T.3 and a receive buffer.
struct Raw {
    t: u8,
    rd: OwnedReadHalf,
    wr: Option<OwnedWriteHalf>,
    buf: Vec<u8>,
}

impl Raw {
    async fn connect(t: u8) -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(addr(t, 3), 0)).unwrap();
        let stream = timeout(GUARD, socket.connect(SocketAddr::new(addr(t, 1), PORT)))
            .await
            .expect("connect timed out")
            .expect("connect");
        stream.set_nodelay(true).unwrap();
        let (rd, wr) = stream.into_split();
        Self {
            t,
            rd,
            wr: Some(wr),
            buf: Vec::new(),
        }
    }

    /// Connects and completes the OPEN/KEEPALIVE exchange, proposing `hold`;
    /// returns once S sent its End-of-RIB markers (so S is Established).
    async fn establish(lab: &Lab, hold: u16) -> Self {
        let mut p = Self::connect(lab.t).await;
        p.expect_open().await;
        p.send(&good_open(lab.t, hold)).await;
        p.expect_keepalive().await;
        p.send(&keepalive()).await;
        // S sends G's route, then End-of-RIB for IPv4 (an empty UPDATE) and
        // IPv6 (an empty MP_UNREACH_NLRI).
        let (mut eor4, mut eor6) = (false, false);
        while !(eor4 && eor6) {
            let (kind, body) = p.recv_within(GUARD).await.expect("S closed");
            match kind {
                KEEPALIVE => {}
                UPDATE if body == [0, 0, 0, 0] => eor4 = true,
                UPDATE if body == [0, 0, 0, 6, 0x80, 15, 3, 0, 2, 1] => eor6 = true,
                UPDATE => {}
                _ => panic!("unexpected message type {kind} while establishing: {body:?}"),
            }
        }
        let s = status(&lab.speaker, lab.raw()).await.unwrap();
        assert_eq!(s.state, State::Established);
        assert_eq!(s.remote_as, Some(RAW_AS));
        p
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.wr
            .as_mut()
            .expect("write half")
            .write_all(bytes)
            .await
            .expect("send");
    }

    /// The next whole message from S as (type, body), or how the connection
    /// ended.
    async fn recv(&mut self) -> Result<(u8, Vec<u8>), Closed> {
        loop {
            if self.buf.len() >= 19 {
                assert_eq!(self.buf[..16], [0xff; 16], "S sent a bad marker");
                let len = usize::from(u16::from_be_bytes([self.buf[16], self.buf[17]]));
                assert!((19..=4096).contains(&len), "S sent length {len}");
                if self.buf.len() >= len {
                    let m: Vec<u8> = self.buf.drain(..len).collect();
                    return Ok((m[18], m[19..].to_vec()));
                }
            }
            let mut chunk = [0u8; 16384];
            match self.rd.read(&mut chunk).await {
                Ok(0) => {
                    assert!(self.buf.is_empty(), "S closed mid-message");
                    return Err(Closed::Eof);
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(Closed::Error(e.kind())),
            }
        }
    }

    async fn recv_within(&mut self, d: Duration) -> Result<(u8, Vec<u8>), Closed> {
        timeout(d, self.recv())
            .await
            .expect("S sent nothing in time")
    }

    /// S's OPEN: version 4, AS 65001, S's identifier.
    async fn expect_open(&mut self) {
        let (kind, body) = self.recv_within(GUARD).await.expect("S closed before OPEN");
        assert_eq!(kind, OPEN, "expected S's OPEN, got type {kind}: {body:?}");
        assert_eq!(body[0], 4, "version");
        assert_eq!(u16::from_be_bytes([body[1], body[2]]), SPEAKER_AS as u16);
        assert_eq!(body[5..9], [10, 0, self.t, 1], "BGP identifier");
    }

    async fn expect_keepalive(&mut self) {
        let (kind, body) = self
            .recv_within(GUARD)
            .await
            .expect("S closed instead of KEEPALIVE");
        assert_eq!(
            kind, KEEPALIVE,
            "expected KEEPALIVE, got type {kind}: {body:?}"
        );
    }

    /// Reads past S's OPEN, KEEPALIVEs and UPDATEs to the NOTIFICATION, which
    /// must be exactly (code, subcode, data); then S must close the connection
    /// without sending anything more. Returns when the NOTIFICATION arrived.
    async fn expect_notification(&mut self, code: u8, subcode: u8, data: &[u8]) -> Instant {
        let got = loop {
            match self.recv_within(GUARD).await {
                Ok((NOTIFICATION, body)) => break body,
                Ok((OPEN | KEEPALIVE | UPDATE, _)) => {}
                Ok((kind, body)) => panic!("unexpected message type {kind}: {body:?}"),
                Err(c) => panic!("S closed ({c:?}) without NOTIFICATION {code}/{subcode}"),
            }
        };
        let at = Instant::now();
        assert!(got.len() >= 2, "short NOTIFICATION {got:?}");
        assert_eq!(
            (got[0], got[1], &got[2..]),
            (code, subcode, data),
            "NOTIFICATION (code, subcode, data)"
        );
        self.expect_closed().await;
        at
    }

    /// S closes the connection (without a further message) within the guard.
    async fn expect_closed(&mut self) {
        match self.recv_within(GUARD).await {
            Err(Closed::Eof) => {}
            Err(Closed::Error(k)) => assert!(
                matches!(
                    k,
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                ),
                "read failed: {k:?}"
            ),
            Ok((kind, body)) => panic!("message type {kind} after the NOTIFICATION: {body:?}"),
        }
    }

    /// A barrier without sleeping: asks S for a route refresh and reads up to
    /// the End-of-RIB that ends S's answer, failing on a NOTIFICATION or a close.
    /// S handles messages in order and hands the UPDATEs before the request to
    /// its RIB before the request itself, so on return everything sent before
    /// was processed and the session survived it.
    async fn barrier(&mut self) {
        self.send(&route_refresh_v4()).await;
        loop {
            match self.recv_within(GUARD).await {
                Ok((UPDATE, body)) if body == [0, 0, 0, 0] => return,
                Ok((KEEPALIVE | UPDATE, _)) => {}
                Ok((NOTIFICATION, body)) => panic!("S sent NOTIFICATION {body:?}"),
                Ok((kind, body)) => panic!("unexpected message type {kind}: {body:?}"),
                Err(c) => panic!("S closed the session: {c:?}"),
            }
        }
    }
}

/// Runs one session-reset case: the raw peer gets as far as `setup` takes it,
/// sends `bad`, and S must answer exactly (code, subcode, data) and close.
async fn reset_case<F, Fut>(t: u8, setup: F, bad: Vec<u8>, code: u8, subcode: u8, data: &[u8])
where
    F: FnOnce(Lab) -> Fut,
    Fut: Future<Output = (Lab, Raw)>,
{
    let lab = Lab::new(t, 9).await;
    let (mut lab, mut p) = setup(lab).await;
    p.send(&bad).await;
    p.expect_notification(code, subcode, data).await;
    lab.after_reset().await;
}

/// Connected; S's OPEN read (S is in OpenSent).
async fn open_sent(lab: Lab) -> (Lab, Raw) {
    let mut p = Raw::connect(lab.t).await;
    p.expect_open().await;
    (lab, p)
}

/// Established, with P announced and in S's RIB.
async fn established(lab: Lab) -> (Lab, Raw) {
    let mut p = Raw::establish(&lab, 9).await;
    p.send(&good_update(lab.t, &[P])).await;
    p.barrier().await;
    let e = route(&lab.speaker, P).await.expect("P at S");
    assert_eq!(e.paths[0].neighbor, Some(lab.raw()));
    (lab, p)
}

// ---------------------------------------------------------------------------
// RFC 4271 section 6.1: Message Header errors
//
// "The expected value of the Marker field of the message header is all ones.
// If the Marker field of the message header is not as expected, then a
// synchronization error has occurred and the Error Subcode MUST be set to
// Connection Not Synchronized."
// "If at least one of the following is true: - if the Length field of the
// message header is less than 19 or greater than 4096, or ... - if the Length
// field of a KEEPALIVE message is not equal to 19, then the Error Subcode MUST
// be set to Bad Message Length. The Data field MUST contain the erroneous
// Length field."
// "If the Type field of the message header is not recognized, then the Error
// Subcode MUST be set to Bad Message Type. The Data field MUST contain the
// erroneous Type field."
// ---------------------------------------------------------------------------

#[tokio::test]
async fn bad_marker_is_connection_not_synchronized() {
    let mut marker = [0xff; 16];
    marker[7] = 0xfe;
    let bad = raw_message(marker, 19, KEEPALIVE, &[]);
    reset_case(1, established, bad, 1, 1, &[]).await;
}

#[tokio::test]
async fn bad_length_is_bad_message_length_with_the_length() {
    let t = 2;
    let mut lab = Lab::new(t, 9).await;
    // A KEEPALIVE of 20 octets, in Established.
    let (l, mut p) = established(lab).await;
    lab = l;
    p.send(&raw_message([0xff; 16], 20, KEEPALIVE, &[0])).await;
    p.expect_notification(1, 2, &[0x00, 0x14]).await;
    lab.after_reset().await;
    // A length below the header's 19, in OpenSent.
    let (l, mut p) = open_sent(lab).await;
    lab = l;
    p.send(&raw_message([0xff; 16], 18, UPDATE, &[])).await;
    p.expect_notification(1, 2, &[0x00, 0x12]).await;
    lab.after_reset().await;
    // Above 4096 without the extended message capability (RFC 8654): the
    // header alone is enough to tell.
    let (l, mut p) = established(lab).await;
    lab = l;
    p.send(&raw_message([0xff; 16], 5000, UPDATE, &[0, 0, 0, 0]))
        .await;
    p.expect_notification(1, 2, &[0x13, 0x88]).await;
    lab.after_reset().await;
}

#[tokio::test]
async fn bad_type_is_bad_message_type_with_the_type() {
    let bad = raw_message([0xff; 16], 19, 7, &[]);
    reset_case(3, established, bad, 1, 3, &[7]).await;
}

// A flood of garbage right after connecting is the same header error: the first
// 19 octets do not start with a marker. S must answer and close at once rather
// than buffer the flood.
#[tokio::test]
async fn garbage_flood_is_answered_and_closed_quickly() {
    let t = 20;
    let mut lab = Lab::new(t, 9).await;
    let mut p = Raw::connect(t).await;
    let started = Instant::now();
    let mut wr = p.wr.take().unwrap();
    let flood = tokio::spawn(async move {
        // Fails once S has closed (reset or broken pipe): that is the point.
        let _ = wr.write_all(&garbage(1 << 20)).await;
        let _ = wr.shutdown().await;
    });
    // S's OPEN went out on connect, then the NOTIFICATION.
    let at = p.expect_notification(1, 1, &[]).await;
    // Seconds, not the whole megabyte's worth: room for a loaded machine.
    assert!(
        at - started < Duration::from_secs(5),
        "answered after {:?}",
        at - started
    );
    timeout(GUARD, flood)
        .await
        .expect("the flood was still being taken in")
        .unwrap();
    lab.after_reset().await;
}

// ---------------------------------------------------------------------------
// RFC 4271 section 6.2: OPEN Message errors
//
// "If the version number in the Version field of the received OPEN message is
// not supported, then the Error Subcode MUST be set to Unsupported Version
// Number. The Data field is a 2-octet unsigned integer, which indicates the
// largest, locally-supported version number less than the version the remote
// BGP peer bid (as indicated in the received OPEN message), or if the smallest,
// locally-supported version number is greater than the version the remote BGP
// peer bid, then the smallest, locally-supported version number."
// "If the Hold Time field of the OPEN message is unacceptable, then the Error
// Subcode MUST be set to Unacceptable Hold Time. An implementation MUST reject
// Hold Time values of one or two seconds."
// "If the BGP Identifier field of the OPEN message is syntactically incorrect,
// then the Error Subcode MUST be set to Bad BGP Identifier." (RFC 6286: the
// identifier is a non-zero integer.)
// "If the Autonomous System field of the OPEN message is unacceptable, then the
// Error Subcode MUST be set to Bad Peer AS."
// "If one of the Optional Parameters in the OPEN message is not recognized,
// then the Error Subcode MUST be set to Unsupported Optional Parameters."
// ---------------------------------------------------------------------------

#[tokio::test]
async fn open_version_3_is_unsupported_version_with_4() {
    let t = 4;
    let bad = open(
        3,
        RAW_AS as u16,
        9,
        Ipv4Addr::new(10, 0, t, 3),
        &capabilities(RAW_AS),
    );
    reset_case(t, open_sent, bad, 2, 1, &[0, 4]).await;
}

#[tokio::test]
async fn open_hold_time_1_is_unacceptable_hold_time() {
    let t = 5;
    let bad = open(
        4,
        RAW_AS as u16,
        1,
        Ipv4Addr::new(10, 0, t, 3),
        &capabilities(RAW_AS),
    );
    reset_case(t, open_sent, bad, 2, 6, &[]).await;
}

#[tokio::test]
async fn open_bgp_identifier_0_is_bad_bgp_identifier() {
    let t = 6;
    let bad = open(
        4,
        RAW_AS as u16,
        9,
        Ipv4Addr::UNSPECIFIED,
        &capabilities(RAW_AS),
    );
    reset_case(t, open_sent, bad, 2, 3, &[]).await;
}

// `RemoteAs::External` admits any AS but S's own: a peer claiming AS 65001 (in
// My Autonomous System and the 4-octet AS capability alike) is refused.
#[tokio::test]
async fn open_peer_as_not_admitted_is_bad_peer_as() {
    let t = 7;
    let bad = open(
        4,
        SPEAKER_AS as u16,
        9,
        Ipv4Addr::new(10, 0, t, 3),
        &capabilities(SPEAKER_AS),
    );
    reset_case(t, open_sent, bad, 2, 2, &[]).await;
}

// Parameter type 1 is the deprecated Authentication Information (RFC 5492).
#[tokio::test]
async fn open_unknown_optional_parameter_is_unsupported_optional_parameter() {
    let t = 8;
    let params = [capabilities(RAW_AS), parameter(1, &[0, 1, 2, 3])].concat();
    let bad = open(4, RAW_AS as u16, 9, Ipv4Addr::new(10, 0, t, 3), &params);
    reset_case(t, open_sent, bad, 2, 4, &[]).await;
}

// ---------------------------------------------------------------------------
// RFC 4271 section 6.3 as revised by RFC 7606: UPDATE errors that reset
//
// RFC 7606 5.3: MP_REACH_NLRI is "incorrect" if "The attribute flags of the
// attribute are inconsistent with those specified in [RFC4760]", and then the
// "session reset" approach is used: 3/9 with the attribute as data.
// RFC 7606 3(g): "If the MP_REACH_NLRI attribute or the MP_UNREACH_NLRI
// attribute appears more than once in the UPDATE message, then a NOTIFICATION
// message MUST be sent with the Error Subcode "Malformed Attribute List"."
// RFC 7606 5.3: "The length of any of the included NLRI is greater than 32" ->
// the NLRI field cannot be parsed: Invalid Network Field (RFC 4271: "If the
// field is syntactically incorrect, then the Error Subcode MUST be set to
// Invalid Network Field").
// RFC 4271: "If any of the well-known mandatory attributes are not recognized,
// then the Error Subcode MUST be set to Unrecognized Well-known Attribute. The
// Data field MUST contain the unrecognized attribute (type, length, and value)."
// RFC 7606 3(b): "If the Withdrawn Routes Length or Total Attribute Length is
// too large (i.e., if Withdrawn Routes Length + Total Attribute Length + 23
// exceeds the message Length), then the Error Subcode MUST be set to Malformed
// Attribute List."
// ---------------------------------------------------------------------------

#[tokio::test]
async fn update_mp_reach_with_bad_flags_is_optional_attribute_error() {
    let t = 9;
    // Optional *transitive*: RFC 4760 makes MP_REACH_NLRI non-transitive.
    let bad_attr = mp_reach_v6(OPT_TRANSITIVE, "2001:db8:3::/48");
    let bad = update(
        &[],
        &[origin_igp(), as_path(&[RAW_AS]), bad_attr.clone()],
        &[],
    );
    reset_case(t, established, bad, 3, 9, &bad_attr).await;
}

#[tokio::test]
async fn update_duplicate_mp_reach_is_malformed_attribute_list() {
    let t = 13;
    let bad = update(
        &[],
        &[
            origin_igp(),
            as_path(&[RAW_AS]),
            mp_reach_v6(OPT_NON_TRANSITIVE, "2001:db8:3::/48"),
            mp_reach_v6(OPT_NON_TRANSITIVE, "2001:db8:4::/48"),
        ],
        &[],
    );
    reset_case(t, established, bad, 3, 1, &[]).await;
}

#[tokio::test]
async fn update_prefix_length_33_is_invalid_network_field() {
    let t = 14;
    let bad = update(&[], &good_attrs(t), &[33, 192, 0, 2, 0, 0]);
    reset_case(t, established, bad, 3, 10, &[]).await;
}

#[tokio::test]
async fn update_unrecognized_well_known_attribute_is_reported_with_it() {
    let t = 15;
    let unknown = attr(WELL_KNOWN, 240, &[1, 2, 3]);
    let mut attrs = good_attrs(t);
    attrs.push(unknown.clone());
    let bad = update(&[], &attrs, &nlri_v4(Q));
    reset_case(t, established, bad, 3, 2, &unknown).await;
}

#[tokio::test]
async fn update_withdrawn_length_overrun_is_malformed_attribute_list() {
    // Withdrawn Routes Length 16 with four octets of body left.
    let bad = message(UPDATE, &[0, 16, 24, 10, 0, 0]);
    reset_case(16, established, bad, 3, 1, &[]).await;
}

// ---------------------------------------------------------------------------
// RFC 7606 section 2, "treat-as-withdraw": "the UPDATE message containing the
// path attribute in question MUST be treated as though all contained routes had
// been withdrawn just as if they had been listed in the WITHDRAWN ROUTES field
// ... of the UPDATE message, thus causing them to be removed from the
// Adj-RIB-In according to the procedures of [RFC4271]." No NOTIFICATION, the
// session stays up.
// 7.2: "An AS_PATH is considered malformed if an unrecognized segment type is
// encountered or if it contains a malformed segment", e.g. "There is an overrun
// where the Path Segment Length field of the last segment encountered would
// cause the Attribute Length to be exceeded."
// 7.3: NEXT_HOP "is considered malformed if its length is not 4"; RFC 4271 6.3:
// a NEXT_HOP must be "a valid IP host address" (not multicast, not 0.0.0.0).
// 3(d): "If any of the well-known mandatory attributes are not present in an
// UPDATE message, then "treat-as-withdraw" MUST be used."
// ---------------------------------------------------------------------------

/// The raw peer announces P validly, then each of `variants` (attribute lists
/// sent with P and Q as NLRI): every time, no NOTIFICATION, the session stays
/// Established, P (announced before) is withdrawn and Q never appears. At the
/// end the session still takes a valid announcement.
async fn treat_as_withdraw(t: u8, variants: &[(&str, Vec<Vec<u8>>)]) {
    let mut lab = Lab::new(t, 9).await;
    let mut p = Raw::establish(&lab, 9).await;
    lab.events();
    for (what, attrs) in variants {
        p.send(&good_update(t, &[P])).await;
        p.barrier().await;
        let e = route(&lab.speaker, P).await.expect("P at S");
        assert_eq!(e.paths[0].neighbor, Some(lab.raw()));

        let nlri = [nlri_v4(P), nlri_v4(Q)].concat();
        p.send(&update(&[], attrs, &nlri)).await;
        // Fails on a NOTIFICATION or a close.
        p.barrier().await;
        assert!(
            route(&lab.speaker, P).await.is_none(),
            "{what}: the earlier P was not withdrawn"
        );
        assert!(
            route(&lab.speaker, Q).await.is_none(),
            "{what}: Q was accepted"
        );
        let s = status(&lab.speaker, lab.raw()).await.unwrap();
        assert_eq!(s.state, State::Established, "{what}");
        let events = lab.events();
        assert_eq!(
            lab.raw_state_changes(&events),
            vec![],
            "{what}: session flapped"
        );
        lab.check_good_session().await;
    }
    p.send(&good_update(t, &[P, Q])).await;
    p.barrier().await;
    assert!(route(&lab.speaker, P).await.is_some());
    assert!(route(&lab.speaker, Q).await.is_some());
    let events = lab.events();
    assert_eq!(lab.raw_state_changes(&events), vec![]);
    lab.check_good_session().await;
}

#[tokio::test]
async fn update_malformed_as_path_is_treat_as_withdraw() {
    let t = 10;
    // One AS_SEQUENCE announcing 3 ASes and holding 2.
    let overrun = attr(
        WELL_KNOWN,
        AS_PATH,
        &[2, 3, 0, 0, 0xfe, 0x4b, 0, 0, 0xfe, 0x4c],
    );
    // Segment type 7 does not exist.
    let bad_type = attr(WELL_KNOWN, AS_PATH, &[7, 1, 0, 0, 0xfe, 0x4b]);
    let nh = next_hop(v4(t, 3));
    treat_as_withdraw(
        t,
        &[
            ("segment overrun", vec![origin_igp(), overrun, nh.clone()]),
            ("unknown segment type", vec![origin_igp(), bad_type, nh]),
        ],
    )
    .await;
}

#[tokio::test]
async fn update_bad_next_hop_is_treat_as_withdraw() {
    let t = 11;
    let path = as_path(&[RAW_AS]);
    treat_as_withdraw(
        t,
        &[
            (
                "NEXT_HOP of 5 octets",
                vec![
                    origin_igp(),
                    path.clone(),
                    attr(WELL_KNOWN, NEXT_HOP, &[127, 101, t, 3, 0]),
                ],
            ),
            (
                "multicast NEXT_HOP",
                vec![
                    origin_igp(),
                    path.clone(),
                    next_hop(Ipv4Addr::new(224, 0, 0, 5)),
                ],
            ),
            (
                "NEXT_HOP 0.0.0.0",
                vec![origin_igp(), path, next_hop(Ipv4Addr::UNSPECIFIED)],
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn update_missing_origin_is_treat_as_withdraw() {
    let t = 12;
    treat_as_withdraw(
        t,
        &[("no ORIGIN", vec![as_path(&[RAW_AS]), next_hop(v4(t, 3))])],
    )
    .await;
}

// ---------------------------------------------------------------------------
// RFC 4271 section 6.6 / RFC 6608: Finite State Machine errors
//
// RFC 6608 section 3: "If a BGP speaker receives an unexpected message (e.g.,
// KEEPALIVE/UPDATE/ROUTE-REFRESH message) on a session in OpenSent state, it
// MUST send to the neighbor a NOTIFICATION message with the Error Code Finite
// State Machine Error and the Error Subcode "Receive Unexpected Message in
// OpenSent State". If a BGP speaker receives an unexpected message (e.g.,
// OPEN/UPDATE/ROUTE-REFRESH message) on a session in OpenConfirm state, it
// MUST send a NOTIFICATION message with the Error Code Finite State Machine
// Error and the Error Subcode "Receive Unexpected Message in OpenConfirm
// State" to the neighbor."
// ---------------------------------------------------------------------------

#[tokio::test]
async fn update_in_openconfirm_is_fsm_error_2() {
    let t = 17;
    let setup = |lab: Lab| async move {
        let mut p = Raw::connect(lab.t).await;
        p.expect_open().await;
        p.send(&good_open(lab.t, 9)).await;
        p.expect_keepalive().await;
        // S is in OpenConfirm, waiting for our KEEPALIVE.
        (lab, p)
    };
    reset_case(t, setup, good_update(t, &[P]), 5, 2, &[]).await;
}

#[tokio::test]
async fn keepalive_in_opensent_is_fsm_error_1() {
    reset_case(18, open_sent, keepalive(), 5, 1, &[]).await;
}

// ---------------------------------------------------------------------------
// RFC 4271 section 6.5: Hold Timer Expired
//
// "If a system does not receive successive KEEPALIVE, UPDATE, and/or
// NOTIFICATION messages within the period specified in the Hold Time field of
// the OPEN message, then the NOTIFICATION message with the Hold Timer Expired
// Error Code is sent and the BGP connection is closed."
// ---------------------------------------------------------------------------

#[tokio::test]
async fn silent_peer_after_open_gets_hold_timer_expired() {
    let t = 19;
    let mut lab = Lab::new(t, 3).await;
    let mut p = Raw::connect(t).await;
    p.expect_open().await;
    p.send(&good_open(t, 3)).await;
    let opened = Instant::now();
    p.expect_keepalive().await;
    // Silence. S keeps sending KEEPALIVEs (every second), then gives up.
    let at = p.expect_notification(4, 0, &[]).await;
    let waited = at - opened;
    assert!(
        waited >= Duration::from_millis(2900) && waited < Duration::from_secs(7),
        "Hold Timer Expired after {waited:?}, hold time 3 s"
    );
    lab.after_reset().await;
}

// The same once Established: every KEEPALIVE, UPDATE or ROUTE-REFRESH restarts
// the hold timer, silence past it ends the session, and its routes go with it.
#[tokio::test]
async fn silent_peer_when_established_gets_hold_timer_expired() {
    let t = 21;
    let lab = Lab::new(t, 3).await;
    let (mut lab, mut p) = established(lab).await;
    // The last message S hears from us is this ROUTE-REFRESH, sent after
    // `quiet`: the hold timer cannot run out before `quiet` + 3 s.
    let quiet = Instant::now();
    p.barrier().await;
    let at = p.expect_notification(4, 0, &[]).await;
    let waited = at - quiet;
    assert!(
        waited >= Duration::from_millis(2900) && waited < Duration::from_secs(6),
        "Hold Timer Expired after {waited:?} of silence, hold time 3 s"
    );
    lab.after_reset().await;
}

// Treat-as-withdraw for routes carried in MP_REACH_NLRI: RFC 7606 section 2,
// "... as if they had been listed in the WITHDRAWN ROUTES field (or in the
// MP_UNREACH_NLRI attribute if appropriate)".
#[tokio::test]
async fn update_mp_reach_with_malformed_as_path_or_no_origin_is_treat_as_withdraw() {
    let t = 22;
    let r = "2001:db8:3::/48";
    let mut lab = Lab::new(t, 9).await;
    let mut p = Raw::establish(&lab, 9).await;
    lab.events();
    let overrun = attr(WELL_KNOWN, AS_PATH, &[2, 3, 0, 0, 0xfe, 0x4b]);
    let reach = mp_reach_v6(OPT_NON_TRANSITIVE, r);
    let variants = [
        (
            "malformed AS_PATH",
            vec![origin_igp(), overrun, reach.clone()],
        ),
        ("no ORIGIN", vec![as_path(&[RAW_AS]), reach.clone()]),
    ];
    for (what, attrs) in variants {
        p.send(&update(
            &[],
            &[origin_igp(), as_path(&[RAW_AS]), reach.clone()],
            &[],
        ))
        .await;
        p.barrier().await;
        let e = route(&lab.speaker, r).await.expect("IPv6 route at S");
        assert_eq!(e.paths[0].neighbor, Some(lab.raw()));
        p.send(&update(&[], &attrs, &[])).await;
        p.barrier().await;
        assert!(
            route(&lab.speaker, r).await.is_none(),
            "{what}: the earlier route was not withdrawn"
        );
        let s = status(&lab.speaker, lab.raw()).await.unwrap();
        assert_eq!(s.state, State::Established, "{what}");
        let events = lab.events();
        assert_eq!(
            lab.raw_state_changes(&events),
            vec![],
            "{what}: session flapped"
        );
        lab.check_good_session().await;
    }
}
