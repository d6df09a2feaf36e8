//! The RFC 4271 section 8 state machine, driven without sockets or clocks: every
//! state against every kind of event, and the negotiation of the OPENs.

// A failed expectation in a test is a panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::time::Duration;

use bgp_core::fsm::{
    DownReason, Fsm, FsmConfig, Input, Negotiated, Output, RemoteAs, State, Timer,
    resolve_collision,
};
use bgp_core::wire::{
    AddPathFamily, AddPathMode, AfiSafi, Capability, Context, DecodeError, HeaderError, Message,
    Notification, Open, PeerKind, RouteRefresh, Update, error_code, error_subcode,
};

const LOCAL_AS: u32 = 65000;
const PEER_AS: u32 = 65001;

fn config() -> FsmConfig {
    FsmConfig::new(LOCAL_AS, Ipv4Addr::new(10, 0, 0, 1), RemoteAs::External)
}

fn peer_open(asn: u32, hold: u16) -> Open {
    Open::new(
        asn,
        hold,
        Ipv4Addr::new(10, 0, 0, 2),
        vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(asn),
        ],
    )
}

fn started(cfg: FsmConfig) -> Fsm {
    let mut f = Fsm::new(cfg);
    f.handle(Input::ManualStart);
    f
}

/// An FSM brought into `state` through the normal path.
fn in_state(state: State) -> Fsm {
    let mut f = match state {
        State::Active => {
            let mut cfg = config();
            cfg.passive = true;
            Fsm::new(cfg)
        }
        _ => Fsm::new(config()),
    };
    if state == State::Idle {
        return f;
    }
    f.handle(Input::ManualStart);
    if matches!(state, State::Connect | State::Active) {
        assert_eq!(f.state(), state);
        return f;
    }
    f.handle(Input::TcpConnected);
    if state == State::OpenSent {
        assert_eq!(f.state(), state);
        return f;
    }
    f.handle(Input::Message(Message::Open(peer_open(PEER_AS, 90))));
    if state == State::OpenConfirm {
        assert_eq!(f.state(), state);
        return f;
    }
    f.handle(Input::Message(Message::Keepalive));
    assert_eq!(f.state(), State::Established);
    f
}

fn sent(out: &[Output]) -> Vec<&Message> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(m) => Some(m),
            _ => None,
        })
        .collect()
}

fn notification(out: &[Output]) -> Option<&Notification> {
    sent(out).into_iter().find_map(|m| match m {
        Message::Notification(n) => Some(n),
        _ => None,
    })
}

fn started_timer(out: &[Output], timer: Timer) -> Option<Duration> {
    out.iter().find_map(|o| match o {
        Output::StartTimer {
            timer: t, duration, ..
        } if *t == timer => Some(*duration),
        _ => None,
    })
}

fn has(out: &[Output], want: &Output) -> bool {
    out.contains(want)
}

fn malformed() -> DecodeError {
    HeaderError::ConnectionNotSynchronized.into()
}

/// One row of the table: in `from`, `input` leads to `to`; `check` asserts on
/// the outputs.
fn row(from: State, input: Input, to: State, check: impl Fn(&[Output])) {
    let mut f = in_state(from);
    let out = f.handle(input.clone());
    assert_eq!(f.state(), to, "{from} + {input:?}: outputs {out:?}");
    check(&out);
    if from != to {
        assert!(
            has(&out, &Output::StateChanged { from, to }),
            "{from} -> {to} not reported: {out:?}"
        );
    }
}

fn none(_: &[Output]) {}

fn drops(out: &[Output]) {
    assert!(has(out, &Output::Disconnect), "no disconnect: {out:?}");
}

fn notifies(code: u8, subcode: u8) -> impl Fn(&[Output]) {
    move |out| {
        let n = notification(out).unwrap_or_else(|| panic!("no NOTIFICATION in {out:?}"));
        assert_eq!((n.code, n.subcode), (code, subcode), "{out:?}");
        drops(out);
    }
}

#[test]
fn idle_ignores_everything_but_start() {
    for input in [
        Input::TimerExpired(Timer::ConnectRetry),
        Input::TimerExpired(Timer::Hold),
        Input::TimerExpired(Timer::Keepalive),
        Input::TcpConnected,
        Input::TcpFailed,
        Input::Message(Message::Keepalive),
        Input::Malformed(malformed()),
        Input::ManualStop,
    ] {
        row(State::Idle, input, State::Idle, |out| {
            assert!(sent(out).is_empty())
        });
    }
}

