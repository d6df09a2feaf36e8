//! Routing policy: prefix sets with ge/le, AS-path and community conditions, and
//! route maps whose ordered terms match, modify, and accept, reject or fall
//! through to the next term.
//!
//! A [`RouteMap`] is applied to one route at a time and either rejects it or
//! accepts it, possibly with changed attributes. What happens when a neighbor has
//! no policy at all (RFC 8212: nothing for external peers) is the speaker's call.
//!
//! An [`ImportGuard`] is the fixed set of checks for peers that are not trusted
//! (pods announcing their VIPs): forbidden and allowed prefixes, next hop and AS
//! path of the peer itself, and a prefix limit. It refuses routes one by one
//! and says why ([`GuardReason`], [`GuardRefusal`]); it never resets a session.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::rib::RouteAttrs;
use crate::wire::{AsPath, Community, LargeCommunity, NextHop, SegmentType};

/// One entry of a prefix set: a prefix and the range of lengths it admits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PrefixEntry {
    /// The covering prefix.
    pub prefix: IpNet,
    /// Shortest admitted length; with neither bound only the exact length matches.
    pub ge: Option<u8>,
    /// Longest admitted length.
    pub le: Option<u8>,
}

impl PrefixEntry {
    /// Exactly `prefix`.
    pub fn exact(prefix: IpNet) -> Self {
        Self {
            prefix,
            ge: None,
            le: None,
        }
    }

    /// `prefix` and everything more specific, as `prefix le max` in FRR.
    pub fn orlonger(prefix: IpNet) -> Self {
        Self {
            prefix,
            ge: None,
            le: Some(prefix.max_prefix_len()),
        }
    }

    /// Whether `p` lies inside the covering prefix with an admitted length
    /// (the `ge`/`le` semantics of FRR prefix lists and BIRD `{a,b}` ranges).
    pub fn matches(&self, p: &IpNet) -> bool {
        let len = p.prefix_len();
        let (lo, hi) = match (self.ge, self.le) {
            (None, None) => (self.prefix.prefix_len(), self.prefix.prefix_len()),
            (Some(ge), None) => (ge, self.prefix.max_prefix_len()),
            (None, Some(le)) => (self.prefix.prefix_len(), le),
            (Some(ge), Some(le)) => (ge, le),
        };
        len >= self.prefix.prefix_len() && (lo..=hi).contains(&len) && self.prefix.contains(p)
    }
}

impl fmt::Display for PrefixEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.prefix)?;
        if let Some(ge) = self.ge {
            write!(f, " ge {ge}")?;
        }
        if let Some(le) = self.le {
            write!(f, " le {le}")?;
        }
        Ok(())
    }
}

/// A set of prefix entries; a prefix matches when any entry does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PrefixSet {
    /// The entries.
    pub entries: Vec<PrefixEntry>,
}

impl PrefixSet {
    /// A set of the given entries.
    pub fn new(entries: Vec<PrefixEntry>) -> Self {
        Self { entries }
    }

    /// The first entry `p` matches.
    pub fn find(&self, p: &IpNet) -> Option<&PrefixEntry> {
        self.entries.iter().find(|e| e.matches(p))
    }

    /// Whether `p` matches an entry.
    pub fn matches(&self, p: &IpNet) -> bool {
        self.find(p).is_some()
    }
}

/// A condition on a route.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Match {
    /// The prefix is in the set.
    Prefix(PrefixSet),
    /// The AS path ends in this AS.
    OriginAs(u32),
    /// The AS path contains this AS anywhere.
    AsPathContains(u32),
    /// The AS path length (RFC 4271 counting) is within the bounds.
    AsPathLength {
        /// At least this long.
        min: usize,
        /// At most this long.
        max: usize,
    },
    /// The route carries this community.
    Community(Community),
    /// The route carries this large community.
    LargeCommunity(LargeCommunity),
    /// The condition does not hold.
    Not(Box<Match>),
}

impl Match {
    /// Whether the route (`prefix` with `attrs`) satisfies the condition.
    pub fn matches(&self, prefix: &IpNet, attrs: &RouteAttrs) -> bool {
        let a = &attrs.attributes;
        match self {
            Self::Prefix(set) => set.matches(prefix),
            Self::OriginAs(asn) => a.as_path.as_ref().and_then(|p| p.origin_as()) == Some(*asn),
            Self::AsPathContains(asn) => a.as_path.as_ref().is_some_and(|p| p.contains(*asn)),
            Self::AsPathLength { min, max } => {
                let len = a.as_path.as_ref().map_or(0, |p| p.len());
                (*min..=*max).contains(&len)
            }
            Self::Community(c) => a.communities.contains(c),
            Self::LargeCommunity(c) => a.large_communities.contains(c),
            Self::Not(m) => !m.matches(prefix, attrs),
        }
    }
}

