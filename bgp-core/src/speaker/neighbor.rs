//! One task per neighbor: it owns the neighbor's state machine, its TCP
//! connection and its timers, decodes what arrives and writes what the speaker
//! queued. Nothing here blocks another neighbor: reads, writes and timers are
//! polled together, writes stop at a high-water mark, and a peer that stops
//! reading only lets its own pending set fill up to one entry per prefix.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use ipnet::{Ipv4Net, Ipv6Net};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::config::NeighborConfig;
use super::outq::{OutQueue, Pending};
use crate::fsm::{DownReason, Fsm, Input, Negotiated, Output, State, Timer, resolve_collision};
use crate::metrics::{Metrics, NeighborLabels};
use crate::rib::{PeerId, RouteAttrs};
use crate::wire::{
    Context, Framer, Message, NextHop, Nlri, Notification, Prefix, RouteRefresh, Update,
    UpdatePacker,
};

/// Stop filling the write buffer above this many octets.
const HIGH_WATER: usize = 256 * 1024;
/// Prefixes packed per group per round, so one huge group cannot starve timers.
const CHUNK: usize = 8192;
/// The read buffer's size while the peer is quiet (one message of the
/// largest standard size). A read that fills it moves to `READ_MAX` (a table
/// arriving); a small read that leaves nothing undecoded comes back to it.
const READ_MIN: usize = 4096;
/// The largest read buffer.
const READ_MAX: usize = 64 * 1024;
/// Fewer queued prefixes than this are a trickle, sent at most once per
/// `NeighborConfig::batch_interval`; more are sent at once.
const TRICKLE: usize = 1024;

/// What a neighbor task tells the speaker.
// UPDATEs dominate and are moved once; boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum FromNeighbor {
    State {
        peer: PeerId,
        from: State,
        to: State,
    },
    Established {
        peer: PeerId,
        negotiated: Box<Negotiated>,
        local: SocketAddr,
    },
    Down {
        peer: PeerId,
        reason: DownReason,
    },
    Update {
        peer: PeerId,
        update: Update,
    },
    RouteRefresh {
        peer: PeerId,
        refresh: RouteRefresh,
    },
    /// A NOTIFICATION sent (`sent`) or received, also before Established
    /// (a refused OPEN), for the neighbor's last error.
    Notification {
        peer: PeerId,
        sent: bool,
        notification: Notification,
    },
}

/// What the speaker tells a neighbor task.
#[derive(Debug)]
pub(crate) enum Control {
    /// A connection from the neighbor's address, handed over by the listener.
    Incoming(TcpStream),
    /// Stop for good: Cease, close, end the task.
    Stop(Option<String>),
    /// Close with this NOTIFICATION, then start again after the given time, or
    /// stay down until reconfigured when none is given (max prefixes).
    /// (Boxed: every neighbor's channel has room for 32 of the largest.)
    Cease(Box<(Notification, Option<Duration>)>),
    /// Ask the peer to send its routes of a family again.
    AskRefresh(crate::wire::AfiSafi),
    /// New session settings (capabilities), for the next connection.
    Configure(Box<crate::fsm::FsmConfig>),
}

struct Conn {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    rbuf: BytesMut,
    /// How much room to make in `rbuf` before a read.
    rsize: usize,
    /// The room `rbuf` had before the last read.
    rroom: usize,
    /// Empty (no memory) while there is nothing to write.
    wbuf: BytesMut,
    framer: Framer,
    local: SocketAddr,
    remote: SocketAddr,
    /// We opened it (rather than accepted it).
    outgoing: bool,
}

impl Conn {
    fn new(stream: TcpStream, outgoing: bool) -> io::Result<Self> {
        let local = stream.local_addr()?;
        let remote = stream.peer_addr()?;
        stream.set_nodelay(true)?;
        let (rd, wr) = stream.into_split();
        Ok(Self {
            rd,
            wr,
            rbuf: BytesMut::new(),
            rsize: READ_MIN,
            rroom: 0,
            wbuf: BytesMut::new(),
            framer: Framer::new(),
            local,
            remote,
            outgoing,
        })
    }

