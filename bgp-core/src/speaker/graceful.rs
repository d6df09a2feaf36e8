//! Graceful restart in the speaker: the capabilities we advertise, the
//! helper's keeping of a restarting neighbor's routes (RFC 4724, with the N
//! bit of RFC 8538 and the long-lived phase of RFC 9494), and the restarting
//! speaker's deferral of route selection.
//!
//! When a neighbor's session ends and graceful restart applies, each family
//! of its routes goes through phases, each with a deadline:
//!
//! ```text
//!            restart time                 long-lived stale time
//! session ─▶ Restart ─────────────────▶ LongLived ─────────────────▶ dropped
//!  down        │  (straight to LongLived    │  (LLGR_STALE added,
//!              │   when only RFC 9494       │   NO_LLGR dropped)
//!              │   covers the family)       │
//!              └──────── session back ──────┴─▶ Refreshing ─▶ End-of-RIB:
//!                        (F bit set again)         the paths not sent
//!                                                  again are dropped
//! ```
//!
//! The paths stay in the RIB unchanged while they wait (see
//! [`StalePaths`]), so a FIB installer sees nothing of a restart that ends
//! well. The decisions are pure functions of what both OPENs said and of why
//! the session ended ([`PeerGr`], [`keeps_routes`]); the `SpeakerTask`
//! methods at the end apply them.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use ipnet::{Ipv4Net, Ipv6Net};
use tokio::time::Instant;
use tracing::info;

use super::config::GracefulRestartConfig;
use super::neighbor::Control;
use super::outq::FxMap;
use super::{Event, Family, SpeakerTask, canonical, fsm_config};
use crate::fsm::DownReason;
use crate::rib::{PeerId, StalePaths};
use crate::wire::{
    AfiSafi, Capability, GracefulRestart, GracefulRestartFamily, LlgrFamily, Notification,
    Prefixes, Update, error_code, error_subcode,
};

