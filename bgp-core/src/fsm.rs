//! The BGP finite state machine of RFC 4271 section 8, sans-IO.
//!
//! One [`Fsm`] drives one connection to one neighbor. It owns no socket, no clock
//! and no randomness: the session driver feeds it [`Input`]s (administrative
//! events, timer expiries, TCP events, decoded messages and decode errors) and
//! carries out the [`Output`]s it returns, in order (connect, send, disconnect,
//! start or stop a timer, hand an UPDATE on, report the session up or down).
//! Timers are outputs too: the driver arms them, adds the jitter of section 10
//! where [`Output::StartTimer`] asks for it, and reports their expiry.
//!
//! Collision detection (section 6.8) compares two connections, so it lives one
//! level up: [`resolve_collision`] tells the driver which connection to keep and
//! the loser's FSM gets [`Input::CollisionDump`].

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::wire::{
    AS_TRANS, AddPathFamilies, Afi, AfiSafi, Capability, Context, DecodeError, Message,
    Notification, Open, PeerKind, RouteRefresh, Safi, Update, error_code, error_subcode,
};

/// The six states of section 8.2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum State {
    /// Refusing connections, waiting for a start event.
    Idle,
    /// Waiting for an outgoing TCP connection to complete.
    Connect,
    /// Listening for an incoming TCP connection.
    Active,
    /// OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for the first KEEPALIVE.
    OpenConfirm,
    /// Exchanging routes.
    Established,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Idle => "Idle",
            Self::Connect => "Connect",
            Self::Active => "Active",
            Self::OpenSent => "OpenSent",
            Self::OpenConfirm => "OpenConfirm",
            Self::Established => "Established",
        })
    }
}

/// The timers of section 10, plus the idle hold timer that spaces automatic
/// restarts (section 8.1.1, DampPeerOscillations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Time between connection attempts.
    ConnectRetry,
    /// Time without a KEEPALIVE or UPDATE before the session is declared dead.
    Hold,
    /// Time between KEEPALIVEs we send.
    Keepalive,
    /// Time to wait for the peer's OPEN before sending ours (section 8.1.1).
    DelayOpen,
    /// Time to stay Idle before an automatic restart.
    IdleHold,
}

/// Which AS numbers a neighbor may have.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RemoteAs {
    /// Exactly this AS.
    Number(u32),
    /// Any AS other than ours: an external peer whose AS we need not know.
    External,
    /// Our own AS: an internal peer.
    Internal,
    /// Any AS at all.
    Any,
    /// Any AS in this inclusive range.
    Range(u32, u32),
}

impl RemoteAs {
    /// Whether a peer announcing `asn` is acceptable when we are `local_as`.
    pub fn admits(&self, asn: u32, local_as: u32) -> bool {
        match *self {
            Self::Number(n) => asn == n,
            Self::External => asn != local_as,
            Self::Internal => asn == local_as,
            Self::Any => true,
            Self::Range(lo, hi) => (lo..=hi).contains(&asn),
        }
    }
}

/// What the FSM needs to know about its neighbor.
#[derive(Debug, Clone)]
pub struct FsmConfig {
    /// Our AS.
    pub local_as: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// The AS numbers the neighbor may have.
    pub remote_as: RemoteAs,
    /// The hold time we propose, in seconds: 0 (no keepalives) or at least 3.
    pub hold_time: u16,
    /// Time between connection attempts (section 10 suggests 120 s).
    pub connect_retry: Duration,
    /// Never connect out; only accept the neighbor's connection.
    pub passive: bool,
    /// Wait this long for the peer's OPEN before sending ours (optional DelayOpen).
    pub delay_open: Option<Duration>,
    /// First wait before an automatic restart after a failure; it doubles with
    /// each failure in a row, up to [`FsmConfig::max_idle_hold`].
    pub idle_hold: Duration,
    /// Longest wait before an automatic restart.
    pub max_idle_hold: Duration,
    /// The capabilities we advertise.
    pub capabilities: Vec<Capability>,
    /// With a BGP role among `capabilities`, refuse a neighbor that sends no
    /// role (RFC 9234 strict mode).
    pub role_strict: bool,
}

