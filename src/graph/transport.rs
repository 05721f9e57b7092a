//! Why a request got no HTTP answer, said so an operator can act on it: which host, and
//! whether the connection was refused, the name did not resolve, TLS failed, or time ran
//! out. reqwest's own message ("error sending request") says none of that; the cause is in
//! its chain of sources.

use std::error::Error as StdError;
use std::fmt;

/// What kept a request from getting an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Nothing listens at the host's port (`ECONNREFUSED`).
    Refused,
    /// The host name did not resolve.
    Dns,
    /// The TLS handshake failed (not a TLS server, an untrusted or mismatched certificate).
    Tls,
    /// No answer in time (connect or whole-request timeout).
    Timeout,
    /// The connection was reset or closed before the answer.
    Reset,
    /// Something else; the underlying message is kept.
    Other,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cause::Refused => "connection refused",
            Cause::Dns => "DNS lookup failed",
            Cause::Tls => "TLS handshake failed",
            Cause::Timeout => "timed out",
            Cause::Reset => "connection reset",
            Cause::Other => "transport error",
        })
    }
}

/// The cause of `err`, read from its chain of sources: typed I/O errors first, then the
/// connector's own words for what has no type of its own (hyper's "dns error", rustls'
/// certificate and message errors).
pub fn cause(err: &(dyn StdError + 'static)) -> Cause {
    let mut chain: Vec<&(dyn StdError + 'static)> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        chain.push(e);
        next = e.source();
    }
    if let Some(e) = chain
        .iter()
        .find_map(|e| e.downcast_ref::<reqwest::Error>())
        && e.is_timeout()
    {
        return Cause::Timeout;
    }
    let words: Vec<String> = chain.iter().map(|e| e.to_string().to_lowercase()).collect();
    let said = |needles: &[&str]| words.iter().any(|w| needles.iter().any(|n| w.contains(n)));
    if said(&[
        "dns error",
        "failed to lookup address",
        "name or service not known",
    ]) {
        return Cause::Dns;
    }
    for e in &chain {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                ConnectionRefused => return Cause::Refused,
                TimedOut => return Cause::Timeout,
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => {
                    return Cause::Reset;
                }
                _ => {}
            }
        }
    }
    if said(&[
        "tls",
        "certificate",
        "handshake",
        "corrupt message",
        "invalidcontenttype",
        "peer misbehaved",
        "alert",
    ]) {
        return Cause::Tls;
    }
    if said(&["timed out", "deadline has elapsed"]) {
        return Cause::Timeout;
    }
    if said(&["connection refused"]) {
        return Cause::Refused;
    }
    if said(&["connection reset", "connection closed", "broken pipe"]) {
        return Cause::Reset;
    }
    Cause::Other
}

/// `host:port` of `url` (its scheme's port when none is written); the URL itself when it
/// does not parse. Paths and queries are left out: they may name users.
pub fn host_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => u.scheme().to_owned(),
        },
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

