//! A small HTTP/1.1 GET client (hyper), for HTTP health checks and for the
//! `status` commands that read a running daemon's JSON.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;

/// The largest body [`get`] collects; a longer one is an error.
pub const MAX_BODY: usize = 1 << 20;

/// Errors of [`get`].
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL is not `http://host[:port]/path`.
    #[error("bad URL {url:?}: {why}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Connecting, sending or receiving failed.
    #[error("GET {url}: {message}")]
    Io {
        /// The URL.
        url: String,
        /// What failed.
        message: String,
    },
    /// No answer within the timeout.
    #[error("GET {url}: no answer within {timeout:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
}

/// A response: status code and body.
#[derive(Debug, Clone)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

/// The parts of an `http://` URL [`get`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// The host: an IP address (IPv6 without brackets) or a name.
    host: String,
    /// The port (80 unless given).
    port: u16,
    /// What goes in the `Host` header: the authority as written.
    authority: String,
    /// Path and query, `/` when the URL has none.
    path: String,
}

fn parse(url: &str) -> Result<Target, &'static str> {
    let scheme_len = "http://".len();
    let rest = match url.get(..scheme_len) {
        Some(scheme) if scheme.eq_ignore_ascii_case("http://") => &url[scheme_len..],
        _ => return Err("only http:// URLs are supported"),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err("user information is not supported");
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let close = bracketed.find(']').ok_or("unclosed [ in the host")?;
        let host = &bracketed[..close];
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("the address in [] is not IPv6");
        }
        let after = &bracketed[close + 1..];
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or("junk after ]")?),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => {
                if host.contains(':') {
                    return Err("an IPv6 address needs [brackets]");
                }
                (host, Some(port))
            }
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("no host");
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
    {
        return Err("bad character in the host");
    }
    let port = match port {
        None => 80,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p != 0 => p,
            _ => return Err("bad port"),
        },
    };
    // The fragment is not sent.
    let tail = tail.split('#').next().unwrap_or("");
    let path = match tail {
        "" => "/".to_owned(),
        t if t.starts_with('?') => format!("/{t}"),
        t => t.to_owned(),
    };
    Ok(Target {
        host: host.to_owned(),
        port,
        authority: authority.to_owned(),
        path,
    })
}

/// Aborts a spawned task when dropped (also when the exchange times out).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// GETs `url` (`http://` only), the whole exchange bounded by `timeout`.
///
/// The host may be an IPv4 address, an IPv6 address in brackets or a name
/// (resolved by the system; every address is tried in turn). The body is
/// collected whole, up to [`MAX_BODY`].
pub async fn get(url: &str, timeout: Duration) -> Result<Response, HttpError> {
    let target = parse(url).map_err(|why| HttpError::Url {
        url: url.to_owned(),
        why,
    })?;
    let io_error = |message: String| HttpError::Io {
        url: url.to_owned(),
        message,
    };
    let exchange = async {
        let addresses = tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(|e| io_error(format!("cannot resolve {}: {e}", target.host)))?;
        let mut last_error = None;
        let mut stream = None;
        for address in addresses {
            match tokio::net::TcpStream::connect(address).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last_error = Some(format!("connect {address}: {e}")),
            }
        }
        let stream = stream.ok_or_else(|| {
            io_error(last_error.unwrap_or_else(|| format!("{} has no address", target.host)))
        })?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(|e| io_error(e.to_string()))?;
        let _connection = AbortOnDrop(tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("HTTP connection: {e}");
            }
        }));
        let request = hyper::Request::get(target.path.as_str())
            .header(hyper::header::HOST, target.authority.as_str())
            .header(hyper::header::USER_AGENT, "podpeer")
            .body(Empty::<Bytes>::new())
            .map_err(|e| io_error(format!("cannot build the request: {e}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| io_error(e.to_string()))?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    io_error(format!("body longer than {MAX_BODY} bytes"))
                } else {
                    io_error(format!("reading the body: {e}"))
                }
            })?
            .to_bytes();
        Ok(Response { status, body })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(HttpError::Timeout {
            url: url.to_owned(),
            timeout,
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn parses_the_url_forms() {
        let t = parse("http://127.0.0.1:8080/healthz").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 8080, "/healthz")
        );
        assert_eq!(t.authority, "127.0.0.1:8080");
        let t = parse("http://[::1]:9179/status?x=1#frag").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 9179, "/status?x=1")
        );
        let t = parse("HTTP://localhost").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("localhost", 80, "/")
        );
        let t = parse("http://[fe80::1]/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("fe80::1", 80));
        let t = parse("http://example.com?q").unwrap();
        assert_eq!(t.path, "/?q");
    }

    #[test]
    fn refuses_bad_urls() {
        for (url, why) in [
            ("https://127.0.0.1/", "only http:// URLs are supported"),
            ("127.0.0.1:80/", "only http:// URLs are supported"),
            ("http:///path", "no host"),
            ("http://:80/", "no host"),
            ("http://h:0/", "bad port"),
            ("http://h:99999/", "bad port"),
            ("http://h:x/", "bad port"),
            ("http://::1/", "an IPv6 address needs [brackets]"),
            ("http://[::1/", "unclosed [ in the host"),
            ("http://[1.2.3.4]/", "the address in [] is not IPv6"),
            ("http://[::1]x/", "junk after ]"),
            ("http://u:p@h/", "user information is not supported"),
            ("http://h st/", "bad character in the host"),
        ] {
            assert_eq!(parse(url), Err(why), "{url}");
        }
    }
}
