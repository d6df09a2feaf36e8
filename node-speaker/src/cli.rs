//! `podpeer-node status|peers|routes`: read the running daemon over HTTP and
//! print what it says the way `vtysh show bgp summary` and `show ip route`
//! would.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use podpeer_host::text::table;

use crate::bpf::BpfView;
use crate::fib::RouteView;
use crate::status::{LastRejection, PeerView, StatusView};

/// Errors of the query commands.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The daemon could not be reached.
    #[error("cannot read the daemon: {0}")]
    Http(#[from] podpeer_host::http::HttpError),
    /// It answered with an error status.
    #[error("{url}: HTTP {status}: {body}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The body.
        body: String,
    },
    /// It answered with something else than the expected JSON.
    #[error("{url}: unexpected answer: {error}")]
    Json {
        /// The URL.
        url: String,
        /// The parse error.
        error: serde_json::Error,
    },
}

/// The base URL for `--http ADDR` (`127.0.0.1:9180` or `http://host:port`).
pub fn base_url(addr: &str) -> String {
    let a = addr.trim().trim_end_matches('/');
    if a.starts_with("http://") || a.starts_with("https://") {
        a.to_owned()
    } else {
        format!("http://{a}")
    }
}

/// GETs `path` from the daemon at `addr`: the raw JSON text.
pub async fn fetch(addr: &str, path: &str, timeout: Duration) -> Result<String, QueryError> {
    let url = format!("{}{path}", base_url(addr));
    let r = podpeer_host::http::get(&url, timeout).await?;
    let body = String::from_utf8_lossy(&r.body).into_owned();
    if r.status != 200 {
        return Err(QueryError::Status {
            url,
            status: r.status,
            body,
        });
    }
    Ok(body)
}

/// Parses the JSON of an endpoint.
pub fn parse<T: serde::de::DeserializeOwned>(url: &str, body: &str) -> Result<T, QueryError> {
    serde_json::from_str(body).map_err(|error| QueryError::Json {
        url: url.to_owned(),
        error,
    })
}

/// `5s`, `1m02s`, `3h05m`, `2d04h`: how long ago or how long for.
pub fn age(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// `forbidden=1 next-hop=2`, or `0`.
pub fn reasons(by_reason: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = by_reason
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(r, n)| format!("{r}={n}"))
        .collect();
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join(" ")
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn last_rejection(l: &LastRejection, now: u64) -> String {
    format!(
        "{} {} ({} ago)",
        l.prefix,
        l.reason,
        age(now.saturating_sub(l.at_unix))
    )
}

/// `podpeer-node status`.
pub fn render_status(s: &StatusView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "podpeer-node: local AS {}, router id {}",
        s.local_as, s.router_id
    );
    let _ = writeln!(
        out,
        "Peers: {} of {} up (pods {} up, fabric {}/{} up)",
        s.peers_up, s.peers_total, s.pods_up, s.fabric_up, s.fabric_total
    );
    let tables: Vec<String> = s
        .routes_installed
        .iter()
        .map(|(t, n)| format!("table {t}: {n}"))
        .collect();
    let _ = writeln!(
        out,
        "Routes installed: {}{}",
        if tables.is_empty() {
            "none".to_owned()
        } else {
            tables.join(", ")
        },
        if s.routes_pending > 0 {
            format!(" ({} pending)", s.routes_pending)
        } else {
            String::new()
        }
    );
    let fib = match (s.fib_reconciled, s.reconcile_holding) {
        (false, _) => "not yet reconciled",
        (true, true) => "reconciled, keeping routes of the last run for their peers",
        (true, false) => "reconciled",
    };
    let _ = writeln!(out, "FIB: {fib}");
    let _ = writeln!(out, "Rejected: {}", reasons(&s.rejected));
    if let Some(bpf) = &s.bpf {
        render_bpf(&mut out, bpf);
    }
    let _ = writeln!(out, "Ready: {}", if s.ready { "yes" } else { "no" });
    out
}

/// The tc-eBPF router's lines of `podpeer-node status`.
fn render_bpf(out: &mut String, bpf: &BpfView) {
    if bpf.state != "loaded" {
        let _ = writeln!(
            out,
            "eBPF router: NOT LOADED ({}); forwarding takes the kernel path",
            bpf.error.as_deref().unwrap_or("no reason given")
        );
        return;
    }
    let on: Vec<String> = bpf
        .interfaces
        .iter()
        .filter(|i| i.attached)
        .map(|i| format!("{} ({})", i.name, i.hook.as_deref().unwrap_or("?")))
        .collect();
    let waiting: Vec<&str> = bpf
        .interfaces
        .iter()
        .filter(|i| !i.attached)
        .map(|i| i.name.as_str())
        .collect();
    let _ = writeln!(
        out,
        "eBPF router: on {}{}",
        if on.is_empty() {
            "no interface".to_owned()
        } else {
            on.join(", ")
        },
        if waiting.is_empty() {
            String::new()
        } else {
            format!("; waiting for {}", waiting.join(", "))
        }
    );
    let passed: Vec<String> = bpf
        .packets
        .iter()
        .filter(|(o, n)| o.starts_with("pass_") && **n > 0)
        .map(|(o, n)| format!("{}={n}", o.trim_start_matches("pass_")))
        .collect();
    let _ = writeln!(
        out,
        "eBPF packets: forwarded {} (redirected {}, via neighbor resolution {}), passed to the kernel {}{}",
        bpf.forwarded(),
        bpf.packets.get("redirected").copied().unwrap_or(0),
        bpf.packets.get("redirected_neigh").copied().unwrap_or(0),
        bpf.packets
            .iter()
            .filter(|(o, _)| o.starts_with("pass_"))
            .map(|(_, n)| n)
            .sum::<u64>(),
        if passed.is_empty() {
            String::new()
        } else {
            format!(" ({})", passed.join(" "))
        }
    );
}

