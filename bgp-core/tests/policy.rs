//! Route maps: prefix sets with ge/le, AS path and community conditions, changes
//! and the order of terms.

// A failed expectation in a test is a panic by design.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;

use bgp_core::policy::{Action, Match, PrefixEntry, PrefixSet, Rejection, RouteMap, Set, Term};
use bgp_core::rib::RouteAttrs;
use bgp_core::wire::{AsPath, Community, LargeCommunity, NextHop, PathAttributes};
use ipnet::IpNet;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn entry(p: &str, ge: Option<u8>, le: Option<u8>) -> PrefixEntry {
    PrefixEntry {
        prefix: net(p),
        ge,
        le,
    }
}

fn route(path: &[u32], communities: &[Community]) -> RouteAttrs {
    RouteAttrs {
        attributes: PathAttributes {
            as_path: Some(AsPath::from_sequence(path.iter().copied())),
            communities: communities.to_vec(),
            ..Default::default()
        },
        next_hop: Some(NextHop::V4(Ipv4Addr::new(10, 0, 0, 2))),
    }
}

fn term(name: &str, matches: Vec<Match>, sets: Vec<Set>, action: Action) -> Term {
    Term {
        name: name.into(),
        matches,
        sets,
        action,
    }
}

#[test]
fn prefix_entry_ge_le() {
    let exact = entry("10.0.0.0/8", None, None);
    assert!(exact.matches(&net("10.0.0.0/8")));
    assert!(!exact.matches(&net("10.1.0.0/16")));

    let le = entry("10.0.0.0/8", None, Some(24));
    assert!(le.matches(&net("10.0.0.0/8")) && le.matches(&net("10.1.2.0/24")));
    assert!(!le.matches(&net("10.1.2.0/25")));

    let ge = entry("10.0.0.0/8", Some(24), None);
    assert!(!ge.matches(&net("10.1.0.0/16")));
    assert!(ge.matches(&net("10.1.2.0/24")) && ge.matches(&net("10.1.2.3/32")));

    let both = entry("192.0.2.0/24", Some(26), Some(28));
    assert!(!both.matches(&net("192.0.2.0/25")));
    assert!(both.matches(&net("192.0.2.64/26")) && both.matches(&net("192.0.2.16/28")));
    assert!(!both.matches(&net("192.0.2.0/29")));

    // Outside the covering prefix, or shorter than it, or the other family.
    assert!(!le.matches(&net("11.0.0.0/24")));
    assert!(!le.matches(&net("0.0.0.0/0")));
    assert!(!le.matches(&net("2001:db8::/32")));
    let v6 = PrefixEntry::orlonger(net("2001:db8::/32"));
    assert!(v6.matches(&net("2001:db8:1::/48")) && v6.matches(&net("2001:db8::1/128")));
    assert_eq!(both.to_string(), "192.0.2.0/24 ge 26 le 28");
}

#[test]
fn conditions() {
    let r = route(
        &[65001, 65002, 65003],
        &[Community::new(65001, 7), Community::NO_EXPORT],
    );
    let p = net("203.0.113.0/24");
    assert!(Match::OriginAs(65003).matches(&p, &r));
    assert!(!Match::OriginAs(65001).matches(&p, &r));
    assert!(Match::AsPathContains(65002).matches(&p, &r));
    assert!(Match::AsPathLength { min: 3, max: 3 }.matches(&p, &r));
    assert!(!Match::AsPathLength { min: 0, max: 2 }.matches(&p, &r));
    assert!(Match::Community(Community::NO_EXPORT).matches(&p, &r));
    assert!(!Match::LargeCommunity(LargeCommunity::new(1, 2, 3)).matches(&p, &r));
    assert!(Match::Not(Box::new(Match::Community(Community::NO_ADVERTISE))).matches(&p, &r));
    let set = PrefixSet::new(vec![entry("203.0.113.0/24", None, Some(32))]);
    assert!(Match::Prefix(set.clone()).matches(&p, &r));
    assert!(!Match::Prefix(set).matches(&net("198.51.100.0/24"), &r));
}

#[test]
fn terms_run_in_order_and_changes_accumulate() {
    let vips = PrefixSet::new(vec![entry("192.0.2.0/24", Some(32), Some(32))]);
    let map = RouteMap {
        name: "pods-in".into(),
        terms: vec![
            term(
                "no-hijack",
                vec![Match::Prefix(PrefixSet::new(vec![entry(
                    "10.0.0.0/8",
                    None,
                    Some(32),
                )]))],
                vec![],
                Action::Reject,
            ),
            term(
                "tag",
                vec![],
                vec![
                    Set::AddCommunities(vec![Community::new(65000, 1)]),
                    Set::Med(10),
                ],
                Action::Next,
            ),
            term(
                "vips",
                vec![Match::Prefix(vips)],
                vec![Set::LocalPref(200)],
                Action::Accept,
            ),
        ],
        default_accept: false,
    };
    let r = route(&[65100], &[]);

    assert_eq!(
        map.apply(&net("10.1.0.0/16"), &r),
        Err(Rejection::Term("no-hijack".into()))
    );
    assert_eq!(
        map.apply(&net("198.51.100.0/24"), &r),
        Err(Rejection::Default)
    );

    let out = map
        .apply(&net("192.0.2.10/32"), &r)
        .unwrap()
        .expect("changed");
    assert_eq!(out.attributes.local_pref, Some(200));
    assert_eq!(
        out.attributes.med,
        Some(10),
        "changes of a Next term carry on"
    );
    assert_eq!(out.attributes.communities, vec![Community::new(65000, 1)]);
    assert_eq!(r.attributes.local_pref, None, "the input is not modified");
}

#[test]
fn unchanged_routes_are_not_copied() {
    let map = RouteMap {
        name: "pass".into(),
        terms: vec![term("all", vec![], vec![], Action::Accept)],
        default_accept: false,
    };
    assert_eq!(map.apply(&net("192.0.2.0/24"), &route(&[1], &[])), Ok(None));
    assert_eq!(
        RouteMap::accept_all("x").apply(&net("192.0.2.0/24"), &route(&[1], &[])),
        Ok(None)
    );
}

#[test]
fn sets() {
    let mut map = RouteMap::accept_all("out");
    map.terms.push(term(
        "all",
        vec![],
        vec![
            Set::Prepend {
                asn: 65000,
                times: 2,
            },
            Set::RemoveCommunities(vec![Community::new(65001, 7)]),
            Set::AddCommunities(vec![Community::GRACEFUL_SHUTDOWN, Community::NO_EXPORT]),
            Set::AddLargeCommunities(vec![LargeCommunity::new(65000, 1, 1)]),
            Set::NextHop("2001:db8::1".parse().unwrap()),
        ],
        Action::Accept,
    ));
    let r = route(&[65001], &[Community::new(65001, 7), Community::NO_EXPORT]);
    let out = map.apply(&net("192.0.2.0/24"), &r).unwrap().unwrap();
    assert_eq!(
        out.attributes.as_path,
        Some(AsPath::from_sequence([65000, 65000, 65001]))
    );
    assert_eq!(
        out.attributes.communities,
        vec![Community::GRACEFUL_SHUTDOWN, Community::NO_EXPORT]
    );
    assert_eq!(
        out.attributes.large_communities,
        vec![LargeCommunity::new(65000, 1, 1)]
    );
    assert_eq!(
        out.next_hop,
        Some(NextHop::V6 {
            global: "2001:db8::1".parse().unwrap(),
            link_local: None
        })
    );
}