impl FsmConfig {
    /// A configuration with the usual defaults: hold time 90 s, connect retry
    /// 30 s, idle hold 1 s up to 60 s, IPv4 and IPv6 unicast, route refresh,
    /// enhanced route refresh and 4-octet AS numbers.
    pub fn new(local_as: u32, router_id: Ipv4Addr, remote_as: RemoteAs) -> Self {
        Self {
            local_as,
            router_id,
            remote_as,
            hold_time: 90,
            connect_retry: Duration::from_secs(30),
            passive: false,
            delay_open: None,
            idle_hold: Duration::from_secs(1),
            max_idle_hold: Duration::from_secs(60),
            capabilities: vec![
                Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
                Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
                Capability::RouteRefresh,
                Capability::EnhancedRouteRefresh,
                Capability::FourOctetAs(local_as),
            ],
            role_strict: false,
        }
    }

    /// Our OPEN.
    pub fn open(&self) -> Open {
        Open::new(
            self.local_as,
            self.hold_time,
            self.router_id,
            self.capabilities.clone(),
        )
    }
}

/// What the two OPENs agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The peer's AS.
    pub remote_as: u32,
    /// The peer's BGP identifier.
    pub remote_id: Ipv4Addr,
    /// Hold time in seconds: the smaller of the two proposals (section 4.2).
    pub hold_time: u16,
    /// Families both sides advertised (IPv4 unicast when neither advertised any,
    /// RFC 4760 section 8).
    pub families: Vec<AfiSafi>,
    /// Both sides can refresh routes (RFC 2918).
    pub route_refresh: bool,
    /// Both sides can do enhanced route refresh (RFC 7313).
    pub enhanced_route_refresh: bool,
    /// How to decode what the peer sends.
    pub rx: Context,
    /// How to encode what we send.
    pub tx: Context,
    /// The peer's OPEN, for its other capabilities (graceful restart, ...).
    pub remote_open: Open,
}

impl Negotiated {
    /// Agrees on the session parameters, or says why the peer's OPEN is not
    /// acceptable (section 6.2).
    pub fn new(config: &FsmConfig, remote: &Open) -> Result<Self, Notification> {
        let open_error = |sub| Notification::new(error_code::OPEN_MESSAGE, sub);
        let remote_as = remote.asn();
        // RFC 6793 section 4.1: the 2-octet field must agree with the capability.
        if remote.my_as != AS_TRANS && u32::from(remote.my_as) != remote_as {
            return Err(open_error(error_subcode::open::BAD_PEER_AS));
        }
        if !config.remote_as.admits(remote_as, config.local_as) {
            return Err(open_error(error_subcode::open::BAD_PEER_AS));
        }
        // RFC 6286 section 2.2: identifiers must differ inside an AS.
        if remote_as == config.local_as && remote.bgp_id == config.router_id {
            return Err(open_error(error_subcode::open::BAD_BGP_IDENTIFIER));
        }
        // RFC 9234 section 4.2: our role and the peer's must fit.
        crate::role::check_open(
            crate::role::local_role(&config.capabilities),
            config.role_strict,
            &remote.capabilities,
        )?;
        let ours = &config.capabilities;
        let theirs = &remote.capabilities;
        let has = |caps: &[Capability], c: &Capability| caps.contains(c);
        let mp = |caps: &[Capability]| -> Vec<AfiSafi> {
            let v: Vec<AfiSafi> = caps
                .iter()
                .filter_map(|c| match c {
                    Capability::Multiprotocol(f) => Some(*f),
                    _ => None,
                })
                .collect();
            if v.is_empty() {
                vec![AfiSafi::IPV4_UNICAST]
            } else {
                v
            }
        };
        let their_families = mp(theirs);
        let families: Vec<AfiSafi> = mp(ours)
            .into_iter()
            .filter(|f| their_families.contains(f))
            .collect();
        let four_octet_as = ours.iter().any(|c| matches!(c, Capability::FourOctetAs(_)))
            && theirs
                .iter()
                .any(|c| matches!(c, Capability::FourOctetAs(_)));
        let add_path = |caps: &[Capability]| {
            caps.iter()
                .filter_map(|c| match c {
                    Capability::AddPath(v) => Some(v.clone()),
                    _ => None,
                })
                .flatten()
                .collect::<Vec<_>>()
        };
        let (our_ap, their_ap) = (add_path(ours), add_path(theirs));
        let (mut ap_rx, mut ap_tx) = (AddPathFamilies::NONE, AddPathFamilies::NONE);
        for a in &our_ap {
            if !families.contains(&a.family) {
                continue;
            }
            for b in their_ap.iter().filter(|b| b.family == a.family) {
                if a.mode.can_receive() && b.mode.can_send() {
                    ap_rx.insert(a.family);
                }
                if a.mode.can_send() && b.mode.can_receive() {
                    ap_tx.insert(a.family);
                }
            }
        }
        let peer = if remote_as == config.local_as {
            PeerKind::Internal
        } else {
            PeerKind::External(remote_as)
        };
        // RFC 8950 section 3: the capability says what its sender can receive,
        // like the extended message one below.
        let ipv4_over_ipv6 = |caps: &[Capability]| {
            families.contains(&AfiSafi::IPV4_UNICAST)
                && caps.iter().any(|c| match c {
                    Capability::ExtendedNextHop(v) => v.iter().any(|e| {
                        e.nlri_afi == Afi::IPV4
                            && e.nlri_safi == u16::from(Safi::UNICAST.0)
                            && e.next_hop_afi == Afi::IPV6
                    }),
                    _ => false,
                })
        };
        // RFC 8654: we may receive large messages when we advertised the
        // capability, and send them when the peer did.
        let rx = Context {
            four_octet_as,
            extended_message: has(ours, &Capability::ExtendedMessage),
            add_path: ap_rx,
            peer,
            extended_next_hop: ipv4_over_ipv6(ours),
        };
        let tx = Context {
            four_octet_as,
            extended_message: has(theirs, &Capability::ExtendedMessage),
            add_path: ap_tx,
            peer,
            extended_next_hop: ipv4_over_ipv6(theirs),
        };
        let refresh = |caps: &[Capability]| {
            has(caps, &Capability::RouteRefresh) || has(caps, &Capability::RouteRefreshCisco)
        };
        Ok(Self {
            remote_as,
            remote_id: remote.bgp_id,
            hold_time: config.hold_time.min(remote.hold_time),
            families,
            route_refresh: refresh(ours) && refresh(theirs),
            enhanced_route_refresh: has(ours, &Capability::EnhancedRouteRefresh)
                && has(theirs, &Capability::EnhancedRouteRefresh),
            rx,
            tx,
            remote_open: remote.clone(),
        })
    }

