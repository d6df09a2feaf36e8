//! Configuration of a speaker, its neighbors and its dynamic neighbor ranges.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

use crate::fsm::RemoteAs;
use crate::policy::RouteMap;
use crate::rib::BestPathConfig;
use crate::wire::AfiSafi;

/// The BGP port.
pub const BGP_PORT: u16 = 179;

/// Speaker-wide settings.
#[derive(Debug, Clone)]
pub struct SpeakerConfig {
    /// Our AS.
    pub local_as: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Addresses to accept connections on (one listener for all neighbors);
    /// empty for none.
    pub listen: Vec<SocketAddr>,
    /// Best path and multipath settings.
    pub best_path: BestPathConfig,
    /// The cluster id when reflecting routes (defaults to the router id).
    pub cluster_id: Option<Ipv4Addr>,
    /// Graceful restart (RFC 4724, RFC 8538, RFC 9494); `None`: not
    /// advertised, and a neighbor's routes go as soon as its session does.
    pub graceful_restart: Option<GracefulRestartConfig>,
}

impl SpeakerConfig {
    /// A speaker in `local_as` with `router_id`, listening on all addresses on
    /// port 179.
    pub fn new(local_as: u32, router_id: Ipv4Addr) -> Self {
        Self {
            local_as,
            router_id,
            listen: vec![SocketAddr::new(
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
                BGP_PORT,
            )],
            best_path: BestPathConfig::default(),
            cluster_id: None,
            graceful_restart: None,
        }
    }
}

/// Graceful restart: the capability we advertise (RFC 4724 with the N bit of
/// RFC 8538, and the long-lived capability of RFC 9494), and with it the
/// helper role: the routes of a neighbor that advertised it too outlive its
/// session (kept stale for the restart time it advertised, replaced as they
/// come back, the rest dropped at its End-of-RIB), and, when `restarting`,
/// the restarting speaker's role.
///
/// A neighbor's routes are kept when its session is lost (the connection
/// closes without a NOTIFICATION, or the neighbor goes silent and our hold
/// timer expires), or ends with another NOTIFICATION than Hard Reset when both
/// sides set the N bit. Routes of dynamic neighbors are never kept: their
/// session is all there is of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracefulRestartConfig {
    /// How long neighbors should keep our routes after our session with them
    /// ends, for us to come back (the restart time, at most 4095 s).
    pub restart_time: Duration,
    /// The host keeps forwarding along our routes while we restart (its
    /// kernel routes stay): the families are listed in the capability with
    /// the F bit, so neighbors keep our routes. `false`: helper only;
    /// neighbors drop our routes with the session, we keep theirs.
    pub preserved_forwarding: bool,
    /// We have just restarted: the R bit is set, and route selection waits
    /// (no route events, nothing exported) until every configured neighbor
    /// and every address in `wait_for` has sent End-of-RIB for each family
    /// (or came up without graceful restart, or restarting itself), or until
    /// `selection_deferral`. Then the whole table is reported and exported,
    /// each neighbor gets End-of-RIB, and later sessions no longer set R.
    pub restarting: bool,
    /// The longest route selection waits after a restart.
    pub selection_deferral: Duration,
    /// Dynamic neighbors to wait for as well after a restart (the pods that
    /// had routes before it), End-of-RIB or not advertised graceful restart.
    pub wait_for: Vec<IpAddr>,
    /// The N bit (RFC 8538): keep a neighbor's routes also after a
    /// NOTIFICATION other than Hard Reset; our Ceases that end a session for
    /// good (maximum prefixes, shutdown, de-configured, reset) are sent as
    /// Hard Reset.
    pub notification: bool,
    /// How long neighbors should keep our routes as long-lived stale after the
    /// restart time (RFC 9494, 24 bits of seconds); zero: not at all. The
    /// long-lived capability is advertised in any case, so we keep theirs.
    pub long_lived_stale_time: Duration,
    /// After a neighbor that restarted is back, the longest we wait for its
    /// End-of-RIB before dropping its routes that it did not send again.
    pub stale_routes_time: Duration,
}

