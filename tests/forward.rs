//! Live forwarding of the audit trail to receivers on 127.0.0.1: syslog over TCP, TLS and
//! UDP (every message parsed back as RFC 5424 + CEF), a signed webhook, the Logs Ingestion
//! API; a receiver that is down, then up, loses and duplicates nothing; a restart resumes
//! from the cursor.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use resetctl::audit::{AuditConfig, AuditHandle, Details, Event, Outcome};
use resetctl::forward::http::{BearerSource, LogsIngestion, WebhookSink};
use resetctl::forward::syslog::{Syslog, Transport};
use resetctl::forward::{ForwardError, Forwarder, Sink, SinkError};
use secrecy::SecretString;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};

use crate::util::{code, resetctl_env, stderr, stdout};

/// Append `n` records to the trail at `dir/audit.jsonl`, numbered from `from`.
async fn append(dir: &std::path::Path, from: usize, n: usize) {
    let audit = AuditHandle::open(&AuditConfig::new(dir.join("audit.jsonl")))
        .await
        .unwrap();
    for i in from..from + n {
        let details = Details::new().with("n", i as u64).unwrap();
        let event = Event::new(
            "alice@ws-1",
            "test.event",
            format!("user{i}@contoso.com"),
            Outcome::Success,
        )
        .unwrap()
        .with_details(details);
        audit.record(event).await.unwrap();
    }
    audit.close().await.unwrap();
}

/// Messages a receiver got: octet-counted frames off a TCP stream.
async fn read_frames(stream: impl tokio::io::AsyncRead + Unpin, into: Arc<Mutex<Vec<String>>>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut len = Vec::new();
        if reader.read_until(b' ', &mut len).await.unwrap_or(0) == 0 {
            return;
        }
        let Ok(n) = std::str::from_utf8(&len[..len.len() - 1])
            .unwrap()
            .parse::<usize>()
        else {
            panic!("not octet-counted: {len:?}");
        };
        let mut msg = vec![0; n];
        if reader.read_exact(&mut msg).await.is_err() {
            return;
        }
        into.lock().unwrap().push(String::from_utf8(msg).unwrap());
    }
}

/// A TCP syslog receiver on `listener`, keeping what it got.
fn tcp_receiver(listener: TcpListener) -> Arc<Mutex<Vec<String>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let into = got.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(read_frames(stream, into.clone()));
        }
    });
    got
}

