//! [`Server::bind`] checks the options and opens the socket; [`Bound::serve`] resumes each
//! tenant's unfinished actions, runs its timer loop and answers HTTP (over TLS when
//! configured) until the shutdown future resolves; then it stops accepting, lets in-flight
//! requests finish within the drain timeout, and stops the timer loops after their current
//! tick.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use jiff::SignedDuration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::app::{App, Peer, origin_of, router};
use super::connections::Connections;
use super::csrf::{CookieKind, CsrfKey};
use super::limits::Limiter;
use super::options::{ServeContext, ServeOptions};
use super::pages::{PageError, Pages};
use super::ready::ReadyCache;
use super::telemetry::Telemetry;
use super::tls::{TlsError, acceptor};
use crate::verify::clock::Clock;
use crate::verify::runtime::Runtime;

/// Longest a client may take to finish the TLS handshake or send a request's headers.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Plain HTTP on an address other hosts can reach.
    #[error(
        "refusing plain HTTP on {0}: approval links and API credentials must not cross a \
         network in clear text; configure a TLS certificate and key, or listen on a loopback \
         address behind a TLS-terminating proxy"
    )]
    PlainHttp(SocketAddr),
    /// The public base URL is not an http(s) URL.
    #[error("the public base URL {0:?} is not an http:// or https:// URL")]
    BaseUrl(String),
    /// No tenant to serve.
    #[error("no tenant to serve: the server needs at least one tenant's verification runtime")]
    NoTenant,
    /// The socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS identity could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The page template does not compile (a build defect).
    #[error(transparent)]
    Pages(#[from] PageError),
    /// The system's random source failed.
    #[error("{0}")]
    Random(String),
}

/// The approval server.
#[derive(Debug)]
pub struct Server;

/// A server with its socket open, ready to [`Bound::serve`].
pub struct Bound {
    listener: TcpListener,
    router: Router,
    telemetry: Telemetry,
    tls: Option<TlsAcceptor>,
    connections: Arc<Connections>,
    ctx: ServeContext,
    timer_tick: Duration,
    drain_timeout: Duration,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound")
            .field("local_addr", &self.listener.local_addr().ok())
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Check `options`, load the TLS identity and listen on `options.listen`.
    pub async fn bind(options: ServeOptions, ctx: ServeContext) -> Result<Bound, ServeError> {
        check(&options, &ctx)?;
        let listener =
            TcpListener::bind(options.listen)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: options.listen,
                    source,
                })?;
        Server::prepare(listener, options, ctx)
    }

    /// As [`Server::bind`], on a socket the caller opened (a test that must know the port
    /// before it builds the runtimes' link minter, or socket activation). The socket's own
    /// address is checked against the plain-HTTP rule; `options.listen` is ignored.
    pub fn from_listener(
        listener: std::net::TcpListener,
        mut options: ServeOptions,
        ctx: ServeContext,
    ) -> Result<Bound, ServeError> {
        let addr = options.listen;
        let bind = |source| ServeError::Bind { addr, source };
        options.listen = listener.local_addr().map_err(bind)?;
        check(&options, &ctx)?;
        listener.set_nonblocking(true).map_err(bind)?;
        let listener = TcpListener::from_std(listener).map_err(bind)?;
        Server::prepare(listener, options, ctx)
    }

    fn prepare(
        listener: TcpListener,
        options: ServeOptions,
        ctx: ServeContext,
    ) -> Result<Bound, ServeError> {
        let tls = options.tls.as_ref().map(acceptor).transpose()?;
        let connections = Arc::new(Connections::new(options.connections));
        let app = Arc::new(App {
            ctx: ctx.clone(),
            pages: Pages::load()?,
            csrf: CsrfKey::random().map_err(ServeError::Random)?,
            cookie: CookieKind::for_base(&options.public_base_url),
            origin: origin_of(&options.public_base_url)
                .ok_or_else(|| ServeError::BaseUrl(options.public_base_url.clone()))?,
            api: options.api.clone(),
            request_timeout: options.request_timeout,
            telemetry: Telemetry::default(),
            limiter: Limiter::new(options.rate_limits),
            metrics_access: options.metrics,
            run_store: options.run_store.clone(),
            ready: ReadyCache::default(),
            ready_ttl: options.ready_ttl,
            connections: connections.clone(),
        });
        let telemetry = app.telemetry.clone();
        Ok(Bound {
            listener,
            router: router(app, options.body_limit),
            telemetry,
            tls,
            connections,
            ctx,
            timer_tick: options.timer_tick,
            drain_timeout: options.drain_timeout,
        })
    }
}

