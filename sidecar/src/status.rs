//! The `/status` document and `podpeer-sidecar status`, which reads it from a
//! running sidecar and prints it the way `vtysh` or `birdc` would: a line per
//! session and a table of VIPs.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use podpeer_host::text::table;

use crate::check::Health;
use crate::config::fmt_duration;

/// What `/status` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDoc {
    /// The sidecar's version.
    pub version: String,
    /// Our AS.
    pub local_as: u32,
    /// Our router id, once known.
    pub router_id: Option<Ipv4Addr>,
    /// The node's AS as configured (`external` or a number).
    pub node_as: String,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// `discovering` (no gateway yet), `running` or `shutting-down`.
    pub phase: String,
    /// What `/readyz` says.
    pub ready: bool,
    /// Why not ready.
    pub not_ready_reason: Option<String>,
    /// One per node address.
    pub sessions: Vec<SessionDoc>,
    /// One per VIP.
    pub vips: Vec<VipDoc>,
}

/// One session with the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionDoc {
    /// The node's address.
    pub node: IpAddr,
    /// How it was found.
    pub via: String,
    /// The node's AS, once known.
    pub remote_as: Option<u32>,
    /// The session state.
    pub state: String,
    /// Seconds in that state.
    pub state_seconds: u64,
    /// The families the session is meant to carry.
    pub families: Vec<String>,
    /// Prefixes advertised to the node.
    pub sent_prefixes: u64,
    /// The last error.
    pub last_error: Option<String>,
}

/// One VIP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VipDoc {
    /// The prefix.
    pub prefix: String,
    /// The check in URL form, if any.
    pub check: Option<String>,
    /// Its health.
    pub health: Health,
    /// Originated by us (healthy and a session can carry it).
    pub originated: bool,
    /// In the Adj-RIB-Out of every session that carries it.
    pub announced: bool,
    /// The node addresses whose sessions carry it.
    pub carried_by: Vec<IpAddr>,
    /// The last check result.
    pub last_result: Option<ResultDoc>,
    /// Health changes so far.
    pub transitions: u64,
    /// Why it is not announced, when that is not its health.
    pub note: Option<String>,
}

/// One check result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultDoc {
    /// Passed or not.
    pub passed: bool,
    /// Why.
    pub reason: String,
    /// How long it took, milliseconds.
    pub latency_ms: f64,
    /// How long ago, seconds.
    pub age_seconds: f64,
}

/// Errors of the `status` command.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The sidecar did not answer.
    #[error("cannot reach the sidecar at {addr}: {source}")]
    Unreachable {
        /// The address asked.
        addr: String,
        /// Why.
        source: podpeer_host::http::HttpError,
    },
    /// It answered with something else.
    #[error("the sidecar at {addr} answered HTTP {status}")]
    Status {
        /// The address asked.
        addr: String,
        /// The status.
        status: u16,
    },
    /// The answer is not a status document.
    #[error("the sidecar at {addr} sent a status this version cannot read: {source}")]
    Json {
        /// The address asked.
        addr: String,
        /// Why.
        source: serde_json::Error,
    },
}

/// Reads `/status` from the sidecar serving HTTP on `addr` (`host:port`): the
/// document, and the body as sent (for `--json`).
pub async fn fetch(addr: &str) -> Result<(StatusDoc, Vec<u8>), StatusError> {
    let url = format!("http://{addr}/status");
    let r = podpeer_host::http::get(&url, Duration::from_secs(5))
        .await
        .map_err(|source| StatusError::Unreachable {
            addr: addr.to_owned(),
            source,
        })?;
    if r.status != 200 {
        return Err(StatusError::Status {
            addr: addr.to_owned(),
            status: r.status,
        });
    }
    let doc = serde_json::from_slice(&r.body).map_err(|source| StatusError::Json {
        addr: addr.to_owned(),
        source,
    })?;
    Ok((doc, r.body.to_vec()))
}

/// Where `status` asks by default: the sidecar's own `http` setting (from
/// `PODPEER_HTTP`, shared by the container) with an unspecified address read
/// as loopback, else `127.0.0.1:9179`.
pub fn local_address(http: Option<&str>) -> String {
    match http
        .map(str::trim)
        .and_then(|h| h.parse::<std::net::SocketAddr>().ok())
    {
        Some(mut a) => {
            if a.ip().is_unspecified() {
                a.set_ip(match a.ip() {
                    IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
                });
            }
            a.to_string()
        }
        None => "127.0.0.1:9179".to_owned(),
    }
}

fn ago(secs: u64) -> String {
    fmt_duration(Duration::from_secs(secs))
}