    /// Makes room in the read buffer for the next read.
    fn room_to_read(&mut self) {
        self.rbuf.reserve(self.rsize);
        self.rroom = self.rbuf.capacity() - self.rbuf.len();
    }

    /// Adapts the read size to a read of `n` octets: the largest when the
    /// read filled the room, and once everything read is consumed after a
    /// small read, a fresh small buffer (a buffer keeps the size it was first
    /// allocated with).
    fn after_read(&mut self, n: usize) {
        if n >= self.rroom {
            self.rsize = READ_MAX;
        } else if n < READ_MIN && self.rbuf.is_empty() {
            self.rsize = READ_MIN;
            self.rbuf = BytesMut::new();
        }
    }

    /// Gives the write buffer's memory back when it is empty.
    fn release_wbuf(&mut self) {
        if self.wbuf.is_empty() && self.wbuf.capacity() > 0 {
            self.wbuf = BytesMut::new();
        }
    }

    /// Hands the unsent octets to a short-lived task that tries to deliver them
    /// (a final NOTIFICATION, typically) and then closes.
    ///
    /// The peer's unread octets are read and dropped until it closes too:
    /// closing a socket with unread data makes the kernel send a reset, which
    /// can destroy the NOTIFICATION still in flight.
    fn close(self) {
        let Conn {
            mut rd,
            mut wr,
            wbuf,
            ..
        } = self;
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                wr.write_all(&wbuf).await?;
                wr.shutdown().await?;
                let mut sink = [0u8; 4096];
                while rd.read(&mut sink).await? > 0 {}
                Ok::<_, io::Error>(())
            })
            .await;
        });
    }
}

type Connecting = Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send>>;

/// Routes taken from the out queue and not yet packed.
#[derive(Default)]
struct Drain {
    before: Vec<Message>,
    after: Vec<Message>,
    withdraw_v4: Vec<Nlri<Ipv4Net>>,
    withdraw_v6: Vec<Nlri<Ipv6Net>>,
    announce_v4: Vec<(Arc<RouteAttrs>, Vec<Nlri<Ipv4Net>>)>,
    announce_v6: Vec<(Arc<RouteAttrs>, Vec<Nlri<Ipv6Net>>)>,
}

fn group<P: Copy>(
    map: super::outq::FxMap<P, Option<u32>>,
    attrs: &[Arc<RouteAttrs>],
    withdraw: &mut Vec<Nlri<P>>,
    announce: &mut Vec<(Arc<RouteAttrs>, Vec<Nlri<P>>)>,
) {
    // Attribute index -> group, with equal sets (listed twice) in one group.
    let mut by_ptr: super::outq::FxMap<*const RouteAttrs, usize> = Default::default();
    let mut group_of: Vec<Option<usize>> = vec![None; attrs.len()];
    for (prefix, state) in map {
        let Some(i) = state else {
            withdraw.push(Nlri::new(prefix));
            continue;
        };
        let i = i as usize;
        let Some(a) = attrs.get(i) else {
            continue;
        };
        let g = *group_of[i].get_or_insert_with(|| {
            *by_ptr.entry(Arc::as_ptr(a)).or_insert_with(|| {
                announce.push((Arc::clone(a), Vec::new()));
                announce.len() - 1
            })
        });
        announce[g].1.push(Nlri::new(prefix));
    }
}

impl Drain {
    fn from_pending(p: Pending) -> Self {
        let mut d = Drain {
            before: p.before,
            after: p.after,
            ..Default::default()
        };
        group(p.v4, &p.attrs, &mut d.withdraw_v4, &mut d.announce_v4);
        group(p.v6, &p.attrs, &mut d.withdraw_v6, &mut d.announce_v6);
        d
    }

