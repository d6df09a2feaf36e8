//! Prometheus metrics of a speaker (`prometheus-client`): session state and
//! transitions, messages by type in and out, and prefixes received, accepted,
//! rejected (in all and by reason) and advertised per neighbor. A host program
//! registers them in its own registry with [`Metrics::register`] and serves
//! them.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::fsm::State;
use crate::speaker::REJECT_REASONS;
use crate::wire::MessageType;

/// Labels of per-neighbor metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NeighborLabels {
    /// The neighbor's address.
    pub neighbor: String,
}

/// Labels of per-message-type metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabels {
    /// The neighbor's address.
    pub neighbor: String,
    /// OPEN, UPDATE, NOTIFICATION, KEEPALIVE or ROUTE-REFRESH.
    pub r#type: String,
}

/// Labels of the refused-prefix counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    /// The neighbor's address.
    pub neighbor: String,
    /// One of [`REJECT_REASONS`]: the import guard's reasons
    /// ([`GuardReason::as_str`](crate::policy::GuardReason::as_str)), `policy`,
    /// `rfc8212`, `as-loop` or `route-leak`.
    pub reason: String,
}

/// The metrics of one speaker.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Session state, 1 (Idle) to 6 (Established), as the BGP MIB numbers them.
    pub session_state: Family<NeighborLabels, Gauge>,
    /// State changes.
    pub session_transitions: Family<NeighborLabels, Counter>,
    /// Times the session reached Established.
    pub session_established: Family<NeighborLabels, Counter>,
    /// Messages received.
    pub messages_received: Family<MessageLabels, Counter>,
    /// Messages sent (UPDATEs counted as they are packed).
    pub messages_sent: Family<MessageLabels, Counter>,
    /// Prefixes announced by the neighbor.
    pub prefixes_received: Family<NeighborLabels, Counter>,
    /// Prefixes of the neighbor now in the RIB.
    pub prefixes_accepted: Family<NeighborLabels, Gauge>,
    /// Prefixes refused by policy or checks.
    pub prefixes_rejected: Family<NeighborLabels, Counter>,
    /// Prefixes refused on import, by reason (`bgp_rejected_prefixes_total`);
    /// the same total as `prefixes_rejected`, split.
    pub rejected_prefixes: Family<RejectLabels, Counter>,
    /// Prefixes now advertised to the neighbor.
    pub prefixes_advertised: Family<NeighborLabels, Gauge>,
    /// Connections closed at accept because no neighbor or dynamic range
    /// admits their address, or the range was full
    /// (`bgp_connections_refused_total`).
    pub connections_refused: Counter,
}

/// The BGP MIB's number for a state (RFC 4273 bgpPeerState).
pub fn state_number(s: State) -> i64 {
    match s {
        State::Idle => 1,
        State::Connect => 2,
        State::Active => 3,
        State::OpenSent => 4,
        State::OpenConfirm => 5,
        State::Established => 6,
    }
}

fn type_name(t: MessageType) -> &'static str {
    match t {
        MessageType::Open => "OPEN",
        MessageType::Update => "UPDATE",
        MessageType::Notification => "NOTIFICATION",
        MessageType::Keepalive => "KEEPALIVE",
        MessageType::RouteRefresh => "ROUTE-REFRESH",
    }
}

impl Metrics {
    /// Adds every metric to `registry`, under the `bgp_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("bgp");
        r.register(
            "session_state",
            "Session state: 1 Idle .. 6 Established",
            self.session_state.clone(),
        );
        r.register(
            "session_transitions",
            "Session state changes",
            self.session_transitions.clone(),
        );
        r.register(
            "session_established",
            "Times the session reached Established",
            self.session_established.clone(),
        );
        r.register(
            "messages_received",
            "BGP messages received by type",
            self.messages_received.clone(),
        );
        r.register(
            "messages_sent",
            "BGP messages sent by type",
            self.messages_sent.clone(),
        );
        r.register(
            "prefixes_received",
            "Prefixes announced by the neighbor",
            self.prefixes_received.clone(),
        );
        r.register(
            "prefixes_accepted",
            "Prefixes of the neighbor in the RIB",
            self.prefixes_accepted.clone(),
        );
        r.register(
            "prefixes_rejected",
            "Prefixes refused on import",
            self.prefixes_rejected.clone(),
        );
        r.register(
            "rejected_prefixes",
            "Prefixes refused on import, by reason",
            self.rejected_prefixes.clone(),
        );
        r.register(
            "prefixes_advertised",
            "Prefixes advertised to the neighbor",
            self.prefixes_advertised.clone(),
        );
        r.register(
            "connections_refused",
            "Connections refused at accept: no neighbor or range admits the address, or the range is full",
            self.connections_refused.clone(),
        );
    }

    pub(crate) fn neighbor(address: &std::net::IpAddr) -> NeighborLabels {
        NeighborLabels {
            neighbor: address.to_string(),
        }
    }

    pub(crate) fn message(&self, neighbor: &NeighborLabels, t: MessageType, sent: bool, n: u64) {
        let labels = MessageLabels {
            neighbor: neighbor.neighbor.clone(),
            r#type: type_name(t).to_owned(),
        };
        let family = if sent {
            &self.messages_sent
        } else {
            &self.messages_received
        };
        family.get_or_create(&labels).inc_by(n);
    }

    /// Counts `n` prefixes of `neighbor` refused for `reason`.
    pub(crate) fn rejected(&self, neighbor: &NeighborLabels, reason: &str, n: u64) {
        let labels = RejectLabels {
            neighbor: neighbor.neighbor.clone(),
            reason: reason.to_owned(),
        };
        self.rejected_prefixes.get_or_create(&labels).inc_by(n);
    }

    /// Forgets a neighbor's series (it was removed).
    pub(crate) fn remove(&self, neighbor: &NeighborLabels) {
        for f in [
            &self.session_state,
            &self.prefixes_accepted,
            &self.prefixes_advertised,
        ] {
            f.remove(neighbor);
        }
        for f in [
            &self.session_transitions,
            &self.session_established,
            &self.prefixes_received,
            &self.prefixes_rejected,
        ] {
            f.remove(neighbor);
        }
        for reason in REJECT_REASONS {
            self.rejected_prefixes.remove(&RejectLabels {
                neighbor: neighbor.neighbor.clone(),
                reason: reason.to_owned(),
            });
        }
    }
}