#[test]
fn idle_start_connects_or_listens() {
    row(State::Idle, Input::ManualStart, State::Connect, |out| {
        assert!(has(out, &Output::Connect));
        assert_eq!(
            started_timer(out, Timer::ConnectRetry),
            Some(Duration::from_secs(30))
        );
    });
    row(State::Idle, Input::AutomaticStart, State::Connect, none);
    let mut cfg = config();
    cfg.passive = true;
    let mut f = Fsm::new(cfg);
    let out = f.handle(Input::ManualStart);
    assert_eq!(f.state(), State::Active);
    assert!(
        !has(&out, &Output::Connect),
        "a passive neighbor never connects out"
    );
}

#[test]
fn connect_state() {
    row(
        State::Connect,
        Input::TcpConnected,
        State::OpenSent,
        |out| {
            assert!(matches!(sent(out)[..], [Message::Open(_)]));
            assert_eq!(
                started_timer(out, Timer::Hold),
                Some(Duration::from_secs(240))
            );
            assert!(has(out, &Output::StopTimer(Timer::ConnectRetry)));
        },
    );
    row(
        State::Connect,
        Input::TimerExpired(Timer::ConnectRetry),
        State::Connect,
        |out| {
            assert!(has(out, &Output::Connect));
            assert!(started_timer(out, Timer::ConnectRetry).is_some());
        },
    );
    row(State::Connect, Input::TcpFailed, State::Idle, |out| {
        drops(out);
        assert!(
            started_timer(out, Timer::IdleHold).is_some(),
            "automatic restart scheduled"
        );
    });
    row(State::Connect, Input::ManualStop, State::Idle, |out| {
        assert!(
            sent(out).is_empty(),
            "nothing to tell a peer we never spoke to"
        );
        assert!(
            started_timer(out, Timer::IdleHold).is_none(),
            "a manual stop stays stopped"
        );
    });
    row(
        State::Connect,
        Input::Message(Message::Keepalive),
        State::Idle,
        drops,
    );
    row(
        State::Connect,
        Input::Malformed(malformed()),
        State::Idle,
        notifies(1, 1),
    );
    row(State::Connect, Input::ManualStart, State::Connect, none);
}

#[test]
fn active_state() {
    row(State::Active, Input::TcpConnected, State::OpenSent, |out| {
        assert!(matches!(sent(out)[..], [Message::Open(_)]));
    });
    row(
        State::Active,
        Input::TimerExpired(Timer::ConnectRetry),
        State::Active,
        |out| {
            assert!(!has(out, &Output::Connect), "passive: keeps listening");
        },
    );
    row(State::Active, Input::TcpFailed, State::Idle, drops);
    row(State::Active, Input::ManualStop, State::Idle, none);
    row(
        State::Active,
        Input::TimerExpired(Timer::Hold),
        State::Idle,
        drops,
    );
}

#[test]
fn active_retry_connects_when_not_passive() {
    // Connect -> OpenSent -> TCP fails -> Active, then the retry timer connects.
    let mut f = in_state(State::OpenSent);
    f.handle(Input::TcpFailed);
    assert_eq!(f.state(), State::Active);
    let out = f.handle(Input::TimerExpired(Timer::ConnectRetry));
    assert_eq!(f.state(), State::Connect);
    assert!(has(&out, &Output::Connect));
}

#[test]
fn open_sent_state() {
    row(
        State::OpenSent,
        Input::Message(Message::Open(peer_open(PEER_AS, 90))),
        State::OpenConfirm,
        |out| {
            assert_eq!(sent(out), vec![&Message::Keepalive]);
            assert_eq!(
                started_timer(out, Timer::Keepalive),
                Some(Duration::from_secs(30))
            );
            assert_eq!(
                started_timer(out, Timer::Hold),
                Some(Duration::from_secs(90))
            );
        },
    );
    // Bad peer AS: remote-as external refuses our own AS.
    row(
        State::OpenSent,
        Input::Message(Message::Open(peer_open(LOCAL_AS, 90))),
        State::Idle,
        notifies(error_code::OPEN_MESSAGE, error_subcode::open::BAD_PEER_AS),
    );
    row(
        State::OpenSent,
        Input::TimerExpired(Timer::Hold),
        State::Idle,
        notifies(4, 0),
    );
    row(State::OpenSent, Input::TcpFailed, State::Active, |out| {
        drops(out);
        assert!(started_timer(out, Timer::ConnectRetry).is_some());
    });
    row(
        State::OpenSent,
        Input::ManualStop,
        State::Idle,
        notifies(6, 2),
    );
    row(
        State::OpenSent,
        Input::CollisionDump,
        State::Idle,
        notifies(6, 7),
    );
    row(
        State::OpenSent,
        Input::Message(Message::Keepalive),
        State::Idle,
        notifies(5, 1),
    );
    row(
        State::OpenSent,
        Input::Message(Message::Update(Update::default())),
        State::Idle,
        notifies(5, 1),
    );
    row(
        State::OpenSent,
        Input::Malformed(malformed()),
        State::Idle,
        notifies(1, 1),
    );
    row(State::OpenSent, Input::TcpConnected, State::OpenSent, none);
    let peer_says = Notification::new(error_code::CEASE, error_subcode::cease::CONNECTION_REJECTED);
    row(
        State::OpenSent,
        Input::Message(Message::Notification(peer_says)),
        State::Idle,
        |out| {
            assert!(sent(out).is_empty(), "never answer a NOTIFICATION with one");
            drops(out);
        },
    );
}

