//! What the speaker reports: events, neighbor status and RIB entries.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use crate::fsm::State;
use crate::policy::GuardReason;
use crate::rib::RouteAttrs;
use crate::wire::{AfiSafi, NextHop};

/// One path of a route, as a FIB installer or a status command sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RoutePath {
    /// The neighbor it came from; `None` for a local route.
    pub neighbor: Option<IpAddr>,
    /// Where to forward.
    pub next_hop: Option<NextHop>,
    /// The attributes.
    pub attrs: Arc<RouteAttrs>,
    /// The interface of the session the path came over, when that session
    /// runs between IPv6 link-local addresses (an unnumbered neighbor): with a
    /// link-local next hop, what a FIB needs beside it (see
    /// [`RoutePath::gateway`]).
    pub ifindex: Option<u32>,
}

impl RoutePath {
    /// Where to forward: the gateway address and, for a link-local one, the
    /// interface. An IPv4 prefix may get an IPv6 gateway (RFC 8950), for a
    /// kernel route with RTA_VIA. `None` for a local route.
    pub fn gateway(&self) -> Option<(IpAddr, Option<u32>)> {
        crate::unnumbered::gateway(self.next_hop.as_ref()?, self.ifindex)
    }
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Event {
    /// A neighbor's session changed state.
    NeighborState {
        /// The neighbor.
        neighbor: IpAddr,
        /// The state left.
        from: State,
        /// The state entered.
        to: State,
    },
    /// The paths to use for a prefix changed: the multipath set, best first;
    /// empty when the prefix became unreachable. What a FIB installer needs.
    Route {
        /// The prefix.
        prefix: IpNet,
        /// The paths, best first.
        paths: Vec<RoutePath>,
    },
    /// A route was refused on import (and removed, if an earlier version of it
    /// had been accepted). The session stays up.
    Rejected {
        /// The neighbor that sent it.
        neighbor: IpAddr,
        /// The prefix.
        prefix: IpNet,
        /// Why, for operators: the guard's sentence (see
        /// [`GuardRefusal`](crate::policy::GuardRefusal)), the route map and
        /// term, RFC 8212, an AS loop, or a route leak (RFC 9234).
        reason: String,
        /// The import guard's reason when the guard refused it; `None` for the
        /// import route map, RFC 8212, AS loop and route leak rejections.
        guard: Option<GuardReason>,
        /// The reason's label, one of [`REJECT_REASONS`] (the metric label).
        label: &'static str,
    },
}

/// The `reason` labels of refused prefixes, in [`NeighborCounters::rejected_by_reason`]
/// and the `bgp_rejected_prefixes_total` metric: the import guard's
/// ([`GuardReason::as_str`], in its order), then `policy` (the import route
/// map), `rfc8212` (an external neighbor without import policy, RFC 8212
/// section 3), `as-loop` (our own AS in the path, RFC 4271 section 9.1.2)
/// and `route-leak` (the OTC attribute says the route leaked, RFC 9234
/// section 5).
pub const REJECT_REASONS: [&str; 9] = [
    "forbidden",
    "not-allowed",
    "next-hop",
    "as-path",
    "max-prefixes",
    "policy",
    "rfc8212",
    "as-loop",
    "route-leak",
];

/// Why a prefix was refused; [`RejectKind::index`] is its place in
/// [`REJECT_REASONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RejectKind {
    Guard(GuardReason),
    Policy,
    Rfc8212,
    AsLoop,
    RouteLeak,
}

impl RejectKind {
    pub(crate) fn index(self) -> usize {
        match self {
            Self::Guard(r) => r as usize,
            Self::Policy => 5,
            Self::Rfc8212 => 6,
            Self::AsLoop => 7,
            Self::RouteLeak => 8,
        }
    }

    pub(crate) fn guard(self) -> Option<GuardReason> {
        match self {
            Self::Guard(r) => Some(r),
            _ => None,
        }
    }
}

/// The last prefix a neighbor had refused, for status output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RejectedPrefix {
    /// The prefix.
    pub prefix: IpNet,
    /// Why, as in [`Event::Rejected`].
    pub reason: String,
    /// The import guard's reason, if the guard refused it.
    pub guard: Option<GuardReason>,
    /// The reason's label, one of [`REJECT_REASONS`].
    pub label: &'static str,
}

/// Counters of one neighbor.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct NeighborCounters {
    /// Prefixes announced by the neighbor (counting repeats).
    pub received: u64,
    /// Prefixes currently accepted into the RIB.
    pub accepted: u64,
    /// Prefixes refused by policy or checks (counting repeats).
    pub rejected: u64,
    /// `rejected` by reason, keyed by the labels of [`REJECT_REASONS`]; only
    /// reasons that occurred appear.
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Prefixes currently advertised to the neighbor.
    pub advertised: u64,
    /// UPDATE messages received.
    pub updates_in: u64,
    /// Prefixes kept stale by graceful restart: the session went down (or
    /// came back) and the neighbor has not sent them again yet. Included in
    /// `accepted`.
    pub stale: u64,
}

/// The state of one neighbor, as `show bgp neighbors` would print it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NeighborStatus {
    /// Address.
    pub address: IpAddr,
    /// Description.
    pub description: String,
    /// Accepted from a dynamic range (the range given).
    pub dynamic_range: Option<IpNet>,
    /// Session state.
    pub state: State,
    /// Time in the current state.
    pub since: Duration,
    /// The peer's AS, once known.
    pub remote_as: Option<u32>,
    /// The peer's BGP identifier, once known.
    pub remote_id: Option<std::net::Ipv4Addr>,
    /// Our AS on this session.
    pub local_as: u32,
    /// Negotiated hold time.
    pub hold_time: Option<u16>,
    /// Negotiated families.
    pub families: Vec<AfiSafi>,
    /// The capabilities the peer advertised in its OPEN.
    pub remote_capabilities: Vec<crate::wire::Capability>,
    /// Counters.
    pub counters: NeighborCounters,
    /// The last error (a NOTIFICATION sent or received, or a lost connection).
    pub last_error: Option<String>,
    /// The last prefix refused on import, and why.
    pub last_rejection: Option<RejectedPrefix>,
    /// The interface the session is bound to: the interface neighbor's for
    /// a peer learned there (unnumbered), or the configured `bind_interface`.
    pub interface: Option<String>,
}

/// A Loc-RIB entry: a prefix and all its paths, best first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RibEntry {
    /// The prefix.
    pub prefix: IpNet,
    /// All paths, best first.
    pub paths: Vec<RoutePath>,
    /// How many of the first paths form the multipath set.
    pub multipath: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_kinds_index_their_labels() {
        for r in GuardReason::ALL {
            assert_eq!(REJECT_REASONS[RejectKind::Guard(r).index()], r.as_str());
        }
        assert_eq!(REJECT_REASONS[RejectKind::Policy.index()], "policy");
        assert_eq!(REJECT_REASONS[RejectKind::Rfc8212.index()], "rfc8212");
        assert_eq!(REJECT_REASONS[RejectKind::AsLoop.index()], "as-loop");
        assert_eq!(REJECT_REASONS[RejectKind::RouteLeak.index()], "route-leak");
    }
}
