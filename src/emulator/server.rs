//! The accept loop: hyper connections (HTTP/1.1 and h2c) over the axum router, with a
//! per-connection "kill switch" so that an injected `reset` fault can drop the connection
//! without a response, and a graceful shutdown that lets in-flight requests finish.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};

/// Handle a handler uses to drop its connection (fault injection `reset`).
#[derive(Clone, Debug)]
pub struct KillSwitch(Arc<Notify>);

impl KillSwitch {
    /// Drop the connection this request arrived on.
    pub fn fire(&self) {
        self.0.notify_one();
    }
}

/// The router, with the connection's kill switch put into every request.
#[derive(Clone)]
struct ConnService {
    router: Router,
    kill: KillSwitch,
}

impl tower_service::Service<hyper::Request<Incoming>> for ConnService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: hyper::Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(self.kill.clone());
        let mut router = self.router.clone();
        Box::pin(async move {
            let req = req.map(axum::body::Body::new);
            tower_service::Service::call(&mut router, req).await
        })
    }
}

/// Serve `router` on `listener` until `stop` fires; then finish in-flight requests (≤ 2 s).
pub async fn serve(listener: TcpListener, router: Router, mut stop: oneshot::Receiver<()>) {
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        tracing::warn!(message = "Accept failed.", %error);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let kill = KillSwitch(Arc::new(Notify::new()));
                let service = ConnService { router: router.clone(), kill: kill.clone() };
                let conn = builder
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    tokio::select! {
                        _ = conn => {}
                        _ = kill.0.notified() => {}
                    }
                });
            }
            _ = &mut stop => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
    }
}
