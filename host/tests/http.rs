#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `http::get` against tiny servers on loopback, in this process.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use podpeer_host::http::{self, HttpError, MAX_BODY};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Reads one request head; returns its text.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(head).unwrap()
}

/// A server answering every request with `status` and a body that echoes
/// the request line and Host header (or `body` when given).
async fn server(bind: &str, status: u16, body: Option<Vec<u8>>) -> SocketAddr {
    let listener = TcpListener::bind(bind).await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let body = body.clone();
            tokio::spawn(async move {
                let head = read_head(&mut stream).await;
                let body = body.unwrap_or_else(|| {
                    let mut lines = head.lines();
                    let request_line = lines.next().unwrap_or("").to_owned();
                    let host = lines
                        .find_map(|l| l.strip_prefix("host: ").or(l.strip_prefix("Host: ")))
                        .unwrap_or("");
                    format!("{request_line}\n{host}").into_bytes()
                });
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(answer.as_bytes()).await.unwrap();
                let _ = stream.write_all(&body).await;
            });
        }
    });
    address
}

#[tokio::test]
async fn status_and_body() {
    let address = server("127.0.0.1:0", 200, None).await;
    let url = format!("http://{address}/healthz?full=1");
    let response = http::get(&url, Duration::from_secs(5)).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(
        std::str::from_utf8(&response.body).unwrap(),
        format!("GET /healthz?full=1 HTTP/1.1\n{address}")
    );

    let address = server("127.0.0.1:0", 503, Some(b"not ready".to_vec())).await;
    let response = http::get(&format!("http://{address}"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(response.status, 503);
    assert_eq!(&response.body[..], b"not ready");
}

#[tokio::test]
async fn hostname_and_ipv6() {
    let address = server("127.0.0.1:0", 204, Some(Vec::new())).await;
    let url = format!("http://localhost:{}/", address.port());
    let response = http::get(&url, Duration::from_secs(5)).await.unwrap();
    assert_eq!(response.status, 204);
    assert!(response.body.is_empty());

    // IPv6 loopback, where the machine has it.
    if let Ok(listener) = std::net::TcpListener::bind("[::1]:0") {
        drop(listener);
        let address = server("[::1]:0", 200, None).await;
        let url = format!("http://[::1]:{}/x", address.port());
        let response = http::get(&url, Duration::from_secs(5)).await.unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(
            std::str::from_utf8(&response.body).unwrap(),
            format!("GET /x HTTP/1.1\n[::1]:{}", address.port())
        );
    }
}

#[tokio::test]
async fn timeout_on_a_server_that_never_answers() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_head(&mut stream).await;
        // Keep the connection open, answer nothing.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(stream);
    });
    let url = format!("http://{address}/slow");
    let started = Instant::now();
    let error = http::get(&url, Duration::from_millis(300))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(&error, HttpError::Timeout { url: u, timeout } if *u == url && *timeout == Duration::from_millis(300)),
        "{error:?}"
    );
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    held.abort();
}

#[tokio::test]
async fn refused_connection_and_oversized_body() {
    // A port nobody listens on: bind, note it, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let error = http::get(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(error, HttpError::Io { .. }), "{error:?}");
    assert!(error.to_string().contains("connect 127.0.0.1"), "{error}");

    let address = server("127.0.0.1:0", 200, Some(vec![b'x'; MAX_BODY + 1])).await;
    let error = http::get(&format!("http://{address}/big"), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, HttpError::Io { message, .. } if message.contains("body longer than")),
        "{error:?}"
    );
    // Exactly the limit is fine.
    let address = server("127.0.0.1:0", 200, Some(vec![b'y'; MAX_BODY])).await;
    let response = http::get(&format!("http://{address}/"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(response.body.len(), MAX_BODY);
}

#[tokio::test]
async fn bad_urls_are_typed() {
    for url in [
        "https://127.0.0.1/",
        "http://",
        "http://[::1/",
        "ftp://x/",
        "http://h:70000/",
    ] {
        let error = http::get(url, Duration::from_secs(1)).await.unwrap_err();
        assert!(
            matches!(&error, HttpError::Url { url: u, .. } if u == url),
            "{url}: {error:?}"
        );
    }
    let error = http::get("http://no-such-host.invalid/", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(error, HttpError::Io { .. } | HttpError::Timeout { .. }),
        "{error:?}"
    );
}
