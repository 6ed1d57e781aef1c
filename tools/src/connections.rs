//! The accept loop and what it defends: a cap on open connections, a cap
//! per client address, a small reserve past the cap for health and metrics
//! probes, and a deadline at every stage of a connection's life. At a cap
//! a newcomer takes the place of the connection that has waited longest
//! without a request in service (at the address cap, one of its own
//! address's), so idle floods cannot lock anyone out; with none to take,
//! it is closed at once, never left in the kernel's queue.
//!
//! Stages: a new connection must send a whole request head within the
//! header timeout; between requests a keep-alive connection may idle for
//! the idle timeout, and then has the header timeout from its next first
//! byte; a response whose client stops reading is dropped after the send
//! timeout; a TLS handshake has its own deadline. A request body that
//! stalls is s3api's to time out, where bodies are read.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// The limits of the accept loop.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// Connections past the cap that may still serve health and metrics.
    pub probe_reserve: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub send_timeout: Duration,
    pub tls_handshake_timeout: Duration,
}

/// Paths a probe connection may ask for.
pub fn is_probe_path(path: &str) -> bool {
    path == "/health"
        || path.starts_with("/health/")
        || path.starts_with("/minio/health/")
        || path == "/metrics"
}

/// Who holds how many connections.
struct Admission {
    open: usize,
    probes: usize,
    by_address: HashMap<IpAddr, usize>,
    /// The connections under the cap, to find one to make room.
    conns: HashMap<u64, (IpAddr, Arc<ConnState>)>,
    next_id: u64,
}

/// A connection's place; given back when it closes.
struct Slot {
    admission: Arc<Mutex<Admission>>,
    address: IpAddr,
    probe: bool,
    id: u64,
}

impl Admission {
    /// Gives back a connection's place under the caps.
    fn release(&mut self, id: u64, address: IpAddr) {
        if self.conns.remove(&id).is_none() {
            // Already given back when it was evicted.
            return;
        }
        self.open -= 1;
        if let Some(n) = self.by_address.get_mut(&address) {
            *n -= 1;
            if *n == 0 {
                self.by_address.remove(&address);
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut a = self.admission.lock();
        if self.probe {
            a.probes -= 1;
        } else {
            a.release(self.id, self.address);
        }
    }
}

/// Closes the connection (of `address`, if given) that has waited longest
/// with no request in service, if there is one: its place goes to a
/// newcomer.
fn evict_idlest(a: &mut Admission, address: Option<IpAddr>, metrics: &s3api::Metrics) -> bool {
    let idlest = a
        .conns
        .iter()
        .filter(|(_, (at, _))| address.is_none_or(|a| a == *at))
        .filter_map(|(id, (_, state))| match *state.phase.lock() {
            Phase::Head(since) | Phase::Idle(since) => Some((since, *id)),
            Phase::Busy(_) => None,
        })
        .min();
    let Some((_, id)) = idlest else {
        return false;
    };
    if let Some((at, state)) = a.conns.get(&id).cloned() {
        // Its place is free now; its task closes it.
        a.release(id, at);
        state.evict.notify_one();
        metrics.connection_evicted();
    }
    true
}

fn admit(
    admission: &Arc<Mutex<Admission>>,
    limits: &ConnectionLimits,
    metrics: &s3api::Metrics,
    address: IpAddr,
    state: &Arc<ConnState>,
) -> Result<Slot, &'static str> {
    let mut a = admission.lock();
    let mine = a.by_address.get(&address).copied().unwrap_or(0);
    let refused = if mine >= limits.max_connections_per_address
        && !evict_idlest(&mut a, Some(address), metrics)
    {
        Some("address_cap")
    } else if a.open >= limits.max_connections && !evict_idlest(&mut a, None, metrics) {
        Some("global_cap")
    } else {
        None
    };
    let probe = match refused {
        None => false,
        Some(_) if a.probes < limits.probe_reserve => true,
        Some(reason) => return Err(reason),
    };
    let id = a.next_id;
    a.next_id += 1;
    if probe {
        a.probes += 1;
    } else {
        a.open += 1;
        *a.by_address.entry(address).or_insert(0) += 1;
        a.conns.insert(id, (address, state.clone()));
    }
    Ok(Slot {
        admission: admission.clone(),
        address,
        probe,
        id,
    })
}

/// Where a connection is in its life, as its deadlines see it.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for (the rest of) a request head since then.
    Head(Instant),
    /// Between requests since then, no byte of the next one yet.
    Idle(Instant),
    /// Requests are being served (several at once over HTTP/2).
    Busy(usize),
}

struct ConnState {
    phase: Mutex<Phase>,
    /// Told when the connection is to close to make room for another.
    evict: tokio::sync::Notify,
}

impl ConnState {
    fn started(&self) {
        let mut phase = self.phase.lock();
        *phase = match *phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        };
    }

    fn finished(&self) {
        let mut phase = self.phase.lock();
        *phase = match *phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        };
    }
}

/// A connection's I/O with its deadlines: reading while waiting for a
/// request head (or idle between requests), and writing.
struct Watched<T> {
    io: T,
    state: Arc<ConnState>,
    limits: Arc<ConnectionLimits>,
    metrics: Arc<s3api::Metrics>,
    read_deadline: Option<Pin<Box<Sleep>>>,
    write_deadline: Option<Pin<Box<Sleep>>>,
}

