//! What a hostile or careless client meets at the socket: an oversized body gets its `413` (not
//! a reset) and cannot keep the server reading, and one address cannot hold more than its
//! share of connections. Raw TCP where the framing matters, on 127.0.0.1.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use resetctl::serve::{ConnectionLimits, MetricsAccess};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

use super::observe::{parse, value};
use super::*;

/// The body limit these tests serve with.
const LIMIT: usize = 256 * 1024;

fn addr_of(served: &Served) -> SocketAddr {
    served.base.trim_start_matches("http://").parse().unwrap()
}

/// A connection to `served` from local address `from`.
async fn connect_from(served: &Served, from: IpAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(addr_of(served)).await.unwrap()
}

/// Read one HTTP/1.1 response (its head and a `Content-Length` body) off `stream`:
/// `Ok((head, body))`, or `Err` with what went wrong (the peer closed or reset).
async fn response(stream: &mut TcpStream) -> Result<(String, String), String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&got[end + 4..end + 4 + length]).into_owned();
                return Ok((head, body));
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .map_err(|_| "no answer in 10 s".to_owned())?
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!("closed after {} bytes", got.len()));
        }
        got.extend_from_slice(&buf[..n]);
    }
}

/// `GET /healthz` on an open keep-alive connection: whether it was answered `ok`.
async fn healthy(stream: &mut TcpStream) -> Result<(), String> {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .map_err(|e| format!("write: {e}"))?;
    let (head, body) = response(stream).await?;
    (head.starts_with("HTTP/1.1 200") && body == "ok")
        .then_some(())
        .ok_or_else(|| format!("{head}\n\n{body}"))
}

/// A client posting 2 MB to a trigger endpoint with a 256 KiB limit gets the 413 and its JSON
/// every time (hyper alone closes the connection with the body unread, so a client still
/// writing gets a reset, and never reads the answer); a client announcing more than the
/// drain bound is answered at once, unread; a body streamed without end, or one that stalls,
/// is not read past the bound or the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_gets_its_413_and_cannot_keep_the_server_reading() {
    let lab = Lab::new().await;
    let served = lab.serve_with(|o| o.body_limit = LIMIT).await;
    let url = format!("{}/v1/triggers/generic", served.base);
    let big = vec![b'x'; 2_000_000];
    // As curl or Python's requests do it: the whole body written, then the answer read.
    for attempt in 0..20 {
        let mut stream = TcpStream::connect(addr_of(&served)).await.unwrap();
        let head = format!(
            "POST /v1/triggers/generic HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            big.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        if let Err(e) = stream.write_all(&big).await {
            panic!("attempt {attempt}: the server cut the upload: {e}");
        }
        let (head, body) = response(&mut stream)
            .await
            .unwrap_or_else(|e| panic!("attempt {attempt}: {e}"));
        assert!(
            head.starts_with("HTTP/1.1 413"),
            "attempt {attempt}: {head}"
        );
        assert!(
            head.to_ascii_lowercase().contains("connection: close"),
            "{head}"
        );
        let error: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"]["code"], "body_too_large", "{error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&LIMIT.to_string()),
            "{error}"
        );
    }
    // And through a pooled HTTP client.
    for attempt in 0..5 {
        let answer = served
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("attempt {attempt}: {e:?}"));
        assert_eq!(answer.status(), 413, "attempt {attempt}");
        let error: Value = answer.json().await.unwrap();
        assert_eq!(error["error"]["code"], "body_too_large", "{error}");
    }
    // Within the limit the body still reaches the handler (no triggers here: 401 first).
    let small = served.http.post(&url).body(vec![b'x'; 1000]).send().await;
    assert_eq!(small.unwrap().status(), 401);

    // Announced past the drain bound (4 MiB here): answered before any of it is sent.
    let mut stream = TcpStream::connect(addr_of(&served)).await.unwrap();
    stream
        .write_all(
            b"POST /v1/triggers/generic HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n",
        )
        .await
        .unwrap();
    let (head, body) = response(&mut stream).await.unwrap();
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(body.contains("body_too_large"), "{body}");

    // Streamed without end (chunked, no length): the server stops reading near the bound and
    // closes, so the client's writes fail long before it has sent 64 MiB.
    let mut stream = TcpStream::connect(addr_of(&served)).await.unwrap();
    stream
        .write_all(
            b"POST /v1/triggers/generic HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
    let chunk = {
        let mut c = format!("{:x}\r\n", 64 * 1024).into_bytes();
        c.extend(vec![b'x'; 64 * 1024]);
        c.extend_from_slice(b"\r\n");
        c
    };
    let started = Instant::now();
    let mut sent = 0usize;
    let cut = loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.write_all(&chunk)).await {
            Ok(Ok(())) => sent += chunk.len(),
            Ok(Err(e)) => break e,
            Err(_) => panic!("the server neither read nor closed for 10 s ({sent} bytes sent)"),
        }
        assert!(
            sent < 64 << 20,
            "the server kept reading a body far past the drain bound"
        );
    };
    eprintln!(
        "endless body: cut after {sent} bytes, {:?} ({cut})",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(8));

    // Past the limit, then stalled: given up at the drain deadline (2 s) and answered; every
    // byte sent was read, so the client reads its 413.
    let mut stream = TcpStream::connect(addr_of(&served)).await.unwrap();
    stream
        .write_all(
            b"POST /v1/triggers/generic HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n",
        )
        .await
        .unwrap();
    stream.write_all(&vec![b'x'; LIMIT + 4096]).await.unwrap();
    let started = Instant::now();
    let (head, _) = response(&mut stream).await.unwrap();
    let waited = started.elapsed();
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(
        waited > Duration::from_millis(1500) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
    // And the connection is closed after it.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection stayed open after the 413");
    served.shutdown().await;
    lab.emu.shutdown().await;
}