    fn is_empty(&self) -> bool {
        self.before.is_empty()
            && self.after.is_empty()
            && self.withdraw_v4.is_empty()
            && self.withdraw_v6.is_empty()
            && self.announce_v4.is_empty()
            && self.announce_v6.is_empty()
    }

    /// Packs into `out` until it holds `limit` octets or nothing is left.
    fn fill(&mut self, ctx: &Context, out: &mut BytesMut, limit: usize) {
        let packer = UpdatePacker::new(ctx);
        for m in self.before.drain(..) {
            encode(&m, ctx, out);
        }
        while out.len() < limit {
            if !self.withdraw_v4.is_empty() {
                let n = self.withdraw_v4.len().min(CHUNK);
                let _ = packer.withdraw(&self.withdraw_v4[..n], out);
                self.withdraw_v4.drain(..n);
            } else if !self.withdraw_v6.is_empty() {
                let n = self.withdraw_v6.len().min(CHUNK);
                let _ = packer.withdraw(&self.withdraw_v6[..n], out);
                self.withdraw_v6.drain(..n);
            } else if let Some((attrs, prefixes)) = self.announce_v4.last_mut() {
                let n = prefixes.len().min(CHUNK);
                announce(&packer, attrs, &prefixes[prefixes.len() - n..], out);
                prefixes.truncate(prefixes.len() - n);
                if prefixes.is_empty() {
                    self.announce_v4.pop();
                }
            } else if let Some((attrs, prefixes)) = self.announce_v6.last_mut() {
                let n = prefixes.len().min(CHUNK);
                announce(&packer, attrs, &prefixes[prefixes.len() - n..], out);
                prefixes.truncate(prefixes.len() - n);
                if prefixes.is_empty() {
                    self.announce_v6.pop();
                }
            } else {
                for m in self.after.drain(..) {
                    encode(&m, ctx, out);
                }
                break;
            }
        }
    }
}

/// Counts the messages in a run of whole encoded messages.
fn count_messages(mut buf: &[u8]) -> u64 {
    let mut n = 0;
    while let Some(len) = buf
        .get(16..18)
        .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
    {
        if len < crate::wire::HEADER_LEN || len > buf.len() {
            break;
        }
        buf = &buf[len..];
        n += 1;
    }
    n
}

fn encode(m: &Message, ctx: &Context, out: &mut BytesMut) {
    if let Err(e) = m.encode(ctx, out) {
        warn!("cannot encode {:?}: {e}", m.kind());
    }
}

/// Packs one group: IPv4 with an IPv4 next hop in the NLRI field, the rest in
/// MP_REACH_NLRI.
fn announce<P: Prefix>(
    packer: &UpdatePacker,
    attrs: &RouteAttrs,
    prefixes: &[Nlri<P>],
    out: &mut BytesMut,
) {
    let mut a = attrs.attributes.clone();
    let result = match (
        &attrs.next_hop,
        P::FAMILY == crate::wire::AfiSafi::IPV4_UNICAST,
    ) {
        (Some(NextHop::V4(nh)), true) => {
            a.next_hop = Some(*nh);
            packer.announce(&a, None, prefixes, out)
        }
        (Some(nh), _) => {
            a.next_hop = None;
            packer.announce(&a, Some(nh), prefixes, out)
        }
        (None, _) => return,
    };
    if let Err(e) = result {
        warn!("cannot pack {} routes: {e}", prefixes.len());
    }
}

/// How a neighbor task is connected to the rest of the speaker.
pub(crate) struct Links {
    pub(crate) events: mpsc::Sender<FromNeighbor>,
    pub(crate) control: mpsc::Receiver<Control>,
    pub(crate) outq: Arc<OutQueue>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) labels: NeighborLabels,
}

