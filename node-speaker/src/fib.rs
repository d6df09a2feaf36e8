//! The FIB state machine: from the speaker's route events to kernel writes.
//!
//! [`FibState`] keeps what should be in the kernel (`desired`, per table and
//! prefix, from the pod paths of each `Event::Route`) and what is there
//! (`installed`, as confirmed by the kernel). [`FibState::take_writes`] turns
//! the difference for the keys that changed into writes: one multipath route
//! per table and prefix (replace), or a delete. Nothing here does I/O; the
//! daemon feeds events in and kernel answers back ([`FibState::written`]).
//!
//! Routes an earlier run left in the kernel are adopted on start
//! ([`FibState::adopt`]): those no longer valid are deleted at once, the rest
//! stay (no traffic dropped). Until [`FibState::end_hold`] every adopted next
//! hop is *held*: kept beside the next hops live sessions announce, so pods
//! reconnecting one by one never shrink a route they are all still serving.
//! When the hold ends, held next hops that no live session announced again
//! leave. A route that came back with the same next hops is never rewritten.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use bgp_core::speaker::RoutePath;
use bgp_core::wire::NextHop as BgpNextHop;
use ipnet::IpNet;
use podpeer_host::netlink::{NextHop, Route};
use serde::Serialize;

/// A table and a prefix: one kernel route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Key {
    /// The routing table.
    pub table: u32,
    /// The destination.
    pub prefix: IpNet,
}

/// One next hop of a desired route and the pod it leads to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
pub struct Via {
    /// The gateway.
    pub gateway: IpAddr,
    /// The peer (pod) that announced it.
    pub peer: IpAddr,
    /// The peer's group.
    pub group: String,
    /// The interface of a link-local gateway (an unnumbered peer).
    #[serde(default)]
    pub ifindex: Option<u32>,
}

/// How a route path maps to the FIB: the table of the peer's group (none for
/// fabric and local paths) and the group's name.
pub trait GroupOf {
    /// The group name and table of `peer`, if it is a pod.
    fn group_of(&self, peer: IpAddr) -> Option<(&str, u32)>;
}

impl GroupOf for crate::config::NodeConfig {
    fn group_of(&self, peer: IpAddr) -> Option<(&str, u32)> {
        crate::config::NodeConfig::group_of(self, peer).map(|g| (g.name.as_str(), g.table))
    }
}

/// A route as installed (or adopted from an earlier run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The next hops in the kernel, sorted.
    pub next_hops: Vec<NextHop>,
    /// Those of them an earlier run left and no live session announced
    /// again yet (sorted); kept while the hold lasts.
    pub held: Vec<NextHop>,
}

impl Installed {
    /// Whether an earlier run's next hops are still held here.
    pub fn adopted(&self) -> bool {
        !self.held.is_empty()
    }
}

/// A kernel write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Install or replace this route.
    Replace(Route),
    /// Delete the route of this table and prefix.
    Delete(Key),
}

impl Write {
    /// The table and prefix written.
    pub fn key(&self) -> Key {
        match self {
            Self::Replace(r) => Key {
                table: r.table,
                prefix: r.prefix,
            },
            Self::Delete(k) => *k,
        }
    }
}

/// What to do about one key: the pure decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The kernel already has it right (or it is held for a returning peer).
    Keep,
    /// Write these next hops.
    Replace(Vec<NextHop>),
    /// Remove it.
    Delete,
}

/// Decides one key: the next hops live sessions announce (`desired`, sorted;
/// empty: none), what is `installed`, and whether an earlier run's next hops
/// are still `holding` for their peers. While holding, the route keeps its
/// held next hops beside the desired ones.
pub fn decide(desired: &[NextHop], installed: Option<&Installed>, holding: bool) -> Decision {
    let want = effective(desired, installed, holding);
    match installed {
        Some(i) if i.next_hops == want => Decision::Keep,
        Some(_) if want.is_empty() => Decision::Delete,
        None if want.is_empty() => Decision::Keep,
        _ => Decision::Replace(want),
    }
}

/// The next hops to have in the kernel: the desired ones, plus the held ones
/// while holding; sorted, each once.
fn effective(desired: &[NextHop], installed: Option<&Installed>, holding: bool) -> Vec<NextHop> {
    let mut want = desired.to_vec();
    if holding && let Some(i) = installed {
        want.extend(i.held.iter().cloned());
        want.sort();
        want.dedup();
    }
    want
}