/// With the cap at N, the (N+1)th connection from 127.0.0.1 is closed at accept while the
/// first N keep working and another address is not affected; closing one lets a new one in;
/// the refusals are counted on `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_connection_cap_is_refused_and_closing_one_lets_it_back() {
    const N: usize = 4;
    let lab = Lab::new().await;
    let served = lab
        .serve_with(|o| {
            o.connections = ConnectionLimits {
                per_client: N,
                total: 100,
            };
            o.metrics = MetricsAccess::Loopback;
        })
        .await;
    let here = IpAddr::from([127, 0, 0, 1]);
    let mut held = Vec::new();
    for _ in 0..N {
        let mut stream = connect_from(&served, here).await;
        healthy(&mut stream).await.unwrap();
        held.push(stream);
    }
    // The kernel completes the handshake; the server closes it unread.
    let mut over = connect_from(&served, here).await;
    let refused = healthy(&mut over).await;
    assert!(refused.is_err(), "the connection over the cap was served");
    for stream in &mut held {
        healthy(stream).await.unwrap();
    }
    // Another address has its own share.
    let mut other = connect_from(&served, IpAddr::from([127, 0, 0, 2])).await;
    healthy(&mut other).await.unwrap();

    // Closing one gives its place back (once the server has seen the close).
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut again = loop {
        let mut stream = connect_from(&served, here).await;
        match healthy(&mut stream).await {
            Ok(()) => break stream,
            Err(e) if Instant::now() > deadline => panic!("no place came back: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    healthy(&mut again).await.unwrap();
    let counted = served.telemetry.counts().connections_refused;
    let refusals = counted
        .iter()
        .find(|(cap, _)| *cap == "per_client")
        .map_or(0, |(_, n)| *n);
    assert!(refusals >= 1, "{counted:?}");

    // `/metrics` (from another address: 127.0.0.1 holds its share) shows them.
    let metrics = reqwest::Client::builder()
        .local_address(IpAddr::from([127, 0, 0, 3]))
        .build()
        .unwrap()
        .get(format!("{}/metrics", served.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let m = parse(&metrics);
    assert_eq!(
        value(
            &m,
            r#"resetctl_http_connections_refused_total{cap="per_client"}"#
        ),
        refusals as f64
    );
    // The N held from 127.0.0.1, 127.0.0.2's, and this scrape's own.
    assert_eq!(
        value(&m, "resetctl_http_connections_open{}"),
        (N + 2) as f64
    );
    drop((held, again, other, over));
    served.shutdown().await;
    lab.emu.shutdown().await;
}