/// A change to a route's attributes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Set {
    /// Set LOCAL_PREF.
    LocalPref(u32),
    /// Set MULTI_EXIT_DISC.
    Med(u32),
    /// Add communities (kept sorted and unique).
    AddCommunities(Vec<Community>),
    /// Remove communities.
    RemoveCommunities(Vec<Community>),
    /// Add large communities (kept sorted and unique).
    AddLargeCommunities(Vec<LargeCommunity>),
    /// Remove large communities.
    RemoveLargeCommunities(Vec<LargeCommunity>),
    /// Set the next hop.
    NextHop(IpAddr),
    /// Prepend an AS this many times.
    Prepend {
        /// The AS to prepend.
        asn: u32,
        /// How many times.
        times: u8,
    },
}

impl Set {
    fn apply(&self, attrs: &mut RouteAttrs) {
        let a = &mut attrs.attributes;
        match self {
            Self::LocalPref(v) => a.local_pref = Some(*v),
            Self::Med(v) => a.med = Some(*v),
            Self::AddCommunities(cs) => {
                a.communities.extend(cs);
                a.communities.sort_unstable();
                a.communities.dedup();
            }
            Self::RemoveCommunities(cs) => a.communities.retain(|c| !cs.contains(c)),
            Self::AddLargeCommunities(cs) => {
                a.large_communities.extend(cs);
                a.large_communities.sort_unstable();
                a.large_communities.dedup();
            }
            Self::RemoveLargeCommunities(cs) => a.large_communities.retain(|c| !cs.contains(c)),
            Self::NextHop(IpAddr::V4(v4)) => attrs.next_hop = Some(NextHop::V4(*v4)),
            Self::NextHop(IpAddr::V6(v6)) => {
                attrs.next_hop = Some(NextHop::V6 {
                    global: *v6,
                    link_local: None,
                })
            }
            Self::Prepend { asn, times } => {
                a.as_path
                    .get_or_insert_with(Default::default)
                    .prepend(*asn, usize::from(*times));
            }
        }
    }
}

/// What a term does once it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Accept the route (with the term's changes).
    Accept,
    /// Reject the route.
    Reject,
    /// Apply the term's changes and go on with the next term.
    Next,
}

/// One ordered term of a route map: all conditions must hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Term {
    /// Name, for logs and rejection reasons.
    pub name: String,
    /// Conditions, all of which must hold (none: always).
    pub matches: Vec<Match>,
    /// Changes applied when the conditions hold.
    pub sets: Vec<Set>,
    /// What to do then.
    pub action: Action,
}

/// Why a route map rejected a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// This term matched and rejects.
    Term(String),
    /// No term accepted and the default is to reject.
    Default,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Term(name) => write!(f, "rejected by term {name:?}"),
            Self::Default => f.write_str("no term accepted it"),
        }
    }
}

/// An ordered list of terms with a default for routes no term decides.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteMap {
    /// Name, for logs.
    pub name: String,
    /// The terms, in order.
    pub terms: Vec<Term>,
    /// What happens to routes no term accepts or rejects (reject, as FRR's
    /// implicit deny).
    pub default_accept: bool,
}

impl RouteMap {
    /// A map that accepts everything unchanged.
    pub fn accept_all(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            terms: Vec::new(),
            default_accept: true,
        }
    }

    /// Whether the outcome depends on the attributes only, not on the prefix,
    /// so it can be computed once per attribute set.
    pub fn is_prefix_independent(&self) -> bool {
        fn independent(m: &Match) -> bool {
            match m {
                Match::Prefix(_) => false,
                Match::Not(inner) => independent(inner),
                _ => true,
            }
        }
        self.terms.iter().all(|t| t.matches.iter().all(independent))
    }

    /// Runs the terms over a route. `Ok(None)`: accepted unchanged; `Ok(Some)`:
    /// accepted with these attributes; `Err`: rejected, and why.
    pub fn apply(
        &self,
        prefix: &IpNet,
        attrs: &RouteAttrs,
    ) -> Result<Option<RouteAttrs>, Rejection> {
        let mut changed: Option<RouteAttrs> = None;
        for term in &self.terms {
            let current = changed.as_ref().unwrap_or(attrs);
            if !term.matches.iter().all(|m| m.matches(prefix, current)) {
                continue;
            }
            if term.action == Action::Reject {
                return Err(Rejection::Term(term.name.clone()));
            }
            if !term.sets.is_empty() {
                let mut next = changed.take().unwrap_or_else(|| attrs.clone());
                for s in &term.sets {
                    s.apply(&mut next);
                }
                changed = Some(next);
            }
            if term.action == Action::Accept {
                return Ok(changed);
            }
        }
        if self.default_accept {
            Ok(changed)
        } else {
            Err(Rejection::Default)
        }
    }
}