pub(crate) struct NeighborTask {
    pub(crate) id: PeerId,
    pub(crate) config: NeighborConfig,
    pub(crate) fsm: Fsm,
    pub(crate) events: mpsc::Sender<FromNeighbor>,
    pub(crate) control: mpsc::Receiver<Control>,
    pub(crate) outq: Arc<OutQueue>,
    /// Dynamic neighbors end their task when their session ends.
    pub(crate) dynamic: bool,
    timers: [Option<Instant>; 5],
    conn: Option<Conn>,
    /// An incoming connection kept aside while ours is in OpenSent, until the
    /// collision can be resolved (section 6.8).
    parked: Option<TcpStream>,
    connecting: Option<Connecting>,
    drain: Drain,
    stopping: bool,
    metrics: Arc<Metrics>,
    labels: NeighborLabels,
    /// Both OPENs of this connection set the N bit of graceful restart:
    /// final Ceases go as Hard Reset (RFC 8538).
    hard_reset: bool,
    /// A trickle queued before this time waits for it (see `batch_interval`).
    hold_until: Option<Instant>,
    /// A trickle is waiting for `hold_until`.
    held: bool,
}

enum Wake {
    Control(Option<Control>),
    Connected(io::Result<TcpStream>),
    Read(io::Result<usize>),
    Wrote(io::Result<usize>),
    Queue,
    Timer(Timer),
}

fn timer_index(t: Timer) -> usize {
    match t {
        Timer::ConnectRetry => 0,
        Timer::Hold => 1,
        Timer::Keepalive => 2,
        Timer::DelayOpen => 3,
        Timer::IdleHold => 4,
    }
}

const TIMERS: [Timer; 5] = [
    Timer::ConnectRetry,
    Timer::Hold,
    Timer::Keepalive,
    Timer::DelayOpen,
    Timer::IdleHold,
];

impl NeighborTask {
    pub(crate) fn new(
        id: PeerId,
        config: NeighborConfig,
        fsm: Fsm,
        dynamic: bool,
        links: Links,
    ) -> Self {
        Self {
            id,
            config,
            fsm,
            events: links.events,
            control: links.control,
            outq: links.outq,
            dynamic,
            timers: [None; 5],
            conn: None,
            parked: None,
            connecting: None,
            drain: Drain::default(),
            stopping: false,
            metrics: links.metrics,
            labels: links.labels,
            hard_reset: false,
            hold_until: None,
            held: false,
        }
    }

    fn tx_context(&self) -> Context {
        self.fsm.negotiated().map_or(Context::LEGACY, |n| n.tx)
    }

    fn rx_context(&self) -> Context {
        self.fsm.negotiated().map_or(Context::LEGACY, |n| n.rx)
    }

    /// The task's life: boxed, because an async fn's future keeps its
    /// arguments besides its locals, so a task moved in by value would take
    /// its room twice for the whole session.
    pub(crate) fn run(self, start: Option<TcpStream>) -> impl Future<Output = ()> + Send {
        Box::new(self).run_boxed(start)
    }

    async fn run_boxed(mut self: Box<Self>, start: Option<TcpStream>) {
        let first = self.fsm.handle(if self.config.passive || start.is_some() {
            Input::AutomaticStart
        } else {
            Input::ManualStart
        });
        let adopt = start.is_some();
        self.execute(first, adopt).await;
        if let Some(stream) = start {
            self.adopt(stream, false).await;
        }
        loop {
            if self.stopping && self.fsm.state() == State::Idle {
                break;
            }
            if self.dynamic && self.fsm.state() == State::Idle && self.conn.is_none() {
                // A dynamic neighbor exists only while its peer is connected.
                break;
            }
            let wake = self.next().await;
            match wake {
                Wake::Control(None) => break,
                // Rare, and deep (a new connection): boxed, so that the
                // task's future is not sized for it.
                Wake::Control(Some(c)) => Box::pin(self.control(c)).await,
                Wake::Connected(Ok(stream)) => {
                    self.connecting = None;
                    self.adopt(stream, true).await;
                }
                Wake::Connected(Err(e)) => {
                    self.connecting = None;
                    debug!(peer = %self.config.address, "connect failed: {e}");
                    let out = self.fsm.handle(Input::TcpFailed);
                    self.execute(out, false).await;
                }
                Wake::Read(Ok(0)) | Wake::Read(Err(_)) | Wake::Wrote(Err(_)) => {
                    debug!(peer = %self.config.address, "connection closed");
                    let out = self.fsm.handle(Input::TcpFailed);
                    self.execute(out, false).await;
                }
                Wake::Read(Ok(n)) => {
                    self.frames().await;
                    if let Some(conn) = self.conn.as_mut() {
                        conn.after_read(n);
                    }
                }
                Wake::Wrote(Ok(_)) => {}
                Wake::Queue => self.refill(),
                Wake::Timer(t) => {
                    self.timers[timer_index(t)] = None;
                    let out = self.fsm.handle(Input::TimerExpired(t));
                    self.execute(out, false).await;
                }
            }
            self.refill();
            if self.drain.is_empty()
                && let Some(conn) = self.conn.as_mut()
            {
                conn.release_wbuf();
            }
        }
        if let Some(conn) = self.conn.take() {
            conn.close();
        }
    }