#[test]
fn open_confirm_state() {
    row(
        State::OpenConfirm,
        Input::Message(Message::Keepalive),
        State::Established,
        |out| {
            assert!(
                out.iter()
                    .any(|o| matches!(o, Output::Established(n) if n.remote_as == PEER_AS))
            );
            assert_eq!(
                started_timer(out, Timer::Hold),
                Some(Duration::from_secs(90))
            );
        },
    );
    row(
        State::OpenConfirm,
        Input::TimerExpired(Timer::Keepalive),
        State::OpenConfirm,
        |out| {
            assert_eq!(sent(out), vec![&Message::Keepalive]);
            assert!(started_timer(out, Timer::Keepalive).is_some());
        },
    );
    row(
        State::OpenConfirm,
        Input::TimerExpired(Timer::Hold),
        State::Idle,
        notifies(4, 0),
    );
    row(
        State::OpenConfirm,
        Input::ManualStop,
        State::Idle,
        notifies(6, 2),
    );
    row(
        State::OpenConfirm,
        Input::CollisionDump,
        State::Idle,
        notifies(6, 7),
    );
    row(State::OpenConfirm, Input::TcpFailed, State::Idle, drops);
    row(
        State::OpenConfirm,
        Input::Message(Message::Update(Update::default())),
        State::Idle,
        notifies(5, 2),
    );
    row(
        State::OpenConfirm,
        Input::Message(Message::Open(peer_open(PEER_AS, 90))),
        State::Idle,
        notifies(5, 2),
    );
}

#[test]
fn established_state() {
    let update = Update::end_of_rib(AfiSafi::IPV6_UNICAST);
    row(
        State::Established,
        Input::Message(Message::Update(update.clone())),
        State::Established,
        |out| {
            assert!(has(out, &Output::Update(update.clone())));
            assert_eq!(
                started_timer(out, Timer::Hold),
                Some(Duration::from_secs(90))
            );
        },
    );
    row(
        State::Established,
        Input::Message(Message::Keepalive),
        State::Established,
        |out| {
            assert_eq!(
                started_timer(out, Timer::Hold),
                Some(Duration::from_secs(90))
            );
        },
    );
    let rr = RouteRefresh::request(AfiSafi::IPV4_UNICAST);
    row(
        State::Established,
        Input::Message(Message::RouteRefresh(rr)),
        State::Established,
        |out| {
            assert!(has(out, &Output::RouteRefresh(rr)));
        },
    );
    row(
        State::Established,
        Input::TimerExpired(Timer::Keepalive),
        State::Established,
        |out| {
            assert_eq!(sent(out), vec![&Message::Keepalive]);
        },
    );
    row(
        State::Established,
        Input::TimerExpired(Timer::Hold),
        State::Idle,
        |out| {
            notifies(4, 0)(out);
            assert!(
                out.iter()
                    .any(|o| matches!(o, Output::Down(DownReason::LocalError(n)) if n.code == 4))
            );
        },
    );
    row(State::Established, Input::ManualStop, State::Idle, |out| {
        notifies(6, 2)(out);
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Down(DownReason::Stopped(_))))
        );
    });
    row(State::Established, Input::TcpFailed, State::Idle, |out| {
        assert!(has(out, &Output::Down(DownReason::ConnectionLost)));
    });
    let cease = Notification::new(
        error_code::CEASE,
        error_subcode::cease::ADMINISTRATIVE_RESET,
    );
    row(
        State::Established,
        Input::Message(Message::Notification(cease.clone())),
        State::Idle,
        |out| {
            assert!(sent(out).is_empty());
            assert!(has(
                out,
                &Output::Down(DownReason::PeerNotification(cease.clone()))
            ));
        },
    );
    row(
        State::Established,
        Input::Message(Message::Open(peer_open(PEER_AS, 90))),
        State::Idle,
        notifies(5, 3),
    );
    row(
        State::Established,
        Input::Malformed(malformed()),
        State::Idle,
        notifies(1, 1),
    );
    let max = Notification::max_prefixes(AfiSafi::IPV4_UNICAST, 100);
    row(
        State::Established,
        Input::AutomaticStop(max),
        State::Idle,
        |out| {
            notifies(6, 1)(out);
            assert!(
                started_timer(out, Timer::IdleHold).is_some(),
                "an automatic stop restarts"
            );
        },
    );
    row(
        State::Established,
        Input::TcpConnected,
        State::Established,
        none,
    );
}