    /// Seconds between our KEEPALIVEs: a third of the hold time (section 10), or
    /// none when the hold time is 0.
    pub fn keepalive_interval(&self) -> Option<Duration> {
        (self.hold_time > 0).then(|| Duration::from_secs(u64::from(self.hold_time / 3).max(1)))
    }
}

/// An event for the FSM (section 8.1).
// Messages are moved in once per event; boxing them would cost an allocation per
// UPDATE on the hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Input {
    /// Event 1 (or 4 when configured passive): the operator starts the neighbor.
    ManualStart,
    /// Event 2: the operator stops the neighbor.
    ManualStop,
    /// Event 3 (or 5 when passive): the system starts the neighbor.
    AutomaticStart,
    /// Event 8: the system stops the neighbor, e.g. on too many prefixes. The
    /// NOTIFICATION to send (a Cease) is given.
    AutomaticStop(Notification),
    /// Events 9 to 13.
    TimerExpired(Timer),
    /// Events 16 and 17: the TCP connection is up (ours or the peer's).
    TcpConnected,
    /// Event 18: the TCP connection failed or closed.
    TcpFailed,
    /// Events 19, 25, 26, 27 and ROUTE-REFRESH: a message arrived and decoded.
    Message(Message),
    /// Events 21, 22 and 28: a message arrived and did not decode.
    Malformed(DecodeError),
    /// Event 23: collision detection chose the other connection.
    CollisionDump,
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Open a TCP connection to the neighbor.
    Connect,
    /// Close the TCP connection (after sending what was queued before).
    Disconnect,
    /// Send a message.
    Send(Message),
    /// Arm a timer; `jitter` asks for the 0.75..1.0 factor of section 10.
    StartTimer {
        /// Which timer.
        timer: Timer,
        /// How long.
        duration: Duration,
        /// Whether to apply jitter.
        jitter: bool,
    },
    /// Disarm a timer.
    StopTimer(Timer),
    /// The state changed.
    StateChanged {
        /// The state left.
        from: State,
        /// The state entered.
        to: State,
    },
    /// The session reached Established with these parameters.
    Established(Box<Negotiated>),
    /// The session left Established: its routes are to be removed (or kept stale
    /// by graceful restart). Carries the reason.
    Down(DownReason),
    /// An UPDATE for the RIB.
    Update(Update),
    /// The peer asks for a refresh (or marks its beginning or end).
    RouteRefresh(RouteRefresh),
}