/// The sequence numbers in received messages, each checked as RFC 5424 framing around a
/// CEF line.
fn seqs(messages: &[String]) -> Vec<u64> {
    messages
        .iter()
        .map(|m| {
            // <PRI>1 TIMESTAMP HOST APP PROCID MSGID - MSG
            let parts: Vec<&str> = m.splitn(8, ' ').collect();
            assert_eq!(parts.len(), 8, "{m}");
            assert!(parts[0].starts_with("<134>1"), "local0.info: {m}");
            assert!(parts[1].ends_with('Z'), "{m}");
            assert_eq!(parts[3], "resetctl");
            assert_eq!(parts[5], "test.event");
            assert_eq!(parts[6], "-");
            let cef = parts[7];
            assert!(cef.starts_with("CEF:0|resetctl|resetctl|"), "{cef}");
            let ext = cef.splitn(8, '|').nth(7).unwrap();
            assert!(ext.contains("act=test.event"), "{ext}");
            ext.split(' ')
                .find_map(|kv| kv.strip_prefix("externalId="))
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

async fn eventually(what: impl Fn() -> bool) {
    for _ in 0..200 {
        if what() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn tcp_syslog_receives_every_record_once_across_an_outage_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), 1, 30).await;
    // A port with nobody listening: the receiver is down.
    let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let forwarder = |dir: &std::path::Path| {
        let sink = Arc::new(Syslog::new(
            "siem",
            &addr.to_string(),
            Transport::Tcp,
            "runner-1",
        ));
        Forwarder::new(sink, &dir.join("audit.jsonl"), None, &dir.join("forward"))
    };
    let f = forwarder(dir.path());
    match f.pass().await {
        Err(ForwardError::Sink {
            source: SinkError::Unavailable(_),
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(
        !dir.path().join("forward/siem.cursor").exists(),
        "nothing was accepted"
    );

    // Up again: everything, once.
    let got = tcp_receiver(TcpListener::bind(addr).await.unwrap());
    let pass = f.pass().await.unwrap();
    assert_eq!((pass.sent, pass.lag, pass.last_seq), (30, 0, 30));
    eventually(|| got.lock().unwrap().len() == 30).await;
    assert_eq!(seqs(&got.lock().unwrap()), (1..=30).collect::<Vec<_>>());

    // More records; a new forwarder (a restart) sends only those.
    append(dir.path(), 31, 5).await;
    let f = forwarder(dir.path());
    let pass = f.pass().await.unwrap();
    assert_eq!((pass.sent, pass.lag), (5, 0));
    eventually(|| got.lock().unwrap().len() == 35).await;
    assert_eq!(seqs(&got.lock().unwrap()), (1..=35).collect::<Vec<_>>());
    assert_eq!(f.pass().await.unwrap().sent, 0);
}

#[tokio::test]
async fn udp_syslog_sends_one_datagram_per_record() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), 1, 3).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let sink = Arc::new(Syslog::new(
        "udp",
        &addr.to_string(),
        Transport::Udp,
        "runner-1",
    ));
    let f = Forwarder::new(
        sink,
        &dir.path().join("audit.jsonl"),
        None,
        &dir.path().join("fw"),
    );
    assert_eq!(f.pass().await.unwrap().sent, 3);
    let mut messages = Vec::new();
    let mut buf = vec![0; 65536];
    for _ in 0..3 {
        let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        messages.push(String::from_utf8(buf[..n].to_vec()).unwrap());
    }
    assert_eq!(seqs(&messages), vec![1, 2, 3]);
}

#[tokio::test]
async fn tls_syslog_checks_the_receivers_certificate() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), 1, 4).await;
    let cert = rcgen::generate_simple_self_signed(vec!["siem.test".into()]).unwrap();
    let der = cert.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![der.clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let into = got.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            if let Ok(tls) = acceptor.accept(stream).await {
                tokio::spawn(read_frames(tls, into.clone()));
            }
        }
    });
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let roots = Arc::new(roots);
    // The wrong name is refused by the client: nothing is sent, the cursor stays.
    let wrong = Arc::new(Syslog::new(
        "tls",
        &addr.to_string(),
        Transport::Tls {
            server_name: "other.test".into(),
            roots: roots.clone(),
        },
        "runner-1",
    ));
    let f = Forwarder::new(
        wrong,
        &dir.path().join("audit.jsonl"),
        None,
        &dir.path().join("fw"),
    );
    assert!(f.pass().await.is_err());
    let right = Arc::new(Syslog::new(
        "tls",
        &addr.to_string(),
        Transport::Tls {
            server_name: "siem.test".into(),
            roots,
        },
        "runner-1",
    ));
    let f = Forwarder::new(
        right,
        &dir.path().join("audit.jsonl"),
        None,
        &dir.path().join("fw"),
    );
    assert_eq!(f.pass().await.unwrap().sent, 4);
    eventually(|| got.lock().unwrap().len() == 4).await;
    assert_eq!(seqs(&got.lock().unwrap()), vec![1, 2, 3, 4]);
}

/// A one-route HTTP receiver: answers each POST with the next scripted status, keeps the
/// headers and bodies of the accepted ones.
#[derive(Clone, Default)]
struct Receiver {
    script: Arc<Mutex<Vec<u16>>>,
    got: Arc<Mutex<Vec<Received>>>,
}

/// The headers and body of one accepted request.
type Received = (axum::http::HeaderMap, Vec<u8>);