    async fn next(&mut self) -> Wake {
        let deadline = self
            .timers
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.map(|t| (t, i)))
            .min();
        let established = self.fsm.state() == State::Established;
        let drained = self.drain.is_empty();
        let held = self.hold_until.filter(|_| self.held);
        if let Some(conn) = self.conn.as_mut() {
            conn.room_to_read();
        }
        // Disjoint borrows, so that every source can be polled at once.
        let control = &mut self.control;
        let connecting = &mut self.connecting;
        let outq = &self.outq;
        let (rd, wr) = match self.conn.as_mut() {
            Some(c) => (
                Some((&mut c.rd, &mut c.rbuf)),
                Some((&mut c.wr, &mut c.wbuf)),
            ),
            None => (None, None),
        };
        let want_write = wr.as_ref().is_some_and(|(_, b)| !b.is_empty());
        let want_queue =
            established && drained && wr.as_ref().is_some_and(|(_, b)| b.len() < HIGH_WATER);
        tokio::select! {
            c = control.recv() => Wake::Control(c),
            r = async {
                match connecting.as_mut() {
                    Some(f) => f.await,
                    None => std::future::pending().await,
                }
            } => Wake::Connected(r),
            r = async {
                match rd {
                    Some((rd, buf)) => rd.read_buf(buf).await,
                    None => std::future::pending().await,
                }
            } => Wake::Read(r),
            r = async {
                match wr {
                    Some((wr, buf)) => wr.write_buf(buf).await,
                    None => std::future::pending().await,
                }
            }, if want_write => Wake::Wrote(r),
            _ = async {
                match held {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => outq.notify.notified().await,
                }
            }, if want_queue => Wake::Queue,
            _ = async {
                match deadline {
                    Some((t, _)) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => Wake::Timer(deadline.map_or(Timer::IdleHold, |(_, i)| TIMERS[i])),
        }
    }

    /// Moves queued routes into the write buffer while it has room.
    fn refill(&mut self) {
        if self.fsm.state() != State::Established {
            return;
        }
        let ctx = self.tx_context();
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if conn.wbuf.len() >= HIGH_WATER {
            return;
        }
        if self.drain.is_empty() {
            if let Some(until) = self.hold_until
                && Instant::now() < until
            {
                // A trickle soon after the last send waits to be sent with
                // what follows it; a backlog goes at once.
                let p = self.outq.lock();
                self.held = !p.is_empty() && p.v4.len() + p.v6.len() < TRICKLE;
                if self.held || p.is_empty() {
                    return;
                }
            }
            let pending = self.outq.take();
            if pending.is_empty() {
                return;
            }
            self.drain = Drain::from_pending(pending);
            self.held = false;
            let interval = self.config.batch_interval;
            self.hold_until = (!interval.is_zero()).then(|| Instant::now() + interval);
        }
        // More may be queued meanwhile: the permit `notify_one` leaves wakes
        // the task again once this drain is done.
        let before = conn.wbuf.len();
        self.drain.fill(&ctx, &mut conn.wbuf, HIGH_WATER);
        if self.drain.is_empty() {
            // Its vectors keep their room: give it back while idle.
            self.drain = Drain::default();
        }
        let sent = count_messages(&conn.wbuf[before..]);
        if sent > 0 {
            self.metrics
                .message(&self.labels, crate::wire::MessageType::Update, true, sent);
        }
    }

    async fn adopt(&mut self, stream: TcpStream, outgoing: bool) {
        if let Some(ttl) = self.config.ttl {
            let _ = stream.set_ttl(u32::from(ttl));
        }
        match super::security::on_stream(&stream, &self.config)
            .and_then(|()| Conn::new(stream, outgoing))
        {
            Ok(conn) => {
                info!(peer = %self.config.address, local = %conn.local, remote = %conn.remote, "TCP connection up");
                self.conn = Some(conn);
                let out = self.fsm.handle(Input::TcpConnected);
                self.execute(out, true).await;
            }
            Err(e) => {
                warn!(peer = %self.config.address, "unusable connection: {e}");
                let out = self.fsm.handle(Input::TcpFailed);
                self.execute(out, false).await;
            }
        }
    }

    async fn control(&mut self, c: Control) {
        match c {
            Control::Incoming(stream) => self.incoming(stream).await,
            Control::Stop(message) => {
                self.stopping = true;
                let out = self.fsm.handle(Input::ManualStop);
                let out = match message {
                    Some(msg) => out
                        .into_iter()
                        .map(|o| match o {
                            Output::Send(Message::Notification(n))
                                if n.code == crate::wire::error_code::CEASE =>
                            {
                                Output::Send(Message::Notification(
                                    Notification::cease_with_message(n.subcode, &msg),
                                ))
                            }
                            o => o,
                        })
                        .collect(),
                    None => out,
                };
                self.execute(out, false).await;
            }
            Control::Cease(cease) => {
                let (n, restart) = *cease;
                let out = self.fsm.handle(Input::AutomaticStop(n));
                self.execute(out, false).await;
                match restart {
                    Some(after) => {
                        self.timers[timer_index(Timer::IdleHold)] = Some(Instant::now() + after)
                    }
                    None => {
                        // Idle and no longer started: no automatic restart.
                        let out = self.fsm.handle(Input::ManualStop);
                        self.execute(out, false).await;
                    }
                }
            }
            Control::AskRefresh(family) => {
                if self.fsm.state() == State::Established
                    && self.fsm.negotiated().is_some_and(|n| n.route_refresh)
                {
                    let ctx = self.tx_context();
                    if let Some(c) = self.conn.as_mut() {
                        encode(
                            &Message::RouteRefresh(RouteRefresh::request(family)),
                            &ctx,
                            &mut c.wbuf,
                        );
                    }
                }
            }
            Control::Configure(config) => self.fsm.set_config(*config),
        }
    }

    /// Section 6.8: an incoming connection while we already have one.
    async fn incoming(&mut self, stream: TcpStream) {
        match self.fsm.state() {
            State::Idle if self.stopping || !self.fsm.is_started() => drop(stream),
            State::Idle | State::Connect | State::Active => {
                self.connecting = None;
                if self.fsm.state() == State::Idle {
                    let out = self.fsm.handle(Input::AutomaticStart);
                    self.execute(out, true).await;
                }
                if let Some(old) = self.conn.take() {
                    old.close();
                }
                self.adopt(stream, false).await;
            }
            State::OpenSent => {
                // The peer's identifier is not known yet: keep the connection
                // aside and decide once our OPEN exchange tells us.
                self.parked = Some(stream);
            }
            State::OpenConfirm => self.resolve(stream).await,
            State::Established => {
                debug!(peer = %self.config.address, "refusing a second connection while established");
                drop(stream);
            }
        }
    }

    /// Resolves a collision between our connection (in OpenConfirm, so the
    /// peer's identifier is known) and `other`, the peer's.
    async fn resolve(&mut self, other: TcpStream) {
        let Some(n) = self.fsm.negotiated() else {
            drop(other);
            return;
        };
        let ours_outgoing = self.conn.as_ref().is_some_and(|c| c.outgoing);
        let keep_outgoing = resolve_collision(self.fsm.config().router_id, n.remote_id);
        if keep_outgoing == ours_outgoing {
            info!(peer = %self.config.address, "collision: keeping the existing connection");
            drop(other);
            return;
        }
        info!(peer = %self.config.address, "collision: switching to the peer's connection");
        let out = self.fsm.handle(Input::CollisionDump);
        self.execute(out, false).await;
        let out = self.fsm.handle(Input::AutomaticStart);
        self.execute(out, true).await;
        self.adopt(other, false).await;
    }

    async fn frames(&mut self) {
        loop {
            let ctx = self.rx_context();
            let Some(conn) = self.conn.as_mut() else {
                return;
            };
            let frame = match conn.framer.next_frame(&mut conn.rbuf) {
                Ok(Some(f)) => f,
                Ok(None) => return,
                Err(e) => {
                    warn!(peer = %self.config.address, "bad message header: {e}");
                    let out = self.fsm.handle(Input::Malformed(e.into()));
                    self.execute(out, false).await;
                    return;
                }
            };
            let (input, notified) = match Message::decode(&frame, &ctx) {
                Ok(m) => {
                    self.metrics.message(&self.labels, m.kind(), false, 1);
                    let notified = match &m {
                        Message::Notification(n) => Some(self.notified(false, n)),
                        _ => None,
                    };
                    (Input::Message(m), notified)
                }
                Err(e) => {
                    warn!(peer = %self.config.address, "malformed message: {e}");
                    (Input::Malformed(e), None)
                }
            };
            // Nothing of the message is kept across the awaits below: they
            // are part of the task's future, its memory for the whole session.
            drop(frame);
            let out = self.fsm.handle(input);
            if let Some(notified) = notified {
                notified.await;
            }
            self.execute(out, false).await;
        }
    }

    /// Carries out the FSM's outputs. `have_stream` suppresses a connect when a
    /// connection is being adopted in the same step. Boxed: it is deep and
    /// awaited from many places, each of which would otherwise make room for
    /// it in the task's future.
    fn execute(
        &mut self,
        outputs: Vec<Output>,
        have_stream: bool,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.carry_out(outputs, have_stream))
    }