/// The held next hops that stay held: not announced again, hold not over.
fn still_held(held: &[NextHop], desired: &[NextHop], holding: bool) -> Vec<NextHop> {
    if !holding {
        return Vec::new();
    }
    held.iter()
        .filter(|h| !desired.contains(h))
        .cloned()
        .collect()
}

/// The FIB's state; see the module documentation.
#[derive(Debug, Default)]
pub struct FibState {
    desired: BTreeMap<Key, Vec<Via>>,
    installed: BTreeMap<Key, Installed>,
    /// The tables each prefix is desired in, to clear them when it changes.
    tables_of: HashMap<IpNet, BTreeSet<u32>>,
    dirty: BTreeSet<Key>,
    retry: BTreeSet<Key>,
    holding: bool,
}

/// The next hop to install for a pod path: its BGP next hop (the global IPv6
/// address, or the link-local one with the session's interface when that is
/// all there is, also for an IPv4 prefix: RFC 8950), else the peer's address.
fn gateway(path: &RoutePath, peer: IpAddr) -> (IpAddr, Option<u32>) {
    path.gateway()
        .unwrap_or_else(|| (address_only(path, peer), None))
}

/// The gateway address when the session's interface is not known.
fn address_only(path: &RoutePath, peer: IpAddr) -> IpAddr {
    match &path.next_hop {
        Some(BgpNextHop::V4(a)) => IpAddr::V4(*a),
        Some(BgpNextHop::V6 { global, link_local }) => {
            if global.is_unspecified() || global.is_unicast_link_local() {
                link_local.map_or(IpAddr::V6(*global), IpAddr::V6)
            } else {
                IpAddr::V6(*global)
            }
        }
        _ => peer,
    }
}

fn is_link_local(a: IpAddr) -> bool {
    bgp_core::unnumbered::is_link_local_ip(a)
}

impl FibState {
    /// An empty FIB.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one `Event::Route`: the pod paths, grouped by their group's
    /// table, become the desired next hops of the prefix in each table.
    /// Returns how many keys changed.
    pub fn route(&mut self, groups: &impl GroupOf, prefix: IpNet, paths: &[RoutePath]) -> usize {
        let mut by_table: BTreeMap<u32, Vec<Via>> = BTreeMap::new();
        for p in paths {
            let Some(peer) = p.neighbor else { continue };
            let Some((group, table)) = groups.group_of(peer) else {
                continue;
            };
            let (gateway, ifindex) = gateway(p, peer);
            by_table.entry(table).or_default().push(Via {
                gateway,
                peer,
                group: group.to_owned(),
                ifindex,
            });
        }
        let old = self.tables_of.remove(&prefix).unwrap_or_default();
        let new: BTreeSet<u32> = by_table.keys().copied().collect();
        let mut changed = 0;
        for &table in old.difference(&new) {
            let key = Key { table, prefix };
            self.desired.remove(&key);
            self.dirty.insert(key);
            changed += 1;
        }
        for (table, mut vias) in by_table {
            vias.sort();
            vias.dedup();
            let key = Key { table, prefix };
            if self.desired.get(&key) != Some(&vias) {
                self.desired.insert(key, vias);
                self.dirty.insert(key);
                changed += 1;
            }
        }
        if !new.is_empty() {
            self.tables_of.insert(prefix, new);
        }
        changed
    }

    /// Forgets everything desired and marks every key dirty: before feeding
    /// a full RIB dump again (after missing events).
    pub fn reset_desired(&mut self) {
        self.dirty.extend(self.desired.keys().copied());
        self.dirty.extend(self.installed.keys().copied());
        self.desired.clear();
        self.tables_of.clear();
    }

    /// Takes over our routes found in the kernel at start. Those `valid`
    /// rejects are returned as deletes to make at once; the others are kept
    /// until [`FibState::end_hold`].
    pub fn adopt(&mut self, routes: Vec<Route>, valid: impl Fn(u32, &IpNet) -> bool) -> Vec<Write> {
        self.holding = true;
        let mut deletes = Vec::new();
        for r in routes {
            let key = Key {
                table: r.table,
                prefix: r.prefix,
            };
            // Compared by gateway: we write an interface only for link-local
            // gateways; for the others the kernel reports the one it resolved.
            let mut next_hops: Vec<NextHop> = r
                .next_hops
                .into_iter()
                .map(|h| NextHop {
                    gateway: h.gateway,
                    ifindex: h.ifindex.filter(|_| is_link_local(h.gateway)),
                })
                .collect();
            next_hops.sort();
            next_hops.dedup();
            self.installed.insert(
                key,
                Installed {
                    held: next_hops.clone(),
                    next_hops,
                },
            );
            if !valid(r.table, &r.prefix) {
                deletes.push(Write::Delete(key));
            }
        }
        deletes
    }

