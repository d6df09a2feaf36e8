//! What the speaker reports: events, neighbor status and RIB entries.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use crate::fsm::State;
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
    /// A route was refused on import.
    Rejected {
        /// The neighbor that sent it.
        neighbor: IpAddr,
        /// The prefix.
        prefix: IpNet,
        /// Why, for operators.
        reason: String,
    },
}

/// Counters of one neighbor.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct NeighborCounters {
    /// Prefixes announced by the neighbor (counting repeats).
    pub received: u64,
    /// Prefixes currently accepted into the RIB.
    pub accepted: u64,
    /// Prefixes refused by policy or checks.
    pub rejected: u64,
    /// Prefixes currently advertised to the neighbor.
    pub advertised: u64,
    /// UPDATE messages received.
    pub updates_in: u64,
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