#[test]
fn hold_time_zero_means_no_keepalives() {
    let mut f = in_state(State::OpenSent);
    let out = f.handle(Input::Message(Message::Open(peer_open(PEER_AS, 0))));
    assert_eq!(f.state(), State::OpenConfirm);
    assert!(started_timer(&out, Timer::Keepalive).is_none());
    assert!(has(&out, &Output::StopTimer(Timer::Keepalive)));
    assert!(has(&out, &Output::StopTimer(Timer::Hold)));
    let out = f.handle(Input::Message(Message::Keepalive));
    assert_eq!(f.state(), State::Established);
    assert!(started_timer(&out, Timer::Hold).is_none());
    assert_eq!(f.negotiated().unwrap().keepalive_interval(), None);
}

#[test]
fn hold_time_is_the_smaller_proposal() {
    let mut f = in_state(State::OpenSent);
    f.handle(Input::Message(Message::Open(peer_open(PEER_AS, 9))));
    let n = f.negotiated().unwrap();
    assert_eq!(n.hold_time, 9);
    assert_eq!(n.keepalive_interval(), Some(Duration::from_secs(3)));
}

#[test]
fn delay_open_waits_for_the_peer() {
    let mut cfg = config();
    cfg.delay_open = Some(Duration::from_secs(5));
    let mut f = started(cfg.clone());
    let out = f.handle(Input::TcpConnected);
    assert_eq!(f.state(), State::Connect);
    assert!(sent(&out).is_empty());
    assert_eq!(
        started_timer(&out, Timer::DelayOpen),
        Some(Duration::from_secs(5))
    );
    // The peer's OPEN arrives first: answer with OPEN and KEEPALIVE at once.
    let out = f.handle(Input::Message(Message::Open(peer_open(PEER_AS, 90))));
    assert_eq!(f.state(), State::OpenConfirm);
    assert!(matches!(
        sent(&out)[..],
        [Message::Open(_), Message::Keepalive]
    ));
    assert!(has(&out, &Output::StopTimer(Timer::DelayOpen)));

    // Or the delay runs out: send OPEN and wait in OpenSent.
    let mut f = started(cfg.clone());
    f.handle(Input::TcpConnected);
    let out = f.handle(Input::TimerExpired(Timer::DelayOpen));
    assert_eq!(f.state(), State::OpenSent);
    assert!(matches!(sent(&out)[..], [Message::Open(_)]));

    // A connection failure during the delay goes back to listening.
    let mut f = started(cfg);
    f.handle(Input::TcpConnected);
    f.handle(Input::TcpFailed);
    assert_eq!(f.state(), State::Active);
}

#[test]
fn restart_backs_off_and_resets_after_established() {
    let mut f = started(config());
    let mut waits = Vec::new();
    for _ in 0..8 {
        let out = f.handle(Input::TcpFailed);
        assert_eq!(f.state(), State::Idle);
        waits.push(started_timer(&out, Timer::IdleHold).unwrap().as_secs());
        f.handle(Input::TimerExpired(Timer::IdleHold));
        assert_eq!(f.state(), State::Connect);
    }
    assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 60, 60]);
    f.handle(Input::TcpConnected);
    f.handle(Input::Message(Message::Open(peer_open(PEER_AS, 90))));
    f.handle(Input::Message(Message::Keepalive));
    assert_eq!(f.connect_retry_counter(), 0);
    let out = f.handle(Input::TcpFailed);
    assert_eq!(
        started_timer(&out, Timer::IdleHold),
        Some(Duration::from_secs(1))
    );
}

#[test]
fn stopped_fsm_does_not_restart() {
    let mut f = started(config());
    f.handle(Input::TcpFailed);
    f.handle(Input::ManualStop);
    f.handle(Input::TimerExpired(Timer::IdleHold));
    assert_eq!(f.state(), State::Idle);
}