/// Why a session went down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// We stopped it (manually or automatically), sending this NOTIFICATION.
    Stopped(Notification),
    /// The peer sent this NOTIFICATION.
    PeerNotification(Notification),
    /// We found an error and sent this NOTIFICATION.
    LocalError(Notification),
    /// The TCP connection went away.
    ConnectionLost,
}

/// Which connection survives a collision (section 6.8): the one initiated by
/// the speaker with the higher BGP identifier. Returns true when the connection
/// we initiated is to be kept.
pub fn resolve_collision(local_id: Ipv4Addr, remote_id: Ipv4Addr) -> bool {
    u32::from(local_id) > u32::from(remote_id)
}

/// Hold time used while waiting for the peer's OPEN (section 8.2.2: "a large
/// value", 4 minutes suggested).
pub const LARGE_HOLD_TIME: Duration = Duration::from_secs(240);

/// The state machine of one connection.
#[derive(Debug, Clone)]
pub struct Fsm {
    config: FsmConfig,
    state: State,
    connect_retry_counter: u32,
    delay_open_running: bool,
    negotiated: Option<Negotiated>,
    /// Whether the neighbor is administratively started (restarts automatically
    /// after failures until stopped).
    started: bool,
}

impl Fsm {
    /// A new FSM in Idle.
    pub fn new(config: FsmConfig) -> Self {
        Self {
            config,
            state: State::Idle,
            connect_retry_counter: 0,
            delay_open_running: false,
            negotiated: None,
            started: false,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The configuration.
    pub fn config(&self) -> &FsmConfig {
        &self.config
    }

    /// Replaces the configuration; takes effect at the next connection.
    pub fn set_config(&mut self, config: FsmConfig) {
        self.config = config;
    }

    /// What was negotiated, from OpenConfirm on.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// Whether the neighbor is started (administratively up): only then does the
    /// FSM leave Idle on its own or accept a connection.
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// Failed connection attempts in a row (section 8: ConnectRetryCounter).
    pub fn connect_retry_counter(&self) -> u32 {
        self.connect_retry_counter
    }

    /// Handles one event and returns what to do.
    pub fn handle(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        let before = self.state;
        self.step(input, &mut out);
        if self.state != before {
            out.push(Output::StateChanged {
                from: before,
                to: self.state,
            });
        }
        out
    }

    fn start(&self, timer: Timer, duration: Duration, jitter: bool, out: &mut Vec<Output>) {
        out.push(Output::StartTimer {
            timer,
            duration,
            jitter,
        });
    }

    fn start_connect_retry(&self, out: &mut Vec<Output>) {
        self.start(Timer::ConnectRetry, self.config.connect_retry, true, out);
    }

    fn send_open(&self, out: &mut Vec<Output>) {
        out.push(Output::Send(Message::Open(self.config.open())));
        self.start(Timer::Hold, LARGE_HOLD_TIME, false, out);
    }

    /// Connection is up: send OPEN now, or wait for the peer's under DelayOpen.
    fn connected(&mut self, out: &mut Vec<Output>) {
        out.push(Output::StopTimer(Timer::ConnectRetry));
        if let Some(delay) = self.config.delay_open {
            self.delay_open_running = true;
            self.start(Timer::DelayOpen, delay, false, out);
        } else {
            self.send_open(out);
            self.state = State::OpenSent;
        }
    }

    /// A valid OPEN arrived: agree on parameters, acknowledge with KEEPALIVE and
    /// go to OpenConfirm, or refuse it.
    fn open_received(&mut self, open: &Open, send_ours: bool, out: &mut Vec<Output>) {
        match Negotiated::new(&self.config, open) {
            Ok(n) => {
                out.push(Output::StopTimer(Timer::ConnectRetry));
                if self.delay_open_running {
                    self.delay_open_running = false;
                    out.push(Output::StopTimer(Timer::DelayOpen));
                }
                if send_ours {
                    out.push(Output::Send(Message::Open(self.config.open())));
                }
                out.push(Output::Send(Message::Keepalive));
                self.arm_session_timers(&n, out);
                self.negotiated = Some(n);
                self.state = State::OpenConfirm;
            }
            Err(notification) => self.fail(DownReason::LocalError(notification), out),
        }
    }

    fn arm_session_timers(&self, n: &Negotiated, out: &mut Vec<Output>) {
        match n.keepalive_interval() {
            Some(keepalive) => {
                self.start(Timer::Keepalive, keepalive, true, out);
                self.start(
                    Timer::Hold,
                    Duration::from_secs(u64::from(n.hold_time)),
                    false,
                    out,
                );
            }
            None => {
                out.push(Output::StopTimer(Timer::Keepalive));
                out.push(Output::StopTimer(Timer::Hold));
            }
        }
    }

    fn restart_hold(&self, out: &mut Vec<Output>) {
        if let Some(n) = &self.negotiated
            && n.hold_time > 0
        {
            self.start(
                Timer::Hold,
                Duration::from_secs(u64::from(n.hold_time)),
                false,
                out,
            );
        }
    }

    /// Back to Idle after an error: tell the peer why (if we have something to
    /// say), drop the connection, release resources, count the failure and
    /// schedule an automatic restart with back-off.
    fn fail(&mut self, reason: DownReason, out: &mut Vec<Output>) {
        if let DownReason::LocalError(n) | DownReason::Stopped(n) = &reason {
            out.push(Output::Send(Message::Notification(n.clone())));
        }
        self.connect_retry_counter = self.connect_retry_counter.saturating_add(1);
        self.enter_idle(reason, out);
        if self.started {
            let shift = self.connect_retry_counter.saturating_sub(1).min(16);
            let backoff = self
                .config
                .idle_hold
                .saturating_mul(1 << shift)
                .min(self.config.max_idle_hold);
            self.start(Timer::IdleHold, backoff, true, out);
        }
    }

    /// Stops every timer, drops the connection and reports the session down if
    /// it was up.
    fn enter_idle(&mut self, reason: DownReason, out: &mut Vec<Output>) {
        for t in [
            Timer::ConnectRetry,
            Timer::Hold,
            Timer::Keepalive,
            Timer::DelayOpen,
        ] {
            out.push(Output::StopTimer(t));
        }
        self.delay_open_running = false;
        out.push(Output::Disconnect);
        if self.state == State::Established {
            out.push(Output::Down(reason));
        }
        self.negotiated = None;
        self.state = State::Idle;
    }

    fn fsm_error(&self) -> Notification {
        let sub = match self.state {
            State::OpenSent => error_subcode::fsm::UNEXPECTED_IN_OPENSENT,
            State::OpenConfirm => error_subcode::fsm::UNEXPECTED_IN_OPENCONFIRM,
            State::Established => error_subcode::fsm::UNEXPECTED_IN_ESTABLISHED,
            _ => error_subcode::fsm::UNSPECIFIED,
        };
        Notification::new(error_code::FSM, sub)
    }

    fn step(&mut self, input: Input, out: &mut Vec<Output>) {
        use State::*;
        let cease = |sub| Notification::new(error_code::CEASE, sub);
        match (self.state, input) {
            // Idle: only a start (or the restart timer) does anything.
            (Idle, Input::ManualStart | Input::AutomaticStart) => {
                self.started = true;
                self.begin(out);
            }
            (Idle, Input::TimerExpired(Timer::IdleHold)) if self.started => self.begin(out),
            (Idle, Input::ManualStop) => {
                self.started = false;
                self.connect_retry_counter = 0;
                out.push(Output::StopTimer(Timer::IdleHold));
            }
            (Idle, _) => {}

            // A manual stop anywhere else: Cease, counter reset, no restart.
            (_, Input::ManualStop) => {
                self.started = false;
                let n = cease(error_subcode::cease::ADMINISTRATIVE_SHUTDOWN);
                if matches!(self.state, OpenSent | OpenConfirm | Established) {
                    out.push(Output::Send(Message::Notification(n.clone())));
                }
                self.enter_idle(DownReason::Stopped(n), out);
                self.connect_retry_counter = 0;
            }
            (Connect | Active, Input::AutomaticStop(_)) => {
                self.fail(DownReason::ConnectionLost, out);
            }
            (_, Input::AutomaticStop(n)) => self.fail(DownReason::Stopped(n), out),

            // Connect and Active: waiting for TCP.
            (Connect | Active, Input::ManualStart | Input::AutomaticStart) => {}
            (Connect, Input::TimerExpired(Timer::ConnectRetry)) => {
                self.delay_open_running = false;
                out.push(Output::StopTimer(Timer::DelayOpen));
                out.push(Output::Disconnect);
                self.start_connect_retry(out);
                out.push(Output::Connect);
            }
            (Active, Input::TimerExpired(Timer::ConnectRetry)) => {
                self.start_connect_retry(out);
                if !self.config.passive {
                    out.push(Output::Connect);
                    self.state = Connect;
                }
            }
            (Connect | Active, Input::TimerExpired(Timer::DelayOpen))
                if self.delay_open_running =>
            {
                self.delay_open_running = false;
                self.send_open(out);
                self.state = OpenSent;
            }
            (Connect | Active, Input::TcpConnected) if !self.delay_open_running => {
                self.connected(out)
            }
            (Connect, Input::TcpFailed) if self.delay_open_running => {
                self.delay_open_running = false;
                out.push(Output::StopTimer(Timer::DelayOpen));
                self.start_connect_retry(out);
                self.state = Active;
            }
            (Connect | Active, Input::TcpFailed) => self.fail(DownReason::ConnectionLost, out),
            (Connect | Active, Input::Message(Message::Open(open))) if self.delay_open_running => {
                self.open_received(&open, true, out);
            }
            (Connect | Active, Input::Malformed(e)) => {
                self.fail(DownReason::LocalError(e.notification()), out);
            }
            (Connect | Active, Input::Message(Message::Notification(n))) => {
                self.fail(DownReason::PeerNotification(n), out);
            }
            (Connect | Active, Input::TimerExpired(Timer::IdleHold)) => {}
            (Connect | Active, _) => self.fail(DownReason::ConnectionLost, out),

            // OpenSent: our OPEN is out, waiting for theirs.
            (OpenSent, Input::Message(Message::Open(open))) => {
                self.open_received(&open, false, out)
            }
            (OpenSent, Input::TcpFailed) => {
                // Section 8.2.2: back to Active to listen for the peer's retry.
                out.push(Output::Disconnect);
                out.push(Output::StopTimer(Timer::Hold));
                self.start_connect_retry(out);
                self.state = Active;
            }

            // OpenConfirm: waiting for the KEEPALIVE that confirms our OPEN.
            (OpenConfirm, Input::Message(Message::Keepalive)) => {
                self.restart_hold(out);
                self.state = Established;
                self.connect_retry_counter = 0;
                if let Some(n) = &self.negotiated {
                    out.push(Output::Established(Box::new(n.clone())));
                }
            }
            (OpenConfirm | Established, Input::TimerExpired(Timer::Keepalive)) => {
                out.push(Output::Send(Message::Keepalive));
                if let Some(k) = self
                    .negotiated
                    .as_ref()
                    .and_then(|n| n.keepalive_interval())
                {
                    self.start(Timer::Keepalive, k, true, out);
                }
            }

            // Established: routes flow.
            (Established, Input::Message(Message::Keepalive)) => self.restart_hold(out),
            (Established, Input::Message(Message::Update(u))) => {
                self.restart_hold(out);
                out.push(Output::Update(u));
            }
            (Established, Input::Message(Message::RouteRefresh(r))) => {
                self.restart_hold(out);
                out.push(Output::RouteRefresh(r));
            }
            // A second connection while this one is up or opening: collision
            // detection one level up decides; nothing changes here.
            (OpenSent | OpenConfirm | Established, Input::TcpConnected) => {}
            (OpenSent | OpenConfirm | Established, Input::ManualStart | Input::AutomaticStart) => {}

            // Failures common to OpenSent, OpenConfirm and Established.
            (_, Input::TimerExpired(Timer::Hold)) => {
                let n = Notification::new(error_code::HOLD_TIMER_EXPIRED, 0);
                self.fail(DownReason::LocalError(n), out);
            }
            (_, Input::CollisionDump) => {
                let n = cease(error_subcode::cease::CONNECTION_COLLISION_RESOLUTION);
                self.fail(DownReason::LocalError(n), out);
            }
            (_, Input::Malformed(e)) => self.fail(DownReason::LocalError(e.notification()), out),
            (_, Input::Message(Message::Notification(n))) => {
                self.fail(DownReason::PeerNotification(n), out);
            }
            (_, Input::TcpFailed) => self.fail(DownReason::ConnectionLost, out),
            (_, Input::TimerExpired(Timer::IdleHold)) => {}
            // Anything else is out of place: FSM error (RFC 6608).
            (_, _) => {
                let n = self.fsm_error();
                self.fail(DownReason::LocalError(n), out);
            }
        }
    }

    /// Idle to Connect (or Active when passive), section 8.2.2 events 1 to 5.
    fn begin(&mut self, out: &mut Vec<Output>) {
        // A restart timer left from an earlier failure must not fire later.
        out.push(Output::StopTimer(Timer::IdleHold));
        self.start_connect_retry(out);
        if self.config.passive {
            self.state = State::Active;
        } else {
            out.push(Output::Connect);
            self.state = State::Connect;
        }
    }
}