    async fn carry_out(&mut self, outputs: Vec<Output>, have_stream: bool) {
        for o in outputs {
            match o {
                Output::Connect => {
                    if !have_stream && self.conn.is_none() && !self.config.passive {
                        self.connecting = Some(Box::pin(connect(self.config.clone())));
                    }
                }
                Output::Disconnect => {
                    self.connecting = None;
                    if let Some(conn) = self.conn.take() {
                        conn.close();
                    }
                    self.drain = Drain::default();
                    if let Some(parked) = self.parked.take()
                        && !self.stopping
                    {
                        // Our connection lost; the peer's waits: take it.
                        self.conn = None;
                        let out = self.fsm.handle(Input::AutomaticStart);
                        self.execute(out, true).await;
                        Box::pin(self.adopt(parked, false)).await;
                    }
                }
                Output::Send(m) => {
                    let m = match m {
                        Message::Notification(n) if self.hard_reset => {
                            Message::Notification(super::graceful::with_hard_reset(n))
                        }
                        m => m,
                    };
                    self.metrics.message(&self.labels, m.kind(), true, 1);
                    let ctx = self.tx_context();
                    if let Message::Notification(n) = &m {
                        warn!(peer = %self.config.address, "sending NOTIFICATION {n}");
                        self.notified(true, n).await;
                    }
                    if let Some(c) = self.conn.as_mut() {
                        encode(&m, &ctx, &mut c.wbuf);
                    }
                }
                Output::StartTimer {
                    timer,
                    duration,
                    jitter,
                } => {
                    let d = if jitter {
                        duration.mul_f64(0.75 + fastrand::f64() * 0.25)
                    } else {
                        duration
                    };
                    self.timers[timer_index(timer)] = Some(Instant::now() + d);
                }
                Output::StopTimer(timer) => self.timers[timer_index(timer)] = None,
                Output::StateChanged { from, to } => {
                    info!(peer = %self.config.address, "{from} -> {to}");
                    // From the exchange of OPENs on.
                    self.hard_reset = self.fsm.negotiated().is_some_and(|n| {
                        super::graceful::notification_negotiated(
                            &self.fsm.config().capabilities,
                            &n.remote_open.capabilities,
                        )
                    });
                    self.send(FromNeighbor::State {
                        peer: self.id,
                        from,
                        to,
                    })
                    .await;
                    if to == State::OpenConfirm
                        && let Some(parked) = self.parked.take()
                    {
                        Box::pin(self.resolve(parked)).await;
                    }
                }
                Output::Established(n) => {
                    let Some(conn) = self.conn.as_mut() else {
                        continue;
                    };
                    conn.framer.set_max_len(n.rx.max_message_len());
                    let local = conn.local;
                    self.send(FromNeighbor::Established {
                        peer: self.id,
                        negotiated: n,
                        local,
                    })
                    .await;
                }
                Output::Down(reason) => {
                    self.outq.clear();
                    self.drain = Drain::default();
                    (self.hold_until, self.held) = (None, false);
                    self.send(FromNeighbor::Down {
                        peer: self.id,
                        reason,
                    })
                    .await;
                }
                Output::Update(update) => {
                    self.send(FromNeighbor::Update {
                        peer: self.id,
                        update,
                    })
                    .await
                }
                Output::RouteRefresh(refresh) => {
                    self.send(FromNeighbor::RouteRefresh {
                        peer: self.id,
                        refresh,
                    })
                    .await;
                }
            }
        }
    }