impl Default for GracefulRestartConfig {
    /// Restart time 120 s, helper only, not restarting, selection deferral
    /// 60 s, N bit, no long-lived retention of our routes, stale routes 360 s.
    fn default() -> Self {
        Self {
            restart_time: Duration::from_secs(120),
            preserved_forwarding: false,
            restarting: false,
            selection_deferral: Duration::from_secs(60),
            wait_for: Vec::new(),
            notification: true,
            long_lived_stale_time: Duration::ZERO,
            stale_routes_time: Duration::from_secs(360),
        }
    }
}

/// What to do when a neighbor sends more prefixes than allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxPrefixes {
    /// The limit, per family.
    pub limit: u32,
    /// Only log a warning; otherwise close the session with Cease "maximum
    /// number of prefixes reached" (RFC 4486).
    pub warning_only: bool,
    /// After closing, start again after this long (none: stay down until
    /// reconfigured).
    pub restart: Option<Duration>,
}

/// One neighbor, or the template of a dynamic range.
#[derive(Debug, Clone)]
pub struct NeighborConfig {
    /// The neighbor's address (ignored in a range template).
    pub address: IpAddr,
    /// Its TCP port.
    pub port: u16,
    /// The AS numbers it may have.
    pub remote_as: RemoteAs,
    /// Our AS towards it, when not the speaker's.
    pub local_as: Option<u32>,
    /// Free text for status output.
    pub description: String,
    /// Only accept its connection, never connect out.
    pub passive: bool,
    /// Proposed hold time, seconds.
    pub hold_time: u16,
    /// Time between connection attempts.
    pub connect_retry: Duration,
    /// Wait this long for the peer's OPEN before sending ours.
    pub delay_open: Option<Duration>,
    /// TTL of outgoing packets: 1 for directly connected eBGP, more for multihop.
    pub ttl: Option<u8>,
    /// Source address for the outgoing connection.
    pub source_address: Option<IpAddr>,
    /// Interface to bind the connection to (SO_BINDTODEVICE).
    pub bind_interface: Option<String>,
    /// Families to negotiate.
    pub families: Vec<AfiSafi>,
    /// Import policy; `None` for an external peer means nothing is accepted
    /// (RFC 8212).
    pub import: Option<RouteMap>,
    /// Export policy; `None` for an external peer means nothing is sent.
    pub export: Option<RouteMap>,
    /// What an untrusted peer (a pod) may announce, checked before `import`.
    /// Counts as an import policy for RFC 8212.
    pub guard: Option<std::sync::Arc<crate::policy::ImportGuard>>,
    /// Keep the routes as received, before policy, to re-apply a new import
    /// policy without asking the peer (soft-reconfiguration inbound).
    pub soft_reconfiguration_inbound: bool,
    /// Prefix limit.
    pub max_prefixes: Option<MaxPrefixes>,
    /// Set ourselves as next hop towards internal peers too (always done for
    /// external peers).
    pub next_hop_self: bool,
    /// Next hop to announce for IPv6 routes over an IPv4 session (and for IPv4
    /// over IPv6), when the session's own address cannot serve.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// See `next_hop_v4`.
    pub next_hop_v6: Option<std::net::Ipv6Addr>,
    /// The neighbor is a route reflector client (RFC 4456).
    pub route_reflector_client: bool,
    /// Accept paths that contain our own AS this many times.
    pub allow_own_as: u8,
    /// TCP-MD5 signature key (RFC 2385), as FRR's `neighbor X password`: set
    /// on the listeners for the neighbor's address when it is added (before
    /// it can connect) and removed with it, and on our outgoing connection.
    /// In a range template, one key for the whole range (a prefix key on the
    /// listeners). At most 80 octets. A connection with a missing or wrong
    /// signature never completes its TCP handshake.
    pub password: Option<Password>,
    /// GTSM / TTL security (RFC 5082), as FRR's `neighbor X ttl-security
    /// hops N`: the neighbor is at most this many hops away (1: directly
    /// connected). We send with TTL 255 and drop packets that arrive with a
    /// TTL below 256 - hops. Overrides `ttl`.
    pub ttl_security: Option<u8>,
    /// Our BGP role towards the neighbor (RFC 9234; FRR's `neighbor X
    /// local-role`): sent in the Role capability, checked against the
    /// neighbor's (a mismatch refuses the session with Role Mismatch), and
    /// the OTC attribute's route leak rules applied on eBGP. `Provider`
    /// means the neighbor is our customer.
    pub role: Option<crate::wire::Role>,
    /// With `role`, also refuse a neighbor that announces no role (RFC 9234
    /// strict mode).
    pub role_strict: bool,
    /// Lower the LOCAL_PREF of routes received with the GRACEFUL_SHUTDOWN
    /// community to 0 (RFC 8326 section 4.2), also over a LOCAL_PREF the
    /// import policy sets. On by default.
    pub honor_graceful_shutdown: bool,
    /// Advertise the extended next hop capability for IPv4 unicast (RFC 8950):
    /// the peer may then send IPv4 routes with IPv6 next hops, and, if it
    /// advertises it too, hears ours with our IPv6 address as next hop when
    /// the session is over IPv6 and no `next_hop_v4` is set. On for interface
    /// (unnumbered) neighbors.
    pub extended_next_hop: bool,
    /// A trickle of changes (fewer than 1024 prefixes queued) soon after the
    /// last UPDATEs sent to this neighbor waits until this long after them,
    /// so that the next changes go in the same UPDATEs: a neighbor of many
    /// peers that come up one by one then writes to each a few larger
    /// UPDATEs instead of one per peer. A larger backlog (a table, a bulk
    /// change) and the first UPDATEs of a session go at once. Zero: every
    /// change at once. Default 10 ms. Taken when the neighbor is added;
    /// `update_neighbor` changes it only along with a setting that restarts
    /// the session.
    pub batch_interval: Duration,
    /// Sender-side loop detection: an external neighbor is not sent routes
    /// whose AS path already holds its AS, which it would drop on receipt
    /// (RFC 4271 section 9.1.2). On by default: pods that share one AS then
    /// do not each get every other pod's VIPs. Turn it off for a neighbor
    /// that accepts its own AS (`allowas-in`).
    pub sender_loop_check: bool,
}