/// The capabilities we advertise for `families`: graceful restart (the
/// families listed, with F, only when forwarding is preserved) and
/// long-lived graceful restart (always, so that we are its helper).
pub(crate) fn capabilities(gr: &GracefulRestartConfig, families: &[AfiSafi]) -> [Capability; 2] {
    let restart_time = gr.restart_time.as_secs().min(0x0fff) as u16;
    let stale_time = gr.long_lived_stale_time.as_secs().min(0x00ff_ffff) as u32;
    [
        Capability::GracefulRestart(GracefulRestart {
            restart_state: gr.restarting,
            notification: gr.notification,
            restart_time,
            families: if gr.preserved_forwarding {
                families
                    .iter()
                    .map(|&family| GracefulRestartFamily {
                        family,
                        forwarding: true,
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }),
        Capability::LongLivedGracefulRestart(
            families
                .iter()
                .map(|&family| LlgrFamily {
                    family,
                    forwarding: gr.preserved_forwarding,
                    stale_time,
                })
                .collect(),
        ),
    ]
}

fn graceful_restart(caps: &[Capability]) -> Option<&GracefulRestart> {
    caps.iter().find_map(|c| match c {
        Capability::GracefulRestart(g) => Some(g),
        _ => None,
    })
}

/// Whether both OPENs set the N bit (RFC 8538).
pub(crate) fn notification_negotiated(ours: &[Capability], theirs: &[Capability]) -> bool {
    graceful_restart(ours).is_some_and(|g| g.notification)
        && graceful_restart(theirs).is_some_and(|g| g.notification)
}

/// Whether we may send long-lived stale routes to a neighbor whose OPEN had
/// `theirs`: both advertised the long-lived capability (RFC 9494 section
/// 4.5), which we do whenever graceful restart is configured.
pub(crate) fn long_lived_negotiated(
    ours: Option<&GracefulRestartConfig>,
    theirs: &[Capability],
) -> bool {
    ours.is_some()
        && theirs
            .iter()
            .any(|c| matches!(c, Capability::LongLivedGracefulRestart(_)))
}

/// A Cease we send that ends a session for good (RFC 8538 section 5.1, as
/// FRR reads it): maximum prefixes, administrative shutdown, peer
/// de-configured, administrative reset.
fn ends_for_good(n: &Notification) -> bool {
    use error_subcode::cease::{
        ADMINISTRATIVE_RESET, ADMINISTRATIVE_SHUTDOWN, MAX_PREFIXES, PEER_DECONFIGURED,
    };
    n.code == error_code::CEASE
        && matches!(
            n.subcode,
            MAX_PREFIXES | ADMINISTRATIVE_SHUTDOWN | PEER_DECONFIGURED | ADMINISTRATIVE_RESET
        )
}

fn is_hard_reset(n: &Notification) -> bool {
    n.code == error_code::CEASE && n.subcode == error_subcode::cease::HARD_RESET
}

/// What to send, with the N bit negotiated, for the NOTIFICATION `n`: a Cease
/// that ends the session for good goes inside a Hard Reset (RFC 8538 section
/// 3: its code, subcode and data as the Hard Reset's data), so that the
/// neighbor drops our routes; any other NOTIFICATION as it is.
pub(crate) fn with_hard_reset(n: Notification) -> Notification {
    if !ends_for_good(&n) {
        return n;
    }
    let mut data = BytesMut::with_capacity(2 + n.data.len());
    data.put_u8(n.code);
    data.put_u8(n.subcode);
    data.put_slice(&n.data);
    Notification::with_data(
        error_code::CEASE,
        error_subcode::cease::HARD_RESET,
        data.freeze(),
    )
}

/// Whether a neighbor's routes outlive a session that ended for `reason`:
/// a lost connection, or a neighbor gone silent (our hold timer expired),
/// always; any other NOTIFICATION, either way, only with the N bit
/// (`notification`), and never a Hard Reset, received or (as we send our
/// final Ceases then) sent; never when we stopped the session (removal,
/// shutdown, reconfiguration).
pub(crate) fn keeps_routes(reason: &DownReason, notification: bool) -> bool {
    match reason {
        DownReason::ConnectionLost => true,
        DownReason::LocalError(n) if n.code == error_code::HOLD_TIMER_EXPIRED => true,
        DownReason::PeerNotification(n) => notification && !is_hard_reset(n),
        DownReason::LocalError(n) => notification && !is_hard_reset(n) && !ends_for_good(n),
        DownReason::Stopped(_) => false,
    }
}

/// Where a family's kept routes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Kept as they were, for the neighbor's restart time (RFC 4724).
    Restart,
    /// Kept least preferred with LLGR_STALE, for its long-lived stale time
    /// (RFC 9494).
    LongLived,
    /// The session is back: kept until the family's End-of-RIB.
    Refreshing,
}

/// What a neighbor's OPEN promised about graceful restart, given that we
/// advertised it too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PeerGr {
    /// Its restart time.
    restart_time: Duration,
    /// Both set the N bit.
    notification: bool,
    /// It set the R bit: it is restarting itself.
    restarting: bool,
    /// The families of its graceful restart capability, with their F bit.
    families: Vec<(AfiSafi, bool)>,
    /// The families of its long-lived capability: stale time and F bit.
    long_lived: Vec<(AfiSafi, Duration, bool)>,
}

impl PeerGr {
    /// What was agreed, or `None` when either side did not advertise graceful
    /// restart (a long-lived capability without it is ignored, RFC 9494
    /// section 4.1).
    pub(crate) fn negotiate(
        ours: Option<&GracefulRestartConfig>,
        theirs: &[Capability],
    ) -> Option<Self> {
        let ours = ours?;
        let gr = graceful_restart(theirs)?;
        let long_lived = theirs
            .iter()
            .find_map(|c| match c {
                Capability::LongLivedGracefulRestart(v) => Some(v),
                _ => None,
            })
            .map(|v| {
                v.iter()
                    .map(|f| {
                        (
                            f.family,
                            Duration::from_secs(u64::from(f.stale_time)),
                            f.forwarding,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            restart_time: Duration::from_secs(u64::from(gr.restart_time)),
            notification: ours.notification && gr.notification,
            restarting: gr.restart_state,
            families: gr
                .families
                .iter()
                .map(|f| (f.family, f.forwarding))
                .collect(),
            long_lived,
        })
    }

    fn long_lived(&self, family: AfiSafi) -> Option<Duration> {
        self.long_lived
            .iter()
            .find(|(f, t, _)| *f == family && !t.is_zero())
            .map(|(_, t, _)| *t)
    }

    /// The first phase of `family`'s routes when the session ends, and its
    /// length; `None`: they go at once.
    pub(crate) fn on_down(&self, family: AfiSafi) -> Option<(Phase, Duration)> {
        if !self.restart_time.is_zero() && self.families.iter().any(|(f, _)| *f == family) {
            return Some((Phase::Restart, self.restart_time));
        }
        self.long_lived(family).map(|t| (Phase::LongLived, t))
    }

    /// The phase after `phase` timed out; `None`: the routes go.
    pub(crate) fn after(&self, phase: Phase, family: AfiSafi) -> Option<(Phase, Duration)> {
        match phase {
            Phase::Restart => self.long_lived(family).map(|t| (Phase::LongLived, t)),
            Phase::LongLived | Phase::Refreshing => None,
        }
    }
}

/// Whether `family`'s routes kept in `phase` stay, until End-of-RIB, now
/// that the session is back with `new`: the family is negotiated and the
/// neighbor kept its forwarding state (F bit of the capability of the phase,
/// RFC 4724 section 4.2, RFC 9494 section 4.2).
pub(crate) fn keeps_on_return(
    phase: Phase,
    new: Option<&PeerGr>,
    family: AfiSafi,
    negotiated: &[AfiSafi],
) -> bool {
    let Some(new) = new else {
        return false;
    };
    if !negotiated.contains(&family) {
        return false;
    }
    match phase {
        Phase::LongLived => new
            .long_lived
            .iter()
            .any(|&(f, _, forwarding)| f == family && forwarding),
        Phase::Restart | Phase::Refreshing => new
            .families
            .iter()
            .any(|&(f, forwarding)| f == family && forwarding),
    }
}

/// One family's kept routes of one neighbor.
#[derive(Debug)]
pub(crate) struct Kept<P> {
    paths: StalePaths<P>,
    phase: Phase,
    until: Instant,
}

/// A neighbor's kept routes.
#[derive(Debug, Default)]
pub(crate) struct PeerStale {
    gr: PeerGr,
    v4: Option<Kept<Ipv4Net>>,
    v6: Option<Kept<Ipv6Net>>,
}

impl PeerStale {
    fn len(&self) -> usize {
        self.v4.as_ref().map_or(0, |k| k.paths.len())
            + self.v6.as_ref().map_or(0, |k| k.paths.len())
    }

    fn next_deadline(&self) -> Option<Instant> {
        let a = self.v4.as_ref().map(|k| k.until);
        let b = self.v6.as_ref().map(|k| k.until);
        a.into_iter().chain(b).min()
    }
}

/// The per-family slot of [`PeerStale`].
trait KeptFamily: Family {
    fn kept(s: &mut PeerStale) -> &mut Option<Kept<Self>>;
}

impl KeptFamily for Ipv4Net {
    fn kept(s: &mut PeerStale) -> &mut Option<Kept<Self>> {
        &mut s.v4
    }
}

impl KeptFamily for Ipv6Net {
    fn kept(s: &mut PeerStale) -> &mut Option<Kept<Self>> {
        &mut s.v6
    }
}

/// The restarting speaker's wait for its neighbors (RFC 4724 section 4.1).
#[derive(Debug)]
struct Deferral {
    until: Instant,
    /// Dynamic neighbors waited for, besides every configured one.
    wait_for: Vec<IpAddr>,
    /// Up, and the families whose End-of-RIB is still to come.
    waiting: FxMap<PeerId, Vec<AfiSafi>>,
    /// Done: End-of-RIB for every family, or nothing to wait for.
    done: HashSet<PeerId>,
}

/// The speaker's graceful restart state.
#[derive(Debug, Default)]
pub(crate) struct Graceful {
    stale: FxMap<PeerId, PeerStale>,
    deferral: Option<Deferral>,
}

impl Graceful {
    /// The state of a speaker starting with `config`: deferring route
    /// selection when it is restarting.
    pub(crate) fn new(config: Option<&GracefulRestartConfig>) -> Self {
        Self {
            stale: FxMap::default(),
            deferral: config.filter(|c| c.restarting).map(|c| Deferral {
                until: Instant::now() + c.selection_deferral,
                wait_for: c.wait_for.iter().map(|a| canonical(*a)).collect(),
                waiting: FxMap::default(),
                done: HashSet::new(),
            }),
        }
    }

    /// Whether route selection is deferred (we are restarting).
    pub(crate) fn deferring(&self) -> bool {
        self.deferral.is_some()
    }

    /// When the next phase ends.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let d = self.deferral.as_ref().map(|d| d.until);
        self.stale
            .values()
            .filter_map(PeerStale::next_deadline)
            .chain(d)
            .min()
    }
}

/// Sleeps until `deadline`, or forever without one.
pub(crate) async fn sleep(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

impl SpeakerTask {
    /// The session of `peer` ended for `reason`: keeps what graceful restart
    /// lets it keep and withdraws the families it does not. Returns whether
    /// anything is kept; if not, nothing was touched.
    pub(super) fn gr_session_down(&mut self, peer: PeerId, reason: &DownReason) -> bool {
        let Some(n) = self.neighbors.get(&peer) else {
            return false;
        };
        let Some(session) = n.session.as_ref() else {
            return false;
        };
        if n.dynamic_range.is_some() {
            return false;
        }
        let Some(gr) = PeerGr::negotiate(
            self.config.graceful_restart.as_ref(),
            &session.negotiated.remote_open.capabilities,
        ) else {
            return false;
        };
        if !keeps_routes(reason, gr.notification) {
            return false;
        }
        let plan4 = gr.on_down(AfiSafi::IPV4_UNICAST);
        let plan6 = gr.on_down(AfiSafi::IPV6_UNICAST);
        if plan4.is_none() && plan6.is_none() {
            return false;
        }
        let address = canonical(n.config.address);
        let now = Instant::now();
        let v4 = self.start_keeping::<Ipv4Net>(peer, plan4, now);
        let v6 = self.start_keeping::<Ipv6Net>(peer, plan6, now);
        let kept = PeerStale { gr, v4, v6 };
        info!(
            peer = %address,
            ipv4 = ?plan4, ipv6 = ?plan6,
            "graceful restart: keeping {} routes", kept.len()
        );
        self.gr.stale.insert(peer, kept);
        self.sync_stale(peer);
        true
    }

    fn start_keeping<P: KeptFamily>(
        &mut self,
        peer: PeerId,
        plan: Option<(Phase, Duration)>,
        now: Instant,
    ) -> Option<Kept<P>> {
        let Some((phase, length)) = plan else {
            self.drop_family::<P>(peer);
            return None;
        };
        let mut paths = StalePaths::<P>::mark(&self.rib, peer);
        if paths.is_empty() {
            return None;
        }
        if phase == Phase::LongLived {
            self.make_long_lived(peer, &mut paths);
        }
        Some(Kept {
            paths,
            phase,
            until: now + length,
        })
    }

    /// Withdraws every route of `peer` in one family.
    fn drop_family<P: Family>(&mut self, peer: PeerId) {
        let mut changes = Vec::new();
        self.rib.withdraw_peer::<P>(peer, &mut changes);
        if let Some(n) = self.neighbors.get_mut(&peer) {
            let had = n.accepted_by_family[P::INDEX] as usize;
            n.count_accepted::<P>(0, had);
            P::adj_in(&mut n.adj_in).clear();
        }
        self.propagate(changes);
    }

    fn make_long_lived<P: Family>(&mut self, peer: PeerId, paths: &mut StalePaths<P>) {
        let mut changes = Vec::new();
        let dropped = self.rib.mark_long_lived(peer, paths, &mut changes);
        self.remove(peer, &dropped, &mut changes);
        self.propagate(changes);
    }

    /// Withdraws the paths still stale.
    fn sweep<P: Family>(&mut self, peer: PeerId, paths: &mut StalePaths<P>, why: &str) {
        let gone = paths.take();
        if gone.is_empty() {
            return;
        }
        if let Some(n) = self.neighbors.get(&peer) {
            info!(
                peer = %canonical(n.config.address), family = %P::FAMILY,
                "graceful restart: dropping {} stale routes ({why})", gone.len()
            );
        }
        let mut changes = Vec::new();
        self.remove(peer, &gone, &mut changes);
        self.propagate(changes);
    }

    /// Copies the count of kept routes into the neighbor's counters, and
    /// forgets a neighbor with none left.
    fn sync_stale(&mut self, peer: PeerId) {
        let count = self.gr.stale.get(&peer).map_or(0, PeerStale::len);
        if count == 0 {
            self.gr.stale.remove(&peer);
        }
        if let Some(n) = self.neighbors.get_mut(&peer) {
            n.counters.stale = count as u64;
        }
        self.sync_metrics(peer);
    }

    /// The session of `peer` is up again (its `session` set): its kept
    /// routes wait for End-of-RIB, or go at once if it did not keep its
    /// forwarding state. While we are restarting, it is counted in or out
    /// of the wait. Returns whether route selection was deferred: then its
    /// initial routes are sent when the deferral ends (now, perhaps).
    pub(super) fn gr_session_up(&mut self, peer: PeerId) -> bool {
        let Some(n) = self.neighbors.get(&peer) else {
            return false;
        };
        let Some(session) = n.session.as_ref() else {
            return false;
        };
        let new = PeerGr::negotiate(
            self.config.graceful_restart.as_ref(),
            &session.negotiated.remote_open.capabilities,
        );
        let families = session.negotiated.families.clone();
        let address = canonical(n.config.address);
        if let Some(mut st) = self.gr.stale.remove(&peer) {
            let until = Instant::now()
                + self
                    .config
                    .graceful_restart
                    .as_ref()
                    .map_or(Duration::ZERO, |c| c.stale_routes_time);
            st.v4 = self.on_return::<Ipv4Net>(peer, st.v4.take(), new.as_ref(), &families, until);
            st.v6 = self.on_return::<Ipv6Net>(peer, st.v6.take(), new.as_ref(), &families, until);
            st.gr = new.clone().unwrap_or_default();
            self.gr.stale.insert(peer, st);
            self.sync_stale(peer);
        }
        let Some(d) = self.gr.deferral.as_mut() else {
            return false;
        };
        match &new {
            Some(g) if g.restarting => {
                d.done.insert(peer);
            }
            None if !d.wait_for.contains(&address) => {
                d.done.insert(peer);
            }
            _ => {
                d.waiting.insert(peer, families);
            }
        }
        self.check_deferral();
        true
    }

    fn on_return<P: KeptFamily>(
        &mut self,
        peer: PeerId,
        kept: Option<Kept<P>>,
        new: Option<&PeerGr>,
        negotiated: &[AfiSafi],
        until: Instant,
    ) -> Option<Kept<P>> {
        let mut kept = kept?;
        if keeps_on_return(kept.phase, new, P::FAMILY, negotiated) {
            kept.phase = Phase::Refreshing;
            kept.until = until;
            return Some(kept);
        }
        self.sweep(peer, &mut kept.paths, "back without its forwarding state");
        None
    }

    /// An UPDATE from `peer`: whatever it names is no longer stale.
    pub(super) fn gr_refresh(&mut self, peer: PeerId, update: &Update) {
        let Some(st) = self.gr.stale.get_mut(&peer) else {
            return;
        };
        let before = st.len();
        if let Some(k) = st.v4.as_mut() {
            for n in update.withdrawn.iter().chain(&update.nlri) {
                k.paths.refresh(n);
            }
        }
        let mp = [
            update.mp_reach.as_ref().map(|r| &r.nlri),
            update.mp_unreach.as_ref().map(|u| &u.withdrawn),
        ];
        for prefixes in mp.into_iter().flatten() {
            match prefixes {
                Prefixes::V4(v) => {
                    if let Some(k) = st.v4.as_mut() {
                        for n in v {
                            k.paths.refresh(n);
                        }
                    }
                }
                Prefixes::V6(v) => {
                    if let Some(k) = st.v6.as_mut() {
                        for n in v {
                            k.paths.refresh(n);
                        }
                    }
                }
                Prefixes::Other(_) => {}
            }
        }
        if st.len() != before {
            self.sync_stale(peer);
        }
    }

    /// End-of-RIB from `peer` for `family`: its routes there that it did not
    /// send again go; a restarting speaker counts it.
    pub(super) fn gr_end_of_rib(&mut self, peer: PeerId, family: AfiSafi) {
        if family == AfiSafi::IPV4_UNICAST {
            self.sweep_family::<Ipv4Net>(peer, "End-of-RIB");
        } else if family == AfiSafi::IPV6_UNICAST {
            self.sweep_family::<Ipv6Net>(peer, "End-of-RIB");
        }
        let Some(d) = self.gr.deferral.as_mut() else {
            return;
        };
        if let Some(w) = d.waiting.get_mut(&peer) {
            w.retain(|f| *f != family);
            if w.is_empty() {
                d.waiting.remove(&peer);
                d.done.insert(peer);
            }
        }
        self.check_deferral();
    }

    fn sweep_family<P: KeptFamily>(&mut self, peer: PeerId, why: &str) {
        let Some(mut kept) = self.gr.stale.get_mut(&peer).and_then(|s| P::kept(s).take()) else {
            return;
        };
        self.sweep(peer, &mut kept.paths, why);
        self.sync_stale(peer);
    }

    /// A new import policy was applied to the soft-reconfiguration copy of
    /// `peer`'s routes, which does not know of LLGR_STALE: routes in the
    /// long-lived phase are marked again.
    pub(super) fn gr_after_reimport(&mut self, peer: PeerId) {
        self.remark_long_lived::<Ipv4Net>(peer);
        self.remark_long_lived::<Ipv6Net>(peer);
        self.sync_stale(peer);
    }

    fn remark_long_lived<P: KeptFamily>(&mut self, peer: PeerId) {
        let Some(slot) = self.gr.stale.get_mut(&peer).map(P::kept) else {
            return;
        };
        if slot.as_ref().is_none_or(|k| k.phase != Phase::LongLived) {
            return;
        }
        let Some(mut kept) = slot.take() else {
            return;
        };
        self.make_long_lived(peer, &mut kept.paths);
        if let Some(st) = self.gr.stale.get_mut(&peer) {
            *P::kept(st) = Some(kept);
        }
    }

    /// Forgets what is kept of `peer` (its routes are being withdrawn).
    pub(super) fn gr_forget(&mut self, peer: PeerId) {
        self.gr.stale.remove(&peer);
        if let Some(n) = self.neighbors.get_mut(&peer) {
            n.counters.stale = 0;
        }
    }

    /// A deadline passed: phases move on, the deferral may end.
    pub(super) fn gr_tick(&mut self) {
        self.sync_report_paths();
        let now = Instant::now();
        if self.gr.deferral.as_ref().is_some_and(|d| d.until <= now) {
            self.end_deferral("selection deferral time over");
        }
        let due: Vec<PeerId> = self
            .gr
            .stale
            .iter()
            .filter(|(_, s)| s.next_deadline().is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for peer in due {
            self.advance::<Ipv4Net>(peer, now);
            self.advance::<Ipv6Net>(peer, now);
            self.sync_stale(peer);
        }
    }

    fn advance<P: KeptFamily>(&mut self, peer: PeerId, now: Instant) {
        let Some(st) = self.gr.stale.get_mut(&peer) else {
            return;
        };
        let gr = st.gr.clone();
        let slot = P::kept(st);
        if slot.as_ref().is_none_or(|k| k.until > now) {
            return;
        }
        let Some(mut kept) = slot.take() else {
            return;
        };
        match gr.after(kept.phase, P::FAMILY) {
            Some((phase, length)) => {
                if let Some(n) = self.neighbors.get(&peer) {
                    info!(
                        peer = %canonical(n.config.address), family = %P::FAMILY,
                        "graceful restart: restart time over, {} routes long-lived stale for {length:?}",
                        kept.paths.len()
                    );
                }
                self.make_long_lived(peer, &mut kept.paths);
                kept.phase = phase;
                kept.until = now + length;
                if let Some(st) = self.gr.stale.get_mut(&peer) {
                    *P::kept(st) = Some(kept);
                }
            }
            None => {
                let why = match kept.phase {
                    Phase::Restart => "restart time over",
                    Phase::LongLived => "long-lived stale time over",
                    Phase::Refreshing => "no End-of-RIB in time",
                };
                self.sweep(peer, &mut kept.paths, why);
            }
        }
    }

    /// Ends the deferral if every neighbor waited for is done.
    fn check_deferral(&mut self) {
        let Some(d) = self.gr.deferral.as_ref() else {
            return;
        };
        let all_done = self.neighbors.values().all(|n| {
            let waited =
                n.dynamic_range.is_none() || d.wait_for.contains(&canonical(n.config.address));
            !waited || d.done.contains(&n.id)
        }) && d.wait_for.iter().all(|a| self.by_addr.contains_key(a));
        if all_done {
            self.end_deferral("End-of-RIB from every neighbor");
        }
    }

    /// Route selection resumes: the whole table is reported, later sessions
    /// no longer set the R bit, and every neighbor up gets its routes and
    /// End-of-RIB.
    fn end_deferral(&mut self, why: &str) {
        if self.gr.deferral.take().is_none() {
            return;
        }
        info!("graceful restart: route selection resumes ({why})");
        if let Some(c) = self.config.graceful_restart.as_mut() {
            c.restarting = false;
            c.wait_for.clear();
        }
        if self.events.receiver_count() > 0 {
            self.report_table::<Ipv4Net>();
            self.report_table::<Ipv6Net>();
        }
        let feeds: Vec<u64> = self.feeds.keys().copied().collect();
        for id in feeds {
            self.feed_mark_all(id);
        }
        let ids: Vec<PeerId> = self.neighbors.keys().copied().collect();
        for id in ids {
            let Some(n) = self.neighbors.get(&id) else {
                continue;
            };
            let fsm = fsm_config(&self.config, &n.config);
            let _ = n.control.try_send(Control::Configure(Box::new(fsm)));
            if n.session.is_some() {
                self.send_initial(id);
            }
        }
    }

    fn report_table<P: Family>(&self) {
        for (prefix, paths) in self.rib.table::<P>().iter() {
            let _ = self.events.send(Event::Route {
                prefix: (*prefix).into(),
                paths: paths.iter().map(|r| self.path(r)).collect(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::wire::{Afi, Safi};

    const V4: AfiSafi = AfiSafi::IPV4_UNICAST;
    const V6: AfiSafi = AfiSafi::IPV6_UNICAST;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn gr_cap(time: u16, n: bool, r: bool, families: &[(AfiSafi, bool)]) -> Capability {
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

    fn llgr_cap(families: &[(AfiSafi, u32, bool)]) -> Capability {
        Capability::LongLivedGracefulRestart(
            families
                .iter()
                .map(|&(family, stale_time, forwarding)| LlgrFamily {
                    family,
                    forwarding,
                    stale_time,
                })
                .collect(),
        )
    }

    fn peer(caps: &[Capability]) -> PeerGr {
        PeerGr::negotiate(Some(&GracefulRestartConfig::default()), caps).unwrap()
    }

    #[test]
    fn our_capabilities_follow_the_config() {
        let fams = [V4, V6];
        let helper = GracefulRestartConfig::default();
        let [gr, llgr] = capabilities(&helper, &fams);
        assert_eq!(
            gr,
            gr_cap(120, true, false, &[]),
            "helper only: no families"
        );
        assert_eq!(llgr, llgr_cap(&[(V4, 0, false), (V6, 0, false)]));

        let restarting = GracefulRestartConfig {
            restart_time: secs(100_000),
            preserved_forwarding: true,
            restarting: true,
            notification: false,
            long_lived_stale_time: secs(1 << 30),
            ..Default::default()
        };
        let [gr, llgr] = capabilities(&restarting, &fams);
        assert_eq!(gr, gr_cap(4095, false, true, &[(V4, true), (V6, true)]));
        assert_eq!(
            llgr,
            llgr_cap(&[(V4, 0xff_ffff, true), (V6, 0xff_ffff, true)])
        );
        // And they encode and decode as such.
        for c in [gr, llgr] {
            let mut b = BytesMut::new();
            c.encode(&mut b);
            assert_eq!(Capability::decode(b[0], &b[2..]).unwrap(), c);
        }
    }

    #[test]
    fn negotiation_needs_both_sides() {
        let theirs = [gr_cap(90, true, false, &[(V4, true)])];
        assert!(
            PeerGr::negotiate(None, &theirs).is_none(),
            "we did not advertise it"
        );
        let ours = GracefulRestartConfig::default();
        assert!(PeerGr::negotiate(Some(&ours), &[]).is_none(), "nor they");
        assert!(
            PeerGr::negotiate(Some(&ours), &[llgr_cap(&[(V4, 60, true)])]).is_none(),
            "long-lived without graceful restart is ignored"
        );
        let g = PeerGr::negotiate(Some(&ours), &theirs).unwrap();
        assert!(g.notification);
        let no_n = GracefulRestartConfig {
            notification: false,
            ..Default::default()
        };
        assert!(
            !PeerGr::negotiate(Some(&no_n), &theirs)
                .unwrap()
                .notification
        );
        assert!(notification_negotiated(&theirs, &theirs));
        assert!(!notification_negotiated(
            &theirs,
            &[gr_cap(90, false, false, &[])]
        ));
        assert!(!long_lived_negotiated(Some(&ours), &theirs));
        assert!(long_lived_negotiated(Some(&ours), &[llgr_cap(&[])]));
        assert!(!long_lived_negotiated(None, &[llgr_cap(&[])]));
    }

    #[test]
    fn phases_per_family() {
        // IPv4 in both capabilities, IPv6 only long-lived, multicast in none.
        let g = peer(&[
            gr_cap(30, false, false, &[(V4, true)]),
            llgr_cap(&[(V4, 600, true), (V6, 300, true)]),
        ]);
        assert_eq!(g.on_down(V4), Some((Phase::Restart, secs(30))));
        assert_eq!(
            g.after(Phase::Restart, V4),
            Some((Phase::LongLived, secs(600)))
        );
        assert_eq!(g.after(Phase::LongLived, V4), None);
        assert_eq!(g.on_down(V6), Some((Phase::LongLived, secs(300))));
        let mcast = AfiSafi::new(Afi::IPV4, Safi::MULTICAST);
        assert_eq!(g.on_down(mcast), None);

        // Restart time 0: straight to the long-lived phase (RFC 9494 4.2).
        let g = peer(&[
            gr_cap(0, false, false, &[(V4, true)]),
            llgr_cap(&[(V4, 600, true)]),
        ]);
        assert_eq!(g.on_down(V4), Some((Phase::LongLived, secs(600))));

        // A long-lived stale time of 0 means none.
        let g = peer(&[
            gr_cap(30, false, false, &[(V4, true)]),
            llgr_cap(&[(V4, 0, true)]),
        ]);
        assert_eq!(g.after(Phase::Restart, V4), None);

        // A helper-only neighbor (no families): nothing kept.
        let g = peer(&[gr_cap(120, true, false, &[])]);
        assert_eq!(g.on_down(V4), None);
    }

    #[test]
    fn coming_back_keeps_only_what_forwarding_state_covers() {
        let both = [V4, V6];
        let back = peer(&[
            gr_cap(30, false, true, &[(V4, true), (V6, false)]),
            llgr_cap(&[(V4, 60, false), (V6, 60, true)]),
        ]);
        assert!(keeps_on_return(Phase::Restart, Some(&back), V4, &both));
        assert!(
            !keeps_on_return(Phase::Restart, Some(&back), V6, &both),
            "F bit clear"
        );
        assert!(
            !keeps_on_return(Phase::LongLived, Some(&back), V4, &both),
            "long-lived: the F bit of that capability"
        );
        assert!(keeps_on_return(Phase::LongLived, Some(&back), V6, &both));
        assert!(
            !keeps_on_return(Phase::Restart, Some(&back), V4, &[V6]),
            "family not negotiated"
        );
        assert!(
            !keeps_on_return(Phase::Restart, None, V4, &both),
            "no graceful restart this time"
        );
    }

    #[test]
    fn which_endings_keep_routes() {
        use error_subcode::cease;
        let cease = |sub| Notification::new(error_code::CEASE, sub);
        let hold = Notification::new(error_code::HOLD_TIMER_EXPIRED, 0);
        let hard = with_hard_reset(cease(cease::ADMINISTRATIVE_SHUTDOWN));
        for n in [false, true] {
            assert!(keeps_routes(&DownReason::ConnectionLost, n));
            assert!(!keeps_routes(&DownReason::Stopped(hold.clone()), n));
        }
        // A silent neighbor (our hold timer) is a lost connection.
        for n in [false, true] {
            assert!(keeps_routes(&DownReason::LocalError(hold.clone()), n));
        }
        // Without the N bit, no other NOTIFICATION keeps anything.
        let update_error = Notification::new(error_code::UPDATE_MESSAGE, 1);
        for r in [
            DownReason::PeerNotification(hold.clone()),
            DownReason::LocalError(update_error),
        ] {
            assert!(!keeps_routes(&r, false));
            assert!(keeps_routes(&r, true));
        }
        // With it, all but Hard Reset (received) and what we send as Hard
        // Reset.
        assert!(!keeps_routes(&DownReason::PeerNotification(hard), true));
        assert!(keeps_routes(
            &DownReason::PeerNotification(cease(cease::ADMINISTRATIVE_RESET)),
            true
        ));
        assert!(!keeps_routes(
            &DownReason::LocalError(cease(cease::ADMINISTRATIVE_RESET)),
            true
        ));
        assert!(keeps_routes(
            &DownReason::LocalError(cease(cease::OUT_OF_RESOURCES)),
            true
        ));
    }

    #[test]
    fn hard_reset_carries_the_cease_inside() {
        use error_subcode::cease;
        let shut = Notification::cease_with_message(cease::ADMINISTRATIVE_SHUTDOWN, "bye");
        let hard = with_hard_reset(shut);
        assert_eq!(
            (hard.code, hard.subcode),
            (error_code::CEASE, cease::HARD_RESET)
        );
        assert_eq!(&hard.data[..], &[6, 2, 3, b'b', b'y', b'e']);
        let collision =
            Notification::new(error_code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION);
        assert_eq!(with_hard_reset(collision.clone()), collision);
        let hold = Notification::new(error_code::HOLD_TIMER_EXPIRED, 0);
        assert_eq!(with_hard_reset(hold.clone()), hold);
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_come_from_the_deferral_and_the_kept_routes() {
        let cfg = GracefulRestartConfig {
            restarting: true,
            selection_deferral: secs(10),
            ..Default::default()
        };
        let t0 = Instant::now();
        let mut g = Graceful::new(Some(&cfg));
        assert!(g.deferring());
        assert_eq!(g.next_deadline(), Some(t0 + secs(10)));
        let kept = PeerStale {
            gr: PeerGr::default(),
            v4: None,
            v6: Some(Kept {
                paths: StalePaths::default(),
                phase: Phase::Restart,
                until: t0 + secs(3),
            }),
        };
        g.stale.insert(1, kept);
        assert_eq!(g.next_deadline(), Some(t0 + secs(3)));
        assert!(!Graceful::new(Some(&GracefulRestartConfig::default())).deferring());
        assert_eq!(Graceful::new(None).next_deadline(), None);
    }
}