fn timed_out(stage: &'static str, metrics: &s3api::Metrics) -> io::Error {
    metrics.connection_timeout(stage);
    io::Error::new(io::ErrorKind::TimedOut, format!("{stage} timeout"))
}

/// Polls a deadline at `at`, (re)arming it as needed.
fn deadline_passed(slot: &mut Option<Pin<Box<Sleep>>>, at: Instant, cx: &mut Context<'_>) -> bool {
    match slot {
        Some(sleep) if sleep.deadline() == at => {}
        Some(sleep) => sleep.as_mut().reset(at),
        None => *slot = Some(Box::pin(tokio::time::sleep_until(at))),
    }
    slot.as_mut()
        .is_some_and(|s| s.as_mut().poll(cx).is_ready())
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let mut phase = this.state.phase.lock();
                    if let Phase::Idle(_) = *phase {
                        *phase = Phase::Head(Instant::now());
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let phase = *this.state.phase.lock();
                let (at, stage) = match phase {
                    Phase::Head(since) => (since + this.limits.header_timeout, "header"),
                    Phase::Idle(since) => (since + this.limits.idle_timeout, "idle"),
                    Phase::Busy(_) => {
                        this.read_deadline = None;
                        return Poll::Pending;
                    }
                };
                if deadline_passed(&mut this.read_deadline, at, cx) {
                    return Poll::Ready(Err(timed_out(stage, &this.metrics)));
                }
                Poll::Pending
            }
            ready => ready,
        }
    }
}

impl<T: AsyncWrite + Unpin> Watched<T> {
    /// A write that makes no progress for the send timeout fails.
    fn watch_write<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match polled {
            Poll::Pending => {
                let at = match &self.write_deadline {
                    Some(sleep) => sleep.deadline(),
                    None => Instant::now() + self.limits.send_timeout,
                };
                if deadline_passed(&mut self.write_deadline, at, cx) {
                    return Poll::Ready(Err(timed_out("send", &self.metrics)));
                }
                Poll::Pending
            }
            ready => {
                self.write_deadline = None;
                ready
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, data);
        self.watch_write(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.io).poll_flush(cx);
        self.watch_write(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A response body that marks its request finished once it has been sent
/// (or dropped), which may start the idle deadline.
struct Tracked {
    body: Body,
    state: Arc<ConnState>,
    done: bool,
}

impl Tracked {
    fn finish(&mut self) {
        if !self.done {
            self.done = true;
            self.state.finished();
        }
    }
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.finish();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets the
/// open connections finish their requests.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: axum::Router,
    limits: ConnectionLimits,
    metrics: Arc<s3api::Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let limits = Arc::new(limits);
    let admission = Arc::new(Mutex::new(Admission {
        open: 0,
        probes: 0,
        by_address: HashMap::new(),
        conns: HashMap::new(),
        next_id: 0,
    }));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors, most likely: back off briefly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let state = Arc::new(ConnState {
            phase: Mutex::new(Phase::Head(Instant::now())),
            evict: tokio::sync::Notify::new(),
        });
        let slot = match admit(&admission, &limits, &metrics, peer.ip(), &state) {
            Ok(slot) => slot,
            Err(reason) => {
                metrics.connection_refused(reason);
                // Closed at once: the client learns now, and holds nothing.
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let client = s3api::ClientInfo {
            addr: peer.ip(),
            tls: tls.is_some(),
        };
        let service = connection_service(app.clone(), state.clone(), slot.probe, client);
        let (limits, metrics, tls) = (limits.clone(), metrics.clone(), tls.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            match tls {
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(tcp));
                    let stream = match handshake.await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            metrics.connection_timeout("tls");
                            return;
                        }
                    };
                    let evicted = state.clone();
                    let io = TokioIo::new(watched(stream, state, limits, metrics));
                    tokio::select! {
                        _ = watcher.watch(builder.serve_connection(io, service)) => {}
                        () = evicted.evict.notified() => {}
                    }
                }
                None => {
                    let evicted = state.clone();
                    let io = TokioIo::new(watched(tcp, state, limits, metrics));
                    tokio::select! {
                        _ = watcher.watch(builder.serve_connection(io, service)) => {}
                        () = evicted.evict.notified() => {}
                    }
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

fn watched<T>(
    io: T,
    state: Arc<ConnState>,
    limits: Arc<ConnectionLimits>,
    metrics: Arc<s3api::Metrics>,
) -> Watched<T> {
    Watched {
        io,
        state,
        limits,
        metrics,
        read_deadline: None,
        write_deadline: None,
    }
}

/// The app as one connection sees it: requests mark it busy, their
/// responses' end marks them done; a probe connection serves only health
/// and metrics, and closes after one request.
fn connection_service(
    app: axum::Router,
    state: Arc<ConnState>,
    probe: bool,
    client: s3api::ClientInfo,
) -> impl hyper::service::Service<
    Request<hyper::body::Incoming>,
    Response = Response<Tracked>,
    Error = std::convert::Infallible,
    Future = ConnFuture,
> {
    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| -> ConnFuture {
        let (app, state) = (app.clone(), state.clone());
        Box::pin(async move {
            state.started();
            let mut response = if probe && !is_probe_path(req.uri().path()) {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the server is at its connection limit",
                )
                    .into_response()
            } else {
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(client);
                match app.oneshot(req).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            };
            if probe {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response.map(|body| Tracked {
                body,
                state,
                done: false,
            }))
        })
    })
}

type ConnFuture =
    Pin<Box<dyn Future<Output = Result<Response<Tracked>, std::convert::Infallible>> + Send>>;