impl NeighborConfig {
    /// A neighbor at `address` with `remote_as`, IPv4 and IPv6 unicast, hold time
    /// 90 s, connect retry 5 s, and no policy.
    pub fn new(address: IpAddr, remote_as: RemoteAs) -> Self {
        Self {
            address,
            port: BGP_PORT,
            remote_as,
            local_as: None,
            description: String::new(),
            passive: false,
            hold_time: 90,
            connect_retry: Duration::from_secs(5),
            delay_open: None,
            ttl: None,
            source_address: None,
            bind_interface: None,
            families: vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST],
            import: None,
            export: None,
            guard: None,
            soft_reconfiguration_inbound: false,
            max_prefixes: None,
            next_hop_self: false,
            next_hop_v4: None,
            next_hop_v6: None,
            route_reflector_client: false,
            allow_own_as: 0,
            password: None,
            ttl_security: None,
            role: None,
            role_strict: false,
            honor_graceful_shutdown: true,
            extended_next_hop: false,
            batch_interval: Duration::from_millis(10),
            sender_loop_check: true,
        }
    }
}

/// Dynamic neighbors: connections from any address in `prefix` are accepted
/// and become neighbors configured by `template`.
#[derive(Debug, Clone)]
pub struct DynamicRange {
    /// The addresses admitted.
    pub prefix: IpNet,
    /// Settings for each neighbor accepted from the range.
    pub template: NeighborConfig,
    /// The most neighbors the range admits at once.
    pub limit: usize,
}

/// A TCP-MD5 key (RFC 2385). Its `Debug` does not show it, so a logged
/// configuration does not leak it; [`Password::expose`] gives it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Password(String);

impl Password {
    /// The key itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its length in octets.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty (never a valid key).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl From<String> for Password {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}