/// `{what} {host}: {cause} ({detail})`: the sentence every transport failure is reported
/// with. `what` names the endpoint ("Microsoft Graph at", "the token endpoint"). The
/// detail is the innermost source's message, which says what the operating system or TLS
/// library said; the URL is never repeated (only its host).
pub fn describe(what: &str, url: &str, err: &reqwest::Error) -> String {
    let cause = cause(err);
    let mut innermost: &(dyn StdError + 'static) = err;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    let detail = innermost.to_string();
    let host = host_of(url);
    // The detail is kept when it adds to the cause ("connection refused (os error 111)"
    // does not; "failed to lookup address information: ..." does).
    let adds = !detail.is_empty()
        && detail != err.to_string()
        && !detail
            .to_lowercase()
            .contains(&cause.to_string().to_lowercase());
    if cause == Cause::Other || adds {
        format!("{what} {host}: {cause} ({detail})")
    } else {
        format!("{what} {host}: {cause}")
    }
}

#[cfg(test)]
mod tests {
    use std::net::{SocketAddr, TcpListener};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    /// An error wrapping another, like hyper's and reqwest's.
    #[derive(Debug)]
    struct Wrap(&'static str, Box<dyn StdError + Send + Sync>);
    impl fmt::Display for Wrap {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    impl StdError for Wrap {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(self.1.as_ref())
        }
    }

    fn io(kind: std::io::ErrorKind, message: &'static str) -> Box<dyn StdError + Send + Sync> {
        Box::new(std::io::Error::new(kind, message))
    }

    #[test]
    fn causes_are_read_from_the_chain() {
        let refused = Wrap(
            "client error (Connect)",
            io(std::io::ErrorKind::ConnectionRefused, "Connection refused"),
        );
        assert_eq!(cause(&refused), Cause::Refused);
        let dns = Wrap(
            "client error (Connect)",
            Box::new(Wrap(
                "dns error",
                io(
                    std::io::ErrorKind::Other,
                    "failed to lookup address information",
                ),
            )),
        );
        assert_eq!(cause(&dns), Cause::Dns);
        let tls = Wrap(
            "client error (Connect)",
            io(
                std::io::ErrorKind::InvalidData,
                "received corrupt message of type InvalidContentType",
            ),
        );
        assert_eq!(cause(&tls), Cause::Tls);
        let timeout = Wrap(
            "client error",
            io(std::io::ErrorKind::TimedOut, "timed out"),
        );
        assert_eq!(cause(&timeout), Cause::Timeout);
        let other = Wrap("client error", io(std::io::ErrorKind::Other, "mystery"));
        assert_eq!(cause(&other), Cause::Other);
    }

    #[test]
    fn hosts_keep_their_port_and_lose_their_path() {
        assert_eq!(
            host_of("https://graph.microsoft.com/v1.0/users/a@b.c"),
            "graph.microsoft.com:443"
        );
        assert_eq!(host_of("http://127.0.0.1:9/v1.0"), "127.0.0.1:9");
        assert_eq!(host_of("not a url"), "(unparsable URL)");
    }

    /// A port on 127.0.0.1 nobody listens on any more.
    fn closed_port() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    }

    async fn failure(client: &reqwest::Client, url: &str) -> String {
        let err = client.get(url).send().await.unwrap_err();
        describe("Microsoft Graph at", url, &err)
    }

    fn client(timeout: Duration) -> reqwest::Client {
        reqwest::Client::builder().timeout(timeout).build().unwrap()
    }

    #[tokio::test]
    async fn a_closed_port_is_refused() {
        let addr = closed_port();
        let url = format!("http://{addr}/v1.0/users");
        let text = failure(&client(Duration::from_secs(5)), &url).await;
        assert_eq!(
            text,
            format!("Microsoft Graph at {addr}: connection refused")
        );
    }

    #[tokio::test]
    async fn plain_http_on_an_https_url_is_a_tls_failure() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let url = format!("https://{addr}/v1.0");
        let text = failure(&client(Duration::from_secs(5)), &url).await;
        assert!(
            text.starts_with(&format!("Microsoft Graph at {addr}: TLS handshake failed")),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let url = format!("http://{addr}/v1.0");
        let text = failure(&client(Duration::from_millis(200)), &url).await;
        assert!(
            text.starts_with(&format!("Microsoft Graph at {addr}: timed out")),
            "{text}"
        );
        hold.abort();
    }

    /// A resolver that knows no name, so the lookup fails without leaving the machine.
    struct NoNames;
    impl reqwest::dns::Resolve for NoNames {
        fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
            let message = format!("failed to lookup address information: {}", name.as_str());
            Box::pin(async move {
                Err(Box::new(std::io::Error::other(message)) as Box<dyn StdError + Send + Sync>)
            })
        }
    }

    #[tokio::test]
    async fn an_unknown_name_is_a_dns_failure() {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(NoNames))
            .build()
            .unwrap();
        let url = "https://graph.example.invalid/v1.0";
        let text = failure(&client, url).await;
        assert!(
            text.starts_with("Microsoft Graph at graph.example.invalid:443: DNS lookup failed"),
            "{text}"
        );
    }
}