/// Why an [`ImportGuard`] refused a route; the `reason` label of the rejection
/// counters and metrics, and `guard` in the speaker's `Event::Rejected`.
/// Declared in the order the guard checks (the speaker relies on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuardReason {
    /// The prefix is an admin-forbidden prefix or more specific than one.
    Forbidden,
    /// The prefix is outside the allowed prefixes (or their ge/le lengths).
    NotAllowed,
    /// The next hop (NEXT_HOP, RFC 4271 section 5.1.3, or the MP_REACH_NLRI
    /// next hop, RFC 4760) is not the peer's own address: a third-party next
    /// hop the peer may not set.
    NextHop,
    /// The AS path (RFC 4271 section 5.1.2) is not just the peer's AS: the
    /// peer passes on a route it did not originate.
    AsPath,
    /// Accepting it would take the peer over its prefix limit. Unlike the
    /// RFC 4486 limit (`NeighborConfig::max_prefixes`) this refuses the route
    /// and keeps the session.
    MaxPrefixes,
}

impl GuardReason {
    /// Every reason, in the order the guard checks them.
    pub const ALL: [GuardReason; 5] = [
        Self::Forbidden,
        Self::NotAllowed,
        Self::NextHop,
        Self::AsPath,
        Self::MaxPrefixes,
    ];

    /// The metric label and status text: `forbidden`, `not-allowed`,
    /// `next-hop`, `as-path`, `max-prefixes`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forbidden => "forbidden",
            Self::NotAllowed => "not-allowed",
            Self::NextHop => "next-hop",
            Self::AsPath => "as-path",
            Self::MaxPrefixes => "max-prefixes",
        }
    }
}

impl fmt::Display for GuardReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A route an [`ImportGuard`] refused, with what an operator needs to see why.
/// [`GuardRefusal::reason`] is the counter label; `Display` is the sentence for
/// logs, events and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardRefusal {
    /// The prefix is this forbidden prefix or more specific than it.
    Forbidden(IpNet),
    /// No allowed entry admits the prefix.
    NotAllowed,
    /// The next hop is not the peer's session address.
    NextHop {
        /// The route's next hop (`None`: it had none).
        next_hop: Option<NextHop>,
        /// The peer's address.
        peer: IpAddr,
    },
    /// The AS path is not one AS_SEQUENCE of the peer's AS only.
    AsPath {
        /// The route's AS path (`None`: it had none).
        as_path: Option<AsPath>,
        /// The peer's AS.
        peer_as: u32,
    },
    /// The peer already has this many prefixes accepted.
    MaxPrefixes(u32),
}

impl GuardRefusal {
    /// The kind of refusal, without the details.
    pub fn reason(&self) -> GuardReason {
        match self {
            Self::Forbidden(_) => GuardReason::Forbidden,
            Self::NotAllowed => GuardReason::NotAllowed,
            Self::NextHop { .. } => GuardReason::NextHop,
            Self::AsPath { .. } => GuardReason::AsPath,
            Self::MaxPrefixes(_) => GuardReason::MaxPrefixes,
        }
    }
}

impl fmt::Display for GuardRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Forbidden(p) => write!(f, "forbidden prefix {p}"),
            Self::NotAllowed => f.write_str("outside the allowed prefixes"),
            Self::NextHop { next_hop, peer } => {
                match next_hop {
                    None => f.write_str("no next hop")?,
                    Some(NextHop::V4(a)) => write!(f, "next hop {a}")?,
                    Some(NextHop::V6 {
                        global,
                        link_local: None,
                    }) => write!(f, "next hop {global}")?,
                    Some(NextHop::V6 {
                        global,
                        link_local: Some(ll),
                    }) => write!(f, "next hop {global} (link-local {ll})")?,
                    Some(NextHop::Other(_)) => f.write_str("an unparsed next hop")?,
                }
                write!(f, " is not the peer {peer}")
            }
            Self::AsPath { as_path, peer_as } => match as_path {
                Some(p) if !p.segments.is_empty() => {
                    write!(f, "AS path {p} is not just the peer's AS {peer_as}")
                }
                _ => write!(f, "an empty AS path is not just the peer's AS {peer_as}"),
            },
            Self::MaxPrefixes(limit) => write!(f, "over the limit of {limit} prefixes"),
        }
    }
}