    /// Whether adopted routes are still held for their peers.
    pub fn holding(&self) -> bool {
        self.holding
    }

    /// The hold for an earlier run's routes is over: those no live session
    /// announced again become deletable (see [`FibState::take_writes`]).
    pub fn end_hold(&mut self) {
        self.holding = false;
        let adopted = self
            .installed
            .iter()
            .filter(|(_, i)| i.adopted())
            .map(|(k, _)| *k);
        self.dirty.extend(adopted);
    }

    /// How many keys changed since the last [`FibState::take_writes`].
    pub fn changed(&self) -> usize {
        self.dirty.len()
    }

    /// How many keys wait to be written (changed, or to retry).
    pub fn pending(&self) -> usize {
        self.dirty.len() + self.retry.len()
    }

    /// Keeps keys whose write failed, to look at again on [`FibState::retry_now`].
    pub fn retry_later(&mut self, keys: impl IntoIterator<Item = Key>) {
        self.retry.extend(keys);
    }

    /// Marks the keys kept by [`FibState::retry_later`] to be written again.
    pub fn retry_now(&mut self) {
        let keys = std::mem::take(&mut self.retry);
        self.dirty.extend(keys);
    }

    /// Whether the route of `key` is one an earlier run left and no peer
    /// announced again.
    pub fn is_adopted(&self, key: &Key) -> bool {
        self.installed.get(key).is_some_and(|i| i.adopted())
    }

    /// The writes that bring the kernel to the desired state for every key
    /// that changed. Keys already right are settled here (and adopted ones
    /// announced again stop being adopted).
    pub fn take_writes(&mut self) -> Vec<Write> {
        let mut writes = Vec::new();
        for key in std::mem::take(&mut self.dirty) {
            let desired: Vec<NextHop> = self.next_hops(&key);
            let installed = self.installed.get(&key);
            match decide(&desired, installed, self.holding) {
                Decision::Keep => {
                    let holding = self.holding;
                    if let Some(i) = self.installed.get_mut(&key) {
                        i.held = still_held(&i.held, &desired, holding);
                    }
                }
                Decision::Replace(next_hops) => writes.push(Write::Replace(Route {
                    table: key.table,
                    prefix: key.prefix,
                    next_hops,
                })),
                Decision::Delete => writes.push(Write::Delete(key)),
            }
        }
        writes
    }

    /// The kernel's answer to a write: on success the installed state follows
    /// it; on failure it stays as it was (a replace is atomic, a failed delete
    /// left the route) and the caller retries later.
    pub fn written(&mut self, write: &Write, ok: bool) {
        if !ok {
            return;
        }
        match write {
            Write::Replace(r) => {
                let key = write.key();
                let desired = self.next_hops(&key);
                let held = self
                    .installed
                    .get(&key)
                    .map(|i| {
                        let kept: Vec<NextHop> = still_held(&i.held, &desired, self.holding);
                        kept.into_iter()
                            .filter(|h| r.next_hops.contains(h))
                            .collect()
                    })
                    .unwrap_or_default();
                self.installed.insert(
                    key,
                    Installed {
                        next_hops: r.next_hops.clone(),
                        held,
                    },
                );
            }
            Write::Delete(k) => {
                self.installed.remove(k);
            }
        }
    }