#[test]
fn remote_as_rules() {
    let local = LOCAL_AS;
    assert!(RemoteAs::External.admits(65001, local));
    assert!(!RemoteAs::External.admits(local, local));
    assert!(RemoteAs::Internal.admits(local, local));
    assert!(!RemoteAs::Internal.admits(65001, local));
    assert!(RemoteAs::Any.admits(local, local));
    assert!(RemoteAs::Number(7).admits(7, local) && !RemoteAs::Number(7).admits(8, local));
    assert!(RemoteAs::Range(64512, 65534).admits(65001, local));
    assert!(!RemoteAs::Range(64512, 65534).admits(4_200_000_000, local));
}

#[test]
fn negotiation() {
    let mut cfg = config();
    cfg.capabilities.push(Capability::ExtendedMessage);
    cfg.capabilities
        .push(Capability::AddPath(vec![AddPathFamily {
            family: AfiSafi::IPV4_UNICAST,
            mode: AddPathMode::Both,
        }]));
    let mut theirs = peer_open(4_200_000_001, 30);
    theirs
        .capabilities
        .push(Capability::AddPath(vec![AddPathFamily {
            family: AfiSafi::IPV4_UNICAST,
            mode: AddPathMode::Send,
        }]));
    let n = Negotiated::new(&cfg, &theirs).unwrap();
    assert_eq!(n.remote_as, 4_200_000_001);
    assert_eq!(n.families, vec![AfiSafi::IPV4_UNICAST]);
    assert!(n.route_refresh && !n.enhanced_route_refresh);
    assert!(n.rx.four_octet_as && n.tx.four_octet_as);
    // We advertised extended messages, they did not: we may receive them only.
    assert!(n.rx.extended_message && !n.tx.extended_message);
    // They send multiple paths, we receive them; not the other way round.
    assert!(n.rx.add_path.contains(AfiSafi::IPV4_UNICAST));
    assert!(!n.tx.add_path.contains(AfiSafi::IPV4_UNICAST));
    assert_eq!(n.rx.peer, PeerKind::External(4_200_000_001));

    // A peer without MP capabilities speaks IPv4 unicast only (RFC 4760).
    let legacy = Open::new(65001, 90, Ipv4Addr::new(10, 0, 0, 2), vec![]);
    let n = Negotiated::new(&config(), &legacy).unwrap();
    assert_eq!(n.families, vec![AfiSafi::IPV4_UNICAST]);
    assert_eq!(
        n.rx,
        Context {
            peer: PeerKind::External(65001),
            ..Context::LEGACY
        }
    );

    // My AS must agree with the 4-octet capability unless it is AS_TRANS.
    let mut liar = peer_open(65001, 90);
    liar.capabilities
        .retain(|c| !matches!(c, Capability::FourOctetAs(_)));
    liar.capabilities.push(Capability::FourOctetAs(65002));
    assert_eq!(
        Negotiated::new(&config(), &liar).unwrap_err().subcode,
        error_subcode::open::BAD_PEER_AS
    );

    // iBGP with our own identifier is refused (RFC 6286).
    let mut ibgp = config();
    ibgp.remote_as = RemoteAs::Internal;
    let twin = Open::new(LOCAL_AS, 90, Ipv4Addr::new(10, 0, 0, 1), vec![]);
    assert_eq!(
        Negotiated::new(&ibgp, &twin).unwrap_err().subcode,
        error_subcode::open::BAD_BGP_IDENTIFIER
    );
}

#[test]
fn collision_keeps_the_higher_identifier_s_connection() {
    let low = Ipv4Addr::new(10, 0, 0, 1);
    let high = Ipv4Addr::new(10, 0, 0, 2);
    assert!(resolve_collision(high, low), "we are higher: keep ours");
    assert!(
        !resolve_collision(low, high),
        "they are higher: keep theirs"
    );
}

#[test]
fn a_stale_restart_timer_does_not_abort_a_new_attempt() {
    let mut f = started(config());
    f.handle(Input::TcpFailed); // Idle, restart timer armed
    let out = f.handle(Input::AutomaticStart); // restarted by a connection
    assert!(has(&out, &Output::StopTimer(Timer::IdleHold)));
    assert_eq!(f.state(), State::Connect);
    // Had the timer still fired, the attempt must go on regardless.
    f.handle(Input::TimerExpired(Timer::IdleHold));
    assert_eq!(f.state(), State::Connect);
}