/// What a peer that is not trusted (a pod) may announce, checked in this
/// order: forbidden prefixes (and anything more specific) -> allowed prefixes
/// with ge/le -> next hop is the peer's own address -> AS path is exactly the
/// peer's AS -> max prefixes. A refused route is dropped, counted by
/// [`GuardReason`], and the session stays up: unlike a route map rejection or
/// the RFC 4486 prefix limit, nothing here ever resets the session.
///
/// The speaker applies it (`NeighborConfig::guard`) before the import route
/// map, and a guard counts as an import policy for RFC 8212.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ImportGuard {
    /// Never accepted, nor anything more specific (pod and service CIDRs, node
    /// subnets). A zero-length entry (`0.0.0.0/0`, `::/0`) forbids the default
    /// route itself only, since every prefix of its family is more specific.
    pub forbidden: Vec<IpNet>,
    /// Only these are accepted (ge/le as in prefix lists); empty admits none.
    pub allowed: PrefixSet,
    /// The next hop must be the peer's session address (for an IPv6 next hop
    /// either of a global + link-local pair counts, and over an IPv4 session the
    /// IPv4-mapped form of the peer's address does too).
    pub next_hop_is_peer: bool,
    /// The AS path must be one or more AS_SEQUENCE segments of the peer's AS
    /// only (repeats, i.e. prepending, allowed; AS_SET, confederation segments
    /// and an empty path refused).
    pub as_path_is_peer: bool,
    /// At most this many prefixes (both families together) accepted from the
    /// peer; a new prefix beyond it is refused, a replacement of an accepted one
    /// passes, a withdrawal frees a slot. No Cease.
    pub max_prefixes: Option<u32>,
}

impl ImportGuard {
    /// The per-route checks (all but max prefixes, which needs the peer's
    /// count): `Ok` when the route from `peer` (AS `peer_as`) passes, else the
    /// first reason it fails, in the guard's order.
    pub fn check(
        &self,
        prefix: &IpNet,
        attrs: &RouteAttrs,
        peer: IpAddr,
        peer_as: u32,
    ) -> Result<(), GuardReason> {
        self.check_detailed(prefix, attrs, peer, peer_as)
            .map_err(|r| r.reason())
    }

    /// [`ImportGuard::check`] with the details of a refusal: which forbidden
    /// prefix covers the route, which next hop or AS path it had.
    pub fn check_detailed(
        &self,
        prefix: &IpNet,
        attrs: &RouteAttrs,
        peer: IpAddr,
        peer_as: u32,
    ) -> Result<(), GuardRefusal> {
        if let Some(f) = self.forbidden_by(prefix) {
            return Err(GuardRefusal::Forbidden(f));
        }
        if !self.allowed.matches(prefix) {
            return Err(GuardRefusal::NotAllowed);
        }
        if self.next_hop_is_peer && !next_hop_is(attrs.next_hop.as_ref(), peer) {
            return Err(GuardRefusal::NextHop {
                next_hop: attrs.next_hop.clone(),
                peer,
            });
        }
        let as_path = attrs.attributes.as_path.as_ref();
        if self.as_path_is_peer && !as_path.is_some_and(|p| is_only(p, peer_as)) {
            return Err(GuardRefusal::AsPath {
                as_path: as_path.cloned(),
                peer_as,
            });
        }
        Ok(())
    }

    /// The first forbidden prefix that `prefix` is, or is more specific than.
    pub fn forbidden_by(&self, prefix: &IpNet) -> Option<IpNet> {
        self.forbidden.iter().copied().find(|f| {
            if f.prefix_len() == 0 {
                // "More specific than the default route" is everything.
                prefix.prefix_len() == 0 && f.contains(prefix)
            } else {
                f.contains(prefix)
            }
        })
    }
}

/// Whether a path is one or more AS_SEQUENCEs of `asn` alone.
fn is_only(path: &AsPath, asn: u32) -> bool {
    !path.segments.is_empty()
        && path.segments.iter().all(|s| {
            s.kind == SegmentType::Sequence
                && !s.asns.is_empty()
                && s.asns.iter().all(|&a| a == asn)
        })
}

/// Whether a route's next hop is the peer's address: either address of an
/// IPv6 global + link-local pair counts, IPv4-mapped forms count as IPv4.
fn next_hop_is(next_hop: Option<&NextHop>, peer: IpAddr) -> bool {
    let peer = canonical(peer);
    match next_hop {
        Some(NextHop::V4(a)) => peer == IpAddr::V4(*a),
        Some(NextHop::V6 { global, link_local }) => {
            canonical(IpAddr::V6(*global)) == peer
                || link_local.is_some_and(|ll| IpAddr::V6(ll) == peer)
        }
        Some(NextHop::Other(_)) | None => false,
    }
}

/// An IPv4-mapped IPv6 address as IPv4; others unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}