fn check(options: &ServeOptions, ctx: &ServeContext) -> Result<(), ServeError> {
    if options.tls.is_none() && !options.listen.ip().is_loopback() {
        return Err(ServeError::PlainHttp(options.listen));
    }
    if origin_of(&options.public_base_url).is_none() {
        return Err(ServeError::BaseUrl(options.public_base_url.clone()));
    }
    if ctx.runtimes.is_empty() {
        return Err(ServeError::NoTenant);
    }
    Ok(())
}

impl Bound {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The server's counters: hand its forwarders their lag gauges
    /// ([`Telemetry::forward_lag`]) so `/metrics` shows them.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Serve until `shutdown` resolves, then drain (see the module documentation).
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) {
        let (stop, stopped) = watch::channel(false);
        let mut background = JoinSet::new();
        for (tenant, runtime) in &self.ctx.runtimes {
            background.spawn(timer_loop(
                tenant.clone(),
                runtime.clone(),
                self.ctx.clock.clone(),
                self.timer_tick,
                stopped.clone(),
            ));
        }
        let graceful = GracefulShutdown::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HANDSHAKE_TIMEOUT);
        let builder = Arc::new(builder);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            tracing::warn!(message = "Accept failed.", %error);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    let slot = match self.connections.admit(peer.ip(), Instant::now()) {
                        Ok(slot) => slot,
                        Err(refused) => {
                            // Closed unread: see `connections` for why no answer is sent.
                            drop(stream);
                            self.telemetry.connection_refused(refused.cap.as_str());
                            if refused.log {
                                tracing::warn!(
                                    client_ip = %refused.client,
                                    cap = refused.cap.as_str(),
                                    "connection refused: over the open-connection cap \
                                     (logged once a minute per client)"
                                );
                            }
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let service = TowerToHyperService::new(PeerService {
                        router: self.router.clone(),
                        peer: Peer(peer),
                    });
                    let watcher = graceful.watcher();
                    let builder = builder.clone();
                    let tls = self.tls.clone();
                    tokio::spawn(async move {
                        // Held until the connection ends.
                        let _slot = slot;
                        match tls {
                            None => {
                                let conn = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .into_owned();
                                let _ = watcher.watch(conn).await;
                            }
                            Some(tls) => {
                                let Ok(Ok(stream)) =
                                    tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await
                                else {
                                    return;
                                };
                                let conn = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .into_owned();
                                let _ = watcher.watch(conn).await;
                            }
                        }
                    });
                }
                _ = &mut shutdown => break,
            }
        }
        drop(self.listener);
        if tokio::time::timeout(self.drain_timeout, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("requests still in flight after the drain timeout were cut off");
        }
        let _ = stop.send(true);
        while background.join_next().await.is_some() {}
    }
}

/// One tenant's background work: carry out what a crash left undone, then fire due timers
/// every `tick` until told to stop (a tick in progress finishes first).
async fn timer_loop(
    tenant: String,
    runtime: Runtime,
    clock: Arc<dyn Clock>,
    tick: Duration,
    mut stop: watch::Receiver<bool>,
) {
    match runtime.resume().await {
        Ok(0) => {}
        Ok(ran) => tracing::info!(%tenant, "resumed {ran} unfinished verification actions"),
        Err(e) => tracing::error!(%tenant, "resuming verification actions: {e}"),
    }
    let tick = SignedDuration::try_from(tick).unwrap_or(SignedDuration::from_secs(5));
    loop {
        if *stop.borrow() {
            return;
        }
        if let Err(e) = runtime.fire_due_timers().await {
            tracing::error!(%tenant, "verification timers: {e}");
        }
        let next = clock.now() + tick;
        tokio::select! {
            _ = clock.sleep_until(next) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The router, with the connection's peer address put into every request.
#[derive(Clone)]
struct PeerService {
    router: Router,
    peer: Peer,
}

impl tower_service::Service<hyper::Request<Incoming>> for PeerService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: hyper::Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(self.peer);
        let mut router = self.router.clone();
        Box::pin(async move {
            let req = req.map(axum::body::Body::new);
            tower_service::Service::call(&mut router, req).await
        })
    }
}