/// Renders the document as text.
pub fn render(doc: &StatusDoc) -> String {
    let mut out = String::new();
    let rid = doc
        .router_id
        .map_or_else(|| "(not yet known)".to_owned(), |r| r.to_string());
    out.push_str(&format!(
        "podpeer-sidecar {}: local AS {}, router id {}, up {}, {}\n",
        doc.version,
        doc.local_as,
        rid,
        ago(doc.uptime_seconds),
        match (&doc.phase[..], doc.ready, &doc.not_ready_reason) {
            ("shutting-down", _, _) => "shutting down".to_owned(),
            (_, true, _) => "ready".to_owned(),
            (_, false, Some(why)) => format!("not ready: {why}"),
            (_, false, None) => "not ready".to_owned(),
        }
    ));
    out.push('\n');
    if doc.sessions.is_empty() {
        out.push_str("No session yet: looking for the node (default gateway).\n");
    } else {
        let mut rows = vec![row([
            "Node", "AS", "State", "Up/Down", "PfxSnt", "Via", "Families",
        ])];
        for s in &doc.sessions {
            let asn = match s.remote_as {
                Some(a) => a.to_string(),
                None => doc.node_as.clone(),
            };
            rows.push(vec![
                s.node.to_string(),
                asn,
                s.state.clone(),
                ago(s.state_seconds),
                s.sent_prefixes.to_string(),
                s.via.clone(),
                s.families.join(","),
            ]);
        }
        out.push_str(&table(&rows));
        for s in &doc.sessions {
            if let Some(e) = &s.last_error
                && s.state != "Established"
            {
                out.push_str(&format!("  {}: last error: {e}\n", s.node));
            }
        }
    }
    out.push('\n');
    if doc.vips.is_empty() {
        out.push_str("No VIPs configured.\n");
        return out;
    }
    let mut rows = vec![row(["VIP", "Check", "Health", "Announced", "Last result"])];
    for v in &doc.vips {
        let announced = match (v.announced, v.originated) {
            (true, _) => "yes",
            (false, true) => "queued",
            (false, false) => "no",
        };
        let last = match &v.last_result {
            Some(r) => format!(
                "{} {} ({:.0}ms, {} ago)",
                if r.passed { "pass:" } else { "FAIL:" },
                r.reason,
                r.latency_ms,
                ago(r.age_seconds as u64)
            ),
            None if v.check.is_some() => "(none yet)".to_owned(),
            None => "-".to_owned(),
        };
        rows.push(vec![
            v.prefix.clone(),
            v.check.clone().unwrap_or_else(|| "-".to_owned()),
            v.health.to_string(),
            announced.to_owned(),
            last,
        ]);
    }
    out.push_str(&table(&rows));
    for v in &doc.vips {
        if let Some(n) = &v.note {
            out.push_str(&format!("  {}: {n}\n", v.prefix));
        }
    }
    out
}

fn row<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|c| (*c).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> StatusDoc {
        StatusDoc {
            version: "0.1.0".into(),
            local_as: 4_200_000_001,
            router_id: Some(Ipv4Addr::new(10, 0, 0, 2)),
            node_as: "external".into(),
            uptime_seconds: 75,
            phase: "running".into(),
            ready: true,
            not_ready_reason: None,
            sessions: vec![SessionDoc {
                node: "10.0.0.1".parse().unwrap(),
                via: "default gateway via eth0".into(),
                remote_as: Some(65010),
                state: "Established".into(),
                state_seconds: 70,
                families: vec!["ipv4-unicast".into()],
                sent_prefixes: 1,
                last_error: None,
            }],
            vips: vec![
                VipDoc {
                    prefix: "198.51.100.10/32".into(),
                    check: Some("file:/tmp/ok".into()),
                    health: Health::Healthy,
                    originated: true,
                    announced: true,
                    carried_by: vec!["10.0.0.1".parse().unwrap()],
                    last_result: Some(ResultDoc {
                        passed: true,
                        reason: "exists".into(),
                        latency_ms: 0.2,
                        age_seconds: 1.5,
                    }),
                    transitions: 1,
                    note: None,
                },
                VipDoc {
                    prefix: "2001:db8::10/128".into(),
                    check: None,
                    health: Health::Unchecked,
                    originated: false,
                    announced: false,
                    carried_by: vec![],
                    last_result: None,
                    transitions: 0,
                    note: Some("no session carries IPv6".into()),
                },
            ],
        }
    }

    #[test]
    fn renders_sessions_and_vips() {
        let text = render(&doc());
        assert!(
            text.starts_with(
                "podpeer-sidecar 0.1.0: local AS 4200000001, router id 10.0.0.2, up 1m15s, ready\n"
            ),
            "{text}"
        );
        let session = text
            .lines()
            .find(|l| l.starts_with("10.0.0.1"))
            .unwrap_or_default();
        for part in ["65010", "Established", "1m10s", "default gateway via eth0"] {
            assert!(session.contains(part), "{session:?} lacks {part}");
        }
        let vip = text
            .lines()
            .find(|l| l.starts_with("198.51.100.10/32"))
            .unwrap_or_default();
        for part in ["file:/tmp/ok", "healthy", "yes", "pass: exists", "1s ago"] {
            assert!(vip.contains(part), "{vip:?} lacks {part}");
        }
        assert!(text.contains("2001:db8::10/128: no session carries IPv6"));
        // Columns line up: the Health column starts at the same offset.
        let header = text
            .lines()
            .find(|l| l.starts_with("VIP"))
            .unwrap_or_default();
        assert_eq!(header.find("Health"), vip.find("healthy"));
    }

    #[test]
    fn status_asks_where_the_sidecar_serves() {
        assert_eq!(local_address(None), "127.0.0.1:9179");
        assert_eq!(local_address(Some("0.0.0.0:9180")), "127.0.0.1:9180");
        assert_eq!(local_address(Some("[::]:9181")), "[::1]:9181");
        assert_eq!(local_address(Some("10.0.0.2:9182")), "10.0.0.2:9182");
        assert_eq!(local_address(Some("junk")), "127.0.0.1:9179");
    }

    #[test]
    fn json_round_trips() {
        let d = doc();
        let text = serde_json::to_string(&d).unwrap();
        assert!(text.contains("\"health\":\"healthy\""), "{text}");
        assert_eq!(serde_json::from_str::<StatusDoc>(&text).unwrap(), d);
    }
}