    fn notified(
        &mut self,
        sent: bool,
        notification: &Notification,
    ) -> impl Future<Output = ()> + use<> {
        self.send(FromNeighbor::Notification {
            peer: self.id,
            sent,
            notification: notification.clone(),
        })
    }

    /// Sends at once when there is room; the future returned waits for room
    /// otherwise. The event is never part of the future: waiting is rare and
    /// boxed, so that the task's future (its memory for the whole session) is
    /// not sized to hold an event at each of the places that send one.
    fn send(&mut self, event: FromNeighbor) -> impl Future<Output = ()> + use<> {
        let wait = match self.events.try_send(event) {
            Err(mpsc::error::TrySendError::Full(event)) => {
                let events = self.events.clone();
                Some(Box::pin(async move { events.send(event).await }))
            }
            // Sent, or the speaker is gone, which ends everything anyway.
            _ => None,
        };
        async move {
            match wait {
                Some(wait) => {
                    let _ = wait.await;
                }
                // As a send that found room would: a task that reads and
                // sends without end still lets the speaker's task run.
                None => tokio::task::coop::consume_budget().await,
            }
        }
    }
}

/// Opens the TCP connection with the neighbor's socket options.
async fn connect(config: NeighborConfig) -> io::Result<TcpStream> {
    let addr = SocketAddr::new(config.address, config.port);
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    if let Some(ttl) = config.ttl {
        if addr.is_ipv4() {
            socket.set_ttl(u32::from(ttl))?;
        } else {
            socket.set_unicast_hops_v6(u32::from(ttl))?;
        }
    }
    if let Some(dev) = &config.bind_interface {
        socket.bind_device(Some(dev.as_bytes()))?;
    }
    if let Some(src) = config.source_address {
        socket.bind(&SocketAddr::new(src, 0).into())?;
    }
    super::security::before_connect(&socket, &config)?;
    let socket = tokio::net::TcpSocket::from_std_stream(socket.into());
    tokio::time::timeout(
        config.connect_retry.max(Duration::from_secs(1)),
        socket.connect(addr),
    )
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
}