/// `podpeer-node peers`.
pub fn render_peers(peers: &[PeerView]) -> String {
    render_peers_at(peers, now_unix())
}

fn render_peers_at(peers: &[PeerView], now: u64) -> String {
    let mut rows = vec![
        [
            "Neighbor",
            "Group",
            "AS",
            "State",
            "Up/Down",
            "Rcvd",
            "Accepted",
            "Rejected",
            "Last rejection",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for p in peers {
        rows.push(vec![
            p.address.to_string(),
            match (&p.group, p.kind.as_str()) {
                (Some(g), _) => g.clone(),
                (None, k) => k.to_owned(),
            },
            p.remote_as.map_or("-".into(), |a| a.to_string()),
            p.state.clone(),
            age(p.since_secs),
            p.received.to_string(),
            p.accepted.to_string(),
            reasons(&p.rejected_by_reason),
            p.last_rejection
                .as_ref()
                .map_or("-".into(), |l| last_rejection(l, now)),
        ]);
    }
    let mut out = table(&rows);
    let up = peers.iter().filter(|p| p.state == "Established").count();
    let _ = writeln!(out, "\nTotal: {} neighbors, {up} Established", peers.len());
    out
}

/// `podpeer-node routes`.
pub fn render_routes(routes: &[RouteView]) -> String {
    if routes.is_empty() {
        return "No routes.\n".into();
    }
    let mut by_table: BTreeMap<u32, Vec<&RouteView>> = BTreeMap::new();
    for r in routes {
        by_table.entry(r.table).or_default().push(r);
    }
    let mut out = String::new();
    for (t, rs) in by_table {
        let _ = writeln!(out, "Table {t}:");
        let mut rows = vec![
            ["  Prefix", "Via", "Peer", "Group", "Installed"]
                .map(String::from)
                .to_vec(),
        ];
        for r in rs {
            let installed = if r.installed {
                "yes".to_owned()
            } else if r.stale {
                "kept from last run".to_owned()
            } else if r.via.is_empty() {
                "removing".to_owned()
            } else {
                "no".to_owned()
            };
            if r.via.is_empty() {
                let via = r
                    .kernel_next_hops
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                rows.push(vec![
                    format!("  {}", r.prefix),
                    if via.is_empty() { "-".into() } else { via },
                    "-".into(),
                    "-".into(),
                    installed,
                ]);
                continue;
            }
            for (i, v) in r.via.iter().enumerate() {
                rows.push(vec![
                    if i == 0 {
                        format!("  {}", r.prefix)
                    } else {
                        "  ".into()
                    },
                    v.gateway.to_string(),
                    v.peer.to_string(),
                    v.group.clone(),
                    if i == 0 {
                        installed.clone()
                    } else {
                        String::new()
                    },
                ]);
            }
        }
        out.push_str(&table(&rows));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const STATUS: &str = r#"{"localAs":65010,"routerId":"192.0.2.10","peersUp":3,"peersTotal":4,
        "podsUp":2,"fabricUp":1,"fabricTotal":2,"routesInstalled":{"100":12,"254":1},
        "routesPending":0,"rejected":{"forbidden":1,"next-hop":2},"fibReconciled":true,
        "reconcileHolding":false,"ready":false}"#;

    const PEERS: &str = r#"[
      {"address":"10.244.1.5","kind":"pod","group":"lb","description":"pod group lb",
       "remoteAs":4200000001,"state":"Established","sinceSecs":62,"received":5,"accepted":3,
       "rejected":2,"rejectedByReason":{"forbidden":1,"next-hop":1},
       "lastRejection":{"prefix":"10.96.0.0/12","reason":"forbidden","detail":"x","atUnix":1000},
       "lastError":null},
      {"address":"192.0.2.1","kind":"fabric","group":null,"description":"tor1",
       "remoteAs":null,"state":"Active","sinceSecs":3700,"received":0,"accepted":0,
       "rejected":0,"rejectedByReason":{},"lastRejection":null,"lastError":"connection lost"}
    ]"#;

    const ROUTES: &str = r#"[
      {"table":100,"prefix":"198.51.100.10/32","via":[
         {"gateway":"10.244.1.5","peer":"10.244.1.5","group":"lb"},
         {"gateway":"10.244.1.6","peer":"10.244.1.6","group":"lb"}],
       "installed":true,"kernelNextHops":["10.244.1.5","10.244.1.6"],"stale":false},
      {"table":100,"prefix":"198.51.100.11/32","via":[],"installed":false,
       "kernelNextHops":["10.244.1.9"],"stale":true},
      {"table":254,"prefix":"203.0.113.1/32","via":[
         {"gateway":"10.244.2.5","peer":"10.244.2.5","group":"dns"}],
       "installed":false,"kernelNextHops":[],"stale":false}
    ]"#;

    #[test]
    fn status_reads_like_a_summary() {
        let s: StatusView = parse("/status", STATUS).unwrap();
        assert_eq!(
            render_status(&s),
            "podpeer-node: local AS 65010, router id 192.0.2.10\n\
             Peers: 3 of 4 up (pods 2 up, fabric 1/2 up)\n\
             Routes installed: table 100: 12, table 254: 1\n\
             FIB: reconciled\n\
             Rejected: forbidden=1 next-hop=2\n\
             Ready: no\n"
        );
    }

    #[test]
    fn status_shows_the_bpf_router() {
        let with_bpf = STATUS.trim_end_matches('}').to_owned()
            + r#","bpf":{"state":"loaded","error":null,
              "interfaces":[{"name":"eth1","attached":true,"ifindex":3,"hook":"tcx"},
                            {"name":"vx.200","attached":false,"ifindex":null,"hook":null}],
              "packets":{"redirected":100,"redirected_neigh":2,"pass_local":7,"pass_ttl":1,"pass_frag":0}}}"#;
        let s: StatusView = parse("/status", &with_bpf).unwrap();
        let text = render_status(&s);
        assert!(
            text.contains("eBPF router: on eth1 (tcx); waiting for vx.200\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "eBPF packets: forwarded 102 (redirected 100, via neighbor resolution 2), \
                 passed to the kernel 8 (local=7 ttl=1)\n"
            ),
            "{text}"
        );

        let failed = STATUS.trim_end_matches('}').to_owned()
            + r#","bpf":{"state":"notLoaded","error":"Operation not permitted","interfaces":[],"packets":{}}}"#;
        let s: StatusView = parse("/status", &failed).unwrap();
        assert!(render_status(&s).contains(
            "eBPF router: NOT LOADED (Operation not permitted); forwarding takes the kernel path\n"
        ));
        // A daemon without the router says nothing about it.
        let s: StatusView = parse("/status", STATUS).unwrap();
        assert!(!render_status(&s).contains("eBPF"));
    }

    #[test]
    fn peers_one_line_each() {
        let p: Vec<PeerView> = parse("/peers", PEERS).unwrap();
        let text = render_peers_at(&p, 1030);
        let want = "\
Neighbor    Group   AS          State        Up/Down  Rcvd  Accepted  Rejected                Last rejection
10.244.1.5  lb      4200000001  Established  1m02s    5     3         forbidden=1 next-hop=1  10.96.0.0/12 forbidden (30s ago)
192.0.2.1   fabric  -           Active       1h01m    0     0         0                       -

Total: 2 neighbors, 1 Established
";
        assert_eq!(text, want, "\n{text}");
    }

    #[test]
    fn routes_per_table_with_each_next_hop() {
        let r: Vec<RouteView> = parse("/routes", ROUTES).unwrap();
        let text = render_routes(&r);
        let want = "\
Table 100:
  Prefix            Via         Peer        Group  Installed
  198.51.100.10/32  10.244.1.5  10.244.1.5  lb     yes
                    10.244.1.6  10.244.1.6  lb
  198.51.100.11/32  10.244.1.9  -           -      kept from last run
Table 254:
  Prefix          Via         Peer        Group  Installed
  203.0.113.1/32  10.244.2.5  10.244.2.5  dns    no
";
        assert_eq!(text, want, "\n{text}");
        assert_eq!(render_routes(&[]), "No routes.\n");
    }

    #[test]
    fn helpers() {
        assert_eq!(base_url("127.0.0.1:9180"), "http://127.0.0.1:9180");
        assert_eq!(base_url("http://[::1]:9180/"), "http://[::1]:9180");
        assert_eq!(age(0), "0s");
        assert_eq!(age(62), "1m02s");
        assert_eq!(age(3 * 3600 + 5 * 60), "3h05m");
        assert_eq!(age(2 * 86400 + 4 * 3600), "2d04h");
        assert_eq!(reasons(&BTreeMap::new()), "0");
        let e = parse::<StatusView>("/status", "{").unwrap_err().to_string();
        assert!(e.starts_with("/status: unexpected answer"), "{e}");
    }
}
