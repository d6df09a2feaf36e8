//! BGP roles and route leak prevention (RFC 9234), as pure functions.
//!
//! A speaker configured with a role towards a neighbor (our *local* role:
//! [`Role::Provider`] means the neighbor is our customer) sends it in the BGP
//! Role capability and checks the neighbor's in its OPEN ([`check_open`]): the
//! pairs that fit are provider/customer, route server/route server client and
//! peer/peer; anything else is refused with OPEN Message Error / Role Mismatch.
//! In strict mode a neighbor that sends no role is refused too.
//!
//! Routes carry the Only to Customer (OTC) attribute once they have been sent
//! to a customer, to a lateral peer or to a route server client: such a route
//! must not go "up" again. [`ingress`] and [`egress`] apply the rules of
//! section 5 on eBGP sessions with a configured role; iBGP sessions leave OTC
//! alone.

use crate::wire::{Capability, Notification, Role, error_code, error_subcode};

/// Whether our `local` role and the neighbor's `remote` role fit together
/// (RFC 9234 section 4.2, table 2).
pub fn roles_fit(local: Role, remote: Role) -> bool {
    matches!(
        (local, remote),
        (Role::Provider, Role::Customer)
            | (Role::Customer, Role::Provider)
            | (Role::RouteServer, Role::RouteServerClient)
            | (Role::RouteServerClient, Role::RouteServer)
            | (Role::Peer, Role::Peer)
    )
}

/// The NOTIFICATION that refuses an OPEN for its role: OPEN Message Error /
/// Role Mismatch (subcode 11).
pub fn role_mismatch() -> Notification {
    Notification::new(error_code::OPEN_MESSAGE, error_subcode::open::ROLE_MISMATCH)
}

/// Checks the neighbor's OPEN capabilities against our role (RFC 9234
/// section 4.2): with no role of ours there is nothing to check; a neighbor
/// that sends roles that differ from each other, or one that does not fit
/// ours, is refused; one that sends none is refused only in `strict` mode.
pub fn check_open(
    local: Option<Role>,
    strict: bool,
    remote_capabilities: &[Capability],
) -> Result<(), Notification> {
    let Some(local) = local else {
        return Ok(());
    };
    let mut remote = remote_capabilities.iter().filter_map(|c| match c {
        Capability::Role(r) => Some(*r),
        _ => None,
    });
    match remote.next() {
        None if strict => Err(role_mismatch()),
        None => Ok(()),
        Some(first) if remote.any(|r| r != first) => Err(role_mismatch()),
        Some(first) if roles_fit(local, first) => Ok(()),
        Some(_) => Err(role_mismatch()),
    }
}

/// Our local role, as found among the capabilities we advertise.
pub fn local_role(our_capabilities: &[Capability]) -> Option<Role> {
    our_capabilities.iter().find_map(|c| match c {
        Capability::Role(r) => Some(*r),
        _ => None,
    })
}

/// What becomes of a route received on an eBGP session where our role is
/// configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    /// Accept the route with this OTC value (unchanged, or added).
    Accept(Option<u32>),
    /// A route leak: the route is ineligible (section 5, rules 1 and 2).
    Leak(Leak),
}

/// Why a received route is a leak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leak {
    /// A customer or route server client sent a route with OTC (it came
    /// "down" to the neighbor and goes "up" again); the OTC value.
    FromCustomer(u32),
    /// A lateral peer sent a route whose OTC is not its own AS; the OTC value.
    FromPeer(u32),
}

impl std::fmt::Display for Leak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::FromCustomer(otc) => write!(
                f,
                "route leak: OTC {otc} from a customer or route server client (RFC 9234)"
            ),
            Self::FromPeer(otc) => write!(
                f,
                "route leak: OTC {otc} from a lateral peer in another AS (RFC 9234)"
            ),
        }
    }
}