async fn http_receiver(receiver: Receiver) -> String {
    use axum::response::IntoResponse;
    let app = axum::Router::new().fallback(
        move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let r = receiver.clone();
            async move {
                let status = {
                    let mut s = r.script.lock().unwrap();
                    if s.is_empty() { 204 } else { s.remove(0) }
                };
                if status < 300 {
                    r.got.lock().unwrap().push((headers, body.to_vec()));
                }
                let mut resp = axum::http::StatusCode::from_u16(status)
                    .unwrap()
                    .into_response();
                if status == 429 {
                    resp.headers_mut()
                        .insert("retry-after", "7".parse().unwrap());
                }
                resp
            }
        },
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    format!("http://{addr}")
}

struct StaticToken;

impl BearerSource for StaticToken {
    fn bearer(&self) -> BoxFuture<'_, Result<Arc<SecretString>, String>> {
        Box::pin(async { Ok(Arc::new(SecretString::from("tok-123".to_owned()))) })
    }
}

#[tokio::test]
async fn logs_ingestion_gets_json_arrays_and_a_429_is_retried_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), 1, 12).await;
    let receiver = Receiver::default();
    receiver.script.lock().unwrap().push(429);
    let base = http_receiver(receiver.clone()).await;
    let sink = Arc::new(LogsIngestion::new(
        "sentinel",
        reqwest::Client::new(),
        &base,
        "dcr-00aa",
        "Custom-ResetctlAudit_CL",
        Arc::new(StaticToken),
    ));
    let f = Forwarder::new(
        sink,
        &dir.path().join("audit.jsonl"),
        None,
        &dir.path().join("fw"),
    );
    match f.pass().await {
        Err(ForwardError::Sink {
            source: SinkError::Throttled(Some(7)),
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(f.pass().await.unwrap().sent, 12);
    let got = receiver.got.lock().unwrap();
    assert_eq!(got.len(), 1);
    let (headers, body) = &got[0];
    assert_eq!(headers["authorization"], "Bearer tok-123");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(body).unwrap();
    let seqs: Vec<u64> = rows.iter().map(|r| r["Seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=12).collect::<Vec<_>>());
    assert_eq!(rows[0]["Action"], "test.event");
    assert!(rows[0]["TimeGenerated"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn the_webhook_is_signed_over_timestamp_and_body() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), 1, 2).await;
    let receiver = Receiver::default();
    let base = http_receiver(receiver.clone()).await;
    let sink: Arc<dyn Sink> = Arc::new(WebhookSink::new(
        "soar",
        reqwest::Client::new(),
        &format!("{base}/hook"),
        SecretString::from("k3y".to_owned()),
    ));
    let f = Forwarder::new(
        sink,
        &dir.path().join("audit.jsonl"),
        None,
        &dir.path().join("fw"),
    );
    assert_eq!(f.pass().await.unwrap().sent, 2);
    let got = receiver.got.lock().unwrap();
    let (headers, body) = &got[0];
    let ts: i64 = headers["x-resetctl-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let expected = resetctl::comms::channels::webhook::signature(b"k3y", ts, body);
    assert_eq!(headers["x-resetctl-signature"].to_str().unwrap(), expected);
}

#[tokio::test]
async fn the_command_forwards_what_the_configuration_names() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), 1, 6).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = tcp_receiver(listener);
    let config = dir.path().join("resetctl.yaml");
    std::fs::write(
        &config,
        format!("forward:\n  siem:\n    syslog: {{ address: \"{addr}\", transport: tcp }}\n"),
    )
    .unwrap();
    let data = dir.path().to_path_buf();
    let run = |args: Vec<String>| {
        let data = data.clone();
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            resetctl_env(
                &data,
                &args,
                &[("RESETCTL_DATA_DIR", &data), ("RESETCTL_CONFIG", &config)],
            )
        })
    };
    let out = run(vec!["audit".into(), "forward".into()]).await.unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("siem: sent 6, lag 0"),
        "{}",
        stdout(&out)
    );
    eventually(|| got.lock().unwrap().len() == 6).await;
    let out = run(vec![
        "audit".into(),
        "forward".into(),
        "--to".into(),
        "nope".into(),
    ])
    .await
    .unwrap();
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("siem"), "{}", stderr(&out));
}