    /// The desired next hops of a key, sorted, each gateway once.
    fn next_hops(&self, key: &Key) -> Vec<NextHop> {
        let mut v: Vec<NextHop> = self
            .desired
            .get(key)
            .map(|vias| {
                vias.iter()
                    .map(|v| NextHop {
                        gateway: v.gateway,
                        ifindex: v.ifindex,
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v.dedup();
        v
    }

    /// The installed routes.
    pub fn installed(&self) -> &BTreeMap<Key, Installed> {
        &self.installed
    }

    /// The desired routes with their pods.
    pub fn desired(&self) -> &BTreeMap<Key, Vec<Via>> {
        &self.desired
    }

    /// Installed routes per table.
    pub fn installed_per_table(&self) -> BTreeMap<u32, usize> {
        let mut m = BTreeMap::new();
        for k in self.installed.keys() {
            *m.entry(k.table).or_default() += 1;
        }
        m
    }

    /// Every route desired or installed, for status: desired vias, installed
    /// next hops, and whether the kernel has exactly what is desired.
    pub fn view(&self) -> Vec<RouteView> {
        let keys: BTreeSet<Key> = self
            .desired
            .keys()
            .chain(self.installed.keys())
            .copied()
            .collect();
        keys.into_iter()
            .map(|key| {
                let vias = self.desired.get(&key).cloned().unwrap_or_default();
                let installed = self.installed.get(&key);
                let want = self.next_hops(&key);
                RouteView {
                    table: key.table,
                    prefix: key.prefix,
                    via: vias,
                    installed: installed.is_some_and(|i| i.next_hops == want && !want.is_empty()),
                    kernel_next_hops: installed
                        .map(|i| i.next_hops.iter().map(|n| n.gateway).collect())
                        .unwrap_or_default(),
                    stale: installed.is_some_and(Installed::adopted),
                }
            })
            .collect()
    }
}

/// One route as `podpeer-node routes` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteView {
    /// The table.
    pub table: u32,
    /// The prefix.
    pub prefix: IpNet,
    /// The pods it leads to (none: only left in the kernel, to be removed).
    pub via: Vec<Via>,
    /// The kernel has exactly the desired next hops.
    pub installed: bool,
    /// The next hops in the kernel.
    pub kernel_next_hops: Vec<IpAddr>,
    /// Left by an earlier run and not announced again (yet).
    pub stale: bool,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use bgp_core::rib::RouteAttrs;

    use super::*;

    /// Pods at 10.1.x.y are group "lb" (table 100); 10.2.x.y "dns" (table
    /// 200); anything else (the fabric) is no group.
    struct Groups;
    impl GroupOf for Groups {
        fn group_of(&self, peer: IpAddr) -> Option<(&str, u32)> {
            match peer {
                IpAddr::V4(a) if a.octets()[..2] == [10, 1] => Some(("lb", 100)),
                IpAddr::V4(a) if a.octets()[..2] == [10, 2] => Some(("dns", 200)),
                _ => None,
            }
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn path(peer: &str) -> RoutePath {
        let IpAddr::V4(a) = ip(peer) else { panic!() };
        RoutePath {
            neighbor: Some(ip(peer)),
            next_hop: Some(BgpNextHop::V4(a)),
            attrs: empty_attrs(),
            ifindex: None,
        }
    }

    fn nh(s: &str) -> NextHop {
        NextHop {
            gateway: ip(s),
            ifindex: None,
        }
    }

    fn replace(table: u32, prefix: &str, hops: &[&str]) -> Write {
        Write::Replace(Route {
            table,
            prefix: net(prefix),
            next_hops: hops.iter().map(|h| nh(h)).collect(),
        })
    }

    fn delete(table: u32, prefix: &str) -> Write {
        Write::Delete(Key {
            table,
            prefix: net(prefix),
        })
    }

    /// Takes the writes and reports them all successful.
    fn flush(f: &mut FibState) -> Vec<Write> {
        let w = f.take_writes();
        for x in &w {
            f.written(x, true);
        }
        w
    }

    const VIP: &str = "198.51.100.10/32";

    fn empty_attrs() -> Arc<RouteAttrs> {
        Arc::new(RouteAttrs {
            attributes: Default::default(),
            next_hop: None,
        })
    }

    #[test]
    fn decisions() {
        let hops = |v: &[&str]| v.iter().map(|h| nh(h)).collect::<Vec<_>>();
        let i = |v: &[&str], held: &[&str]| Installed {
            next_hops: hops(v),
            held: hops(held),
        };
        let a = hops(&["10.1.0.1"]);
        assert_eq!(decide(&a, None, false), Decision::Replace(a.clone()));
        assert_eq!(
            decide(&a, Some(&i(&["10.1.0.1"], &[])), false),
            Decision::Keep
        );
        assert_eq!(
            decide(&a, Some(&i(&["10.1.0.1"], &["10.1.0.1"])), true),
            Decision::Keep
        );
        // While holding, an earlier run's next hop stays beside a new one.
        assert_eq!(
            decide(&a, Some(&i(&["10.1.0.2"], &["10.1.0.2"])), true),
            Decision::Replace(hops(&["10.1.0.1", "10.1.0.2"]))
        );
        // A pod of the earlier run reconnecting first does not push the
        // others out.
        assert_eq!(
            decide(
                &a,
                Some(&i(
                    &["10.1.0.1", "10.1.0.2", "10.1.0.3"],
                    &["10.1.0.1", "10.1.0.2", "10.1.0.3"]
                )),
                true
            ),
            Decision::Keep
        );
        // The hold over, only what is announced stays.
        assert_eq!(
            decide(
                &a,
                Some(&i(&["10.1.0.1", "10.1.0.2"], &["10.1.0.2"])),
                false
            ),
            Decision::Replace(a.clone())
        );
        assert_eq!(decide(&[], None, false), Decision::Keep);
        assert_eq!(
            decide(&[], Some(&i(&["10.1.0.1"], &[])), true),
            Decision::Delete
        );
        assert_eq!(
            decide(&[], Some(&i(&["10.1.0.1"], &["10.1.0.1"])), true),
            Decision::Keep
        );
        assert_eq!(
            decide(&[], Some(&i(&["10.1.0.1"], &["10.1.0.1"])), false),
            Decision::Delete
        );
    }

    #[test]
    fn ecmp_grows_and_shrinks_as_pods_come_and_go() {
        let mut f = FibState::new();
        f.route(&Groups, net(VIP), &[path("10.1.0.1")]);
        assert_eq!(flush(&mut f), vec![replace(100, VIP, &["10.1.0.1"])]);
        f.route(
            &Groups,
            net(VIP),
            &[path("10.1.0.3"), path("10.1.0.1"), path("10.1.0.2")],
        );
        assert_eq!(
            flush(&mut f),
            vec![replace(100, VIP, &["10.1.0.1", "10.1.0.2", "10.1.0.3"])],
            "one route, three next hops, sorted"
        );
        // The same set again (order differs): nothing to write.
        f.route(
            &Groups,
            net(VIP),
            &[path("10.1.0.2"), path("10.1.0.1"), path("10.1.0.3")],
        );
        assert_eq!(flush(&mut f), vec![]);
        // One pod withdraws.
        f.route(&Groups, net(VIP), &[path("10.1.0.1"), path("10.1.0.3")]);
        assert_eq!(
            flush(&mut f),
            vec![replace(100, VIP, &["10.1.0.1", "10.1.0.3"])]
        );
        // All gone (a peer lost takes its paths with it the same way).
        f.route(&Groups, net(VIP), &[]);
        assert_eq!(flush(&mut f), vec![delete(100, VIP)]);
        assert!(f.installed().is_empty());
        f.route(&Groups, net(VIP), &[]);
        assert_eq!(flush(&mut f), vec![]);
    }

    #[test]
    fn fabric_paths_are_never_installed() {
        let mut f = FibState::new();
        f.route(&Groups, net(VIP), &[path("192.0.2.1")]);
        assert_eq!(flush(&mut f), vec![]);
        f.route(&Groups, net(VIP), &[path("192.0.2.1"), path("10.1.0.1")]);
        assert_eq!(flush(&mut f), vec![replace(100, VIP, &["10.1.0.1"])]);
        let local = RoutePath {
            neighbor: None,
            next_hop: None,
            attrs: empty_attrs(),
            ifindex: None,
        };
        f.route(&Groups, net(VIP), &[local]);
        assert_eq!(flush(&mut f), vec![delete(100, VIP)]);
    }

    #[test]
    fn groups_in_different_tables_get_their_own_routes() {
        let mut f = FibState::new();
        f.route(&Groups, net(VIP), &[path("10.1.0.1"), path("10.2.0.1")]);
        assert_eq!(
            flush(&mut f),
            vec![
                replace(100, VIP, &["10.1.0.1"]),
                replace(200, VIP, &["10.2.0.1"])
            ]
        );
        f.route(&Groups, net(VIP), &[path("10.2.0.1")]);
        assert_eq!(flush(&mut f), vec![delete(100, VIP)]);
        assert_eq!(f.installed_per_table(), BTreeMap::from([(200, 1)]));
    }

    #[test]
    fn a_failed_write_is_retried_and_state_follows_the_kernel() {
        let mut f = FibState::new();
        f.route(&Groups, net(VIP), &[path("10.1.0.1")]);
        let w = f.take_writes();
        assert_eq!(w.len(), 1);
        f.written(&w[0], false);
        assert!(f.installed().is_empty(), "not installed after a failure");
        assert!(!f.view()[0].installed);
        f.retry_later(w.iter().map(Write::key));
        assert_eq!(flush(&mut f), vec![], "not before the retry time");
        f.retry_now();
        assert_eq!(flush(&mut f), vec![replace(100, VIP, &["10.1.0.1"])]);
        assert!(f.view()[0].installed);
        // A failed delete keeps the route in our state, to delete again.
        f.route(&Groups, net(VIP), &[]);
        let w = f.take_writes();
        f.written(&w[0], false);
        assert_eq!(f.installed().len(), 1);
        f.retry_later(w.iter().map(Write::key));
        f.retry_now();
        assert_eq!(flush(&mut f), vec![delete(100, VIP)]);
    }

    #[test]
    fn restart_reconcile_keeps_returning_routes_and_removes_the_rest() {
        let kernel = vec![
            Route {
                table: 100,
                prefix: net("198.51.100.1/32"),
                // As the kernel reports them: with the interface it resolved.
                next_hops: vec![
                    NextHop {
                        gateway: ip("10.1.0.2"),
                        ifindex: Some(7),
                    },
                    NextHop {
                        gateway: ip("10.1.0.1"),
                        ifindex: Some(7),
                    },
                ],
            },
            Route {
                table: 100,
                prefix: net("198.51.100.2/32"),
                next_hops: vec![nh("10.1.0.1")],
            },
            Route {
                table: 100,
                prefix: net("198.51.100.3/32"),
                next_hops: vec![nh("10.1.0.9")],
            },
            // Valid no more (say, a table no group uses now).
            Route {
                table: 300,
                prefix: net("198.51.100.4/32"),
                next_hops: vec![nh("10.1.0.1")],
            },
        ];
        let mut f = FibState::new();
        let now = f.adopt(kernel, |table, _| table != 300);
        assert_eq!(now, vec![delete(300, "198.51.100.4/32")]);
        for w in &now {
            f.written(w, true);
        }
        assert!(f.holding());
        // .1 comes back with the same next hops: untouched, no flap.
        f.route(
            &Groups,
            net("198.51.100.1/32"),
            &[path("10.1.0.1"), path("10.1.0.2")],
        );
        // .2 comes back from another pod: added beside the held one at once.
        f.route(&Groups, net("198.51.100.2/32"), &[path("10.1.0.5")]);
        assert_eq!(
            flush(&mut f),
            vec![replace(100, "198.51.100.2/32", &["10.1.0.1", "10.1.0.5"])]
        );
        // A prefix that comes and goes during the hold: its withdraw is
        // honoured, the route was ours to install.
        f.route(&Groups, net("198.51.100.7/32"), &[path("10.1.0.1")]);
        f.route(&Groups, net("198.51.100.7/32"), &[]);
        assert_eq!(flush(&mut f), vec![]);
        // .3 never came back: removed when the hold ends; .2 loses the held
        // next hop no one announced again.
        f.end_hold();
        assert_eq!(
            flush(&mut f),
            vec![
                replace(100, "198.51.100.2/32", &["10.1.0.5"]),
                delete(100, "198.51.100.3/32")
            ]
        );
        assert_eq!(
            f.installed().keys().map(|k| k.prefix).collect::<Vec<_>>(),
            vec![net("198.51.100.1/32"), net("198.51.100.2/32")]
        );
        assert!(f.installed().values().all(|i| !i.adopted()));
    }

    #[test]
    fn pods_reconnecting_one_by_one_never_shrink_a_held_route() {
        let mut f = FibState::new();
        let three = ["10.1.0.1", "10.1.0.2", "10.1.0.3"];
        f.adopt(
            vec![Route {
                table: 100,
                prefix: net(VIP),
                next_hops: three.iter().map(|h| nh(h)).collect(),
            }],
            |_, _| true,
        );
        // The pods' sessions come back one at a time: nothing to write.
        f.route(&Groups, net(VIP), &[path("10.1.0.2")]);
        assert_eq!(flush(&mut f), vec![]);
        f.route(&Groups, net(VIP), &[path("10.1.0.1"), path("10.1.0.2")]);
        assert_eq!(flush(&mut f), vec![]);
        assert!(f.is_adopted(&Key {
            table: 100,
            prefix: net(VIP)
        }));
        // 10.1.0.3 never came back: it leaves when the hold ends.
        f.end_hold();
        assert_eq!(
            flush(&mut f),
            vec![replace(100, VIP, &["10.1.0.1", "10.1.0.2"])]
        );
        assert!(!f.is_adopted(&Key {
            table: 100,
            prefix: net(VIP)
        }));
    }

    #[test]
    fn adopted_route_withdrawn_after_the_hold_is_deleted() {
        let mut f = FibState::new();
        f.adopt(
            vec![Route {
                table: 100,
                prefix: net(VIP),
                next_hops: vec![nh("10.1.0.1")],
            }],
            |_, _| true,
        );
        f.route(&Groups, net(VIP), &[path("10.1.0.1")]);
        assert_eq!(flush(&mut f), vec![]);
        f.end_hold();
        assert_eq!(flush(&mut f), vec![]);
        f.route(&Groups, net(VIP), &[]);
        assert_eq!(flush(&mut f), vec![delete(100, VIP)]);
    }

    #[test]
    fn reset_and_replay_writes_only_differences() {
        let mut f = FibState::new();
        f.route(&Groups, net(VIP), &[path("10.1.0.1")]);
        f.route(&Groups, net("198.51.100.11/32"), &[path("10.1.0.1")]);
        flush(&mut f);
        f.reset_desired();
        f.route(&Groups, net(VIP), &[path("10.1.0.1")]);
        assert_eq!(flush(&mut f), vec![delete(100, "198.51.100.11/32")]);
    }

    #[test]
    fn view_shows_pods_and_installation() {
        let mut f = FibState::new();
        f.route(&Groups, net(VIP), &[path("10.1.0.1"), path("10.1.0.2")]);
        let v = f.view();
        assert_eq!(v.len(), 1);
        assert!(!v[0].installed);
        flush(&mut f);
        let v = f.view();
        assert!(v[0].installed);
        assert_eq!(v[0].via.len(), 2);
        assert_eq!(v[0].via[0].group, "lb");
        assert_eq!(v[0].kernel_next_hops, vec![ip("10.1.0.1"), ip("10.1.0.2")]);
    }

    #[test]
    fn ipv6_next_hops() {
        let p = RoutePath {
            neighbor: Some(ip("10.1.0.1")),
            next_hop: Some(BgpNextHop::V6 {
                global: "fe80::1".parse().unwrap(),
                link_local: None,
            }),
            attrs: empty_attrs(),
            ifindex: None,
        };
        assert_eq!(gateway(&p, ip("10.1.0.1")), (ip("fe80::1"), None));
        let p = RoutePath {
            next_hop: Some(BgpNextHop::V6 {
                global: "2001:db8::1".parse().unwrap(),
                link_local: Some("fe80::1".parse().unwrap()),
            }),
            ..p
        };
        assert_eq!(gateway(&p, ip("10.1.0.1")), (ip("2001:db8::1"), None));
    }

    /// An unnumbered pod (RFC 8950): its IPv4 VIP goes via its link-local
    /// address on the session's interface, which the kernel route needs.
    #[test]
    fn ipv4_via_link_local_keeps_the_interface() {
        let pod: IpAddr = "fe80::2".parse().unwrap();
        let p = RoutePath {
            neighbor: Some(pod),
            next_hop: Some(BgpNextHop::V6 {
                global: "fe80::2".parse().unwrap(),
                link_local: None,
            }),
            attrs: empty_attrs(),
            ifindex: Some(7),
        };
        assert_eq!(gateway(&p, pod), (pod, Some(7)));
        let mut fib = FibState::new();
        let groups = |peer: IpAddr| (peer == pod).then_some(("lb", 100));
        struct G<F>(F);
        impl<F: Fn(IpAddr) -> Option<(&'static str, u32)>> GroupOf for G<F> {
            fn group_of(&self, peer: IpAddr) -> Option<(&str, u32)> {
                (self.0)(peer)
            }
        }
        assert_eq!(fib.route(&G(groups), net("198.51.100.1/32"), &[p]), 1);
        let key = Key {
            table: 100,
            prefix: net("198.51.100.1/32"),
        };
        assert_eq!(
            fib.next_hops(&key),
            vec![NextHop {
                gateway: pod,
                ifindex: Some(7)
            }]
        );
    }
}