/// Section 5 ingress rules for a route with `otc` from a neighbor in
/// `remote_as`, our role towards it being `local`:
///
/// 1. from a customer or a route server client (we are provider or route
///    server), a route with OTC is a leak;
/// 2. from a lateral peer, a route with OTC other than the peer's AS is a leak;
/// 3. from a provider, a peer or a route server (we are customer, peer or
///    route server client), a route without OTC gets OTC = the neighbor's AS.
pub fn ingress(local: Role, remote_as: u32, otc: Option<u32>) -> Ingress {
    match (local, otc) {
        (Role::Provider | Role::RouteServer, Some(v)) => Ingress::Leak(Leak::FromCustomer(v)),
        (Role::Peer, Some(v)) if v != remote_as => Ingress::Leak(Leak::FromPeer(v)),
        (Role::Customer | Role::Peer | Role::RouteServerClient, None) => {
            Ingress::Accept(Some(remote_as))
        }
        _ => Ingress::Accept(otc),
    }
}

/// Section 5 egress rules for a route with `otc` sent to a neighbor, our role
/// towards it being `local` and our AS on the session `local_as`: `None` when
/// the route must not be sent (it has OTC and the neighbor is a provider, a
/// lateral peer or a route server), else the OTC to send (ours added towards
/// a customer, a lateral peer or a route server client when absent).
pub fn egress(local: Role, local_as: u32, otc: Option<u32>) -> Option<Option<u32>> {
    match (local, otc) {
        (Role::Customer | Role::Peer | Role::RouteServerClient, Some(_)) => None,
        (Role::Provider | Role::Peer | Role::RouteServer, None) => Some(Some(local_as)),
        _ => Some(otc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: [Role; 5] = [
        Role::Provider,
        Role::RouteServer,
        Role::RouteServerClient,
        Role::Customer,
        Role::Peer,
    ];

    #[test]
    fn exactly_the_five_pairs_of_table_2_fit() {
        let fitting = [
            (Role::Provider, Role::Customer),
            (Role::Customer, Role::Provider),
            (Role::RouteServer, Role::RouteServerClient),
            (Role::RouteServerClient, Role::RouteServer),
            (Role::Peer, Role::Peer),
        ];
        for local in KNOWN {
            for remote in KNOWN.into_iter().chain([Role::Other(5), Role::Other(255)]) {
                assert_eq!(
                    roles_fit(local, remote),
                    fitting.contains(&(local, remote)),
                    "{local:?} with {remote:?}"
                );
            }
        }
    }

    #[test]
    fn open_check_by_role_capabilities() {
        let caps = |roles: &[Role]| -> Vec<Capability> {
            let mut v = vec![Capability::RouteRefresh];
            v.extend(roles.iter().map(|r| Capability::Role(*r)));
            v
        };
        let mismatch = Err(role_mismatch());
        // (ours, strict, theirs, outcome)
        type Case<'a> = (Option<Role>, bool, &'a [Role], Result<(), Notification>);
        let cases: &[Case] = &[
            (None, false, &[Role::Customer], Ok(())),
            (None, true, &[], Ok(())),
            (Some(Role::Provider), false, &[], Ok(())),
            (Some(Role::Provider), true, &[], mismatch.clone()),
            (Some(Role::Provider), false, &[Role::Customer], Ok(())),
            (Some(Role::Provider), true, &[Role::Customer], Ok(())),
            (
                Some(Role::Provider),
                false,
                &[Role::Provider],
                mismatch.clone(),
            ),
            (Some(Role::Peer), false, &[Role::Peer], Ok(())),
            (Some(Role::Peer), false, &[Role::Customer], mismatch.clone()),
            (
                Some(Role::RouteServer),
                false,
                &[Role::RouteServerClient],
                Ok(()),
            ),
            (
                Some(Role::RouteServerClient),
                false,
                &[Role::RouteServer],
                Ok(()),
            ),
            (
                Some(Role::Customer),
                false,
                &[Role::Other(9)],
                mismatch.clone(),
            ),
            // Several role capabilities must agree (section 4.2).
            (
                Some(Role::Customer),
                false,
                &[Role::Provider, Role::Provider],
                Ok(()),
            ),
            (
                Some(Role::Customer),
                false,
                &[Role::Provider, Role::Peer],
                mismatch.clone(),
            ),
        ];
        for (ours, strict, theirs, want) in cases {
            assert_eq!(
                &check_open(*ours, *strict, &caps(theirs)),
                want,
                "ours {ours:?} strict {strict} theirs {theirs:?}"
            );
        }
        let n = role_mismatch();
        assert_eq!((n.code, n.subcode), (2, 11));
        assert_eq!(n.subcode_name(), Some("Role Mismatch"));
    }

    #[test]
    fn ingress_rules_of_section_5() {
        use Ingress::{Accept, Leak as L};
        const THEM: u32 = 65002;
        // (our role, OTC received, outcome)
        let cases = [
            // Rule 1: from a customer or an RS client, any OTC is a leak.
            (Role::Provider, None, Accept(None)),
            (Role::Provider, Some(THEM), L(Leak::FromCustomer(THEM))),
            (Role::Provider, Some(7), L(Leak::FromCustomer(7))),
            (Role::RouteServer, None, Accept(None)),
            (Role::RouteServer, Some(7), L(Leak::FromCustomer(7))),
            // Rule 2: from a lateral peer, only its own AS as OTC.
            (Role::Peer, Some(THEM), Accept(Some(THEM))),
            (Role::Peer, Some(7), L(Leak::FromPeer(7))),
            // Rule 3: from a provider, a peer or an RS, OTC added when absent.
            (Role::Peer, None, Accept(Some(THEM))),
            (Role::Customer, None, Accept(Some(THEM))),
            (Role::Customer, Some(7), Accept(Some(7))),
            (Role::RouteServerClient, None, Accept(Some(THEM))),
            (Role::RouteServerClient, Some(7), Accept(Some(7))),
            // A role this crate does not know: OTC untouched.
            (Role::Other(9), None, Accept(None)),
            (Role::Other(9), Some(7), Accept(Some(7))),
        ];
        for (role, otc, want) in cases {
            assert_eq!(ingress(role, THEM, otc), want, "{role:?} receiving {otc:?}");
        }
    }

    #[test]
    fn egress_rules_of_section_5() {
        const US: u32 = 65001;
        // (our role, OTC of the route, what is sent)
        let cases = [
            // Towards a provider, a peer or an RS: nothing with OTC goes up.
            (Role::Customer, None, Some(None)),
            (Role::Customer, Some(7), None),
            (Role::RouteServerClient, None, Some(None)),
            (Role::RouteServerClient, Some(7), None),
            (Role::Peer, Some(7), None),
            // Towards a customer, a peer or an RS client: our OTC when absent.
            (Role::Peer, None, Some(Some(US))),
            (Role::Provider, None, Some(Some(US))),
            (Role::Provider, Some(7), Some(Some(7))),
            (Role::RouteServer, None, Some(Some(US))),
            (Role::RouteServer, Some(7), Some(Some(7))),
            (Role::Other(9), Some(7), Some(Some(7))),
            (Role::Other(9), None, Some(None)),
        ];
        for (role, otc, want) in cases {
            assert_eq!(egress(role, US, otc), want, "{role:?} sending {otc:?}");
        }
    }

    #[test]
    fn a_leak_says_what_it_is() {
        assert_eq!(
            Leak::FromCustomer(65099).to_string(),
            "route leak: OTC 65099 from a customer or route server client (RFC 9234)"
        );
        assert!(Leak::FromPeer(1).to_string().contains("lateral peer"));
    }

    #[test]
    fn local_role_is_the_advertised_one() {
        assert_eq!(local_role(&[Capability::RouteRefresh]), None);
        assert_eq!(
            local_role(&[Capability::RouteRefresh, Capability::Role(Role::Peer)]),
            Some(Role::Peer)
        );
    }
}
