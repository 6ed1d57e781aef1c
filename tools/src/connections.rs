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
fn evict_idlest(
    a: &mut Admission,
    address: Option<IpAddr>,
    limits: &ConnectionLimits,
    metrics: &s3api::Metrics,
) -> bool {
    let now = Instant::now();
    let grace = eviction_grace(limits);
    let idle_enough = now.checked_sub(grace).unwrap_or(now);
    let waiting_enough = now.checked_sub(grace / 10).unwrap_or(now);
    let idlest = a
        .conns
        .iter()
        .filter(|(_, (at, _))| address.is_none_or(|a| a == *at))
        .filter_map(|(id, (_, state))| match *state.phase.lock() {
            Phase::Head(since) if since <= waiting_enough => Some((since, *id)),
            Phase::Idle(since) if since <= idle_enough => Some((since, *id)),
            Phase::Head(_) | Phase::Idle(_) | Phase::Busy(_) => None,
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

/// How long a kept-alive connection must have been idle since its last
/// answer before a newcomer may take its place. Under overload a busy
/// client's next request can sit unread for a while, its connection
/// looking idle; evicting it would throw that request away and bring the
/// client back at once (a storm of reconnections, each costing an accept).
/// A connection waiting for a request head, as an idle flood's do, gives
/// way after a tenth of that: long enough that newcomers under overload
/// do not take each other's places while their first requests wait to be
/// read (52,420 evictions in 10 s at 4,096 clients when they could at
/// once), short enough that a flood opened in a burst makes room soon.
fn eviction_grace(limits: &ConnectionLimits) -> Duration {
    limits.header_timeout.min(limits.idle_timeout) / 10
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
        && !evict_idlest(&mut a, Some(address), limits, metrics)
    {
        Some("address_cap")
    } else if a.open >= limits.max_connections && !evict_idlest(&mut a, None, limits, metrics) {
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
///
/// Connections are accepted, counted against the caps and refused on a
/// thread of their own: on the server's runtime the accept loop is one
/// task among thousands under overload, and newcomers waited seconds in
/// the kernel's queue before being refused (or served). Admitted
/// connections are served on the server's runtime.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: axum::Router,
    limits: ConnectionLimits,
    metrics: Arc<s3api::Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let listener = match listener.into_std() {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, "cannot hand the listener to the accept thread");
            return;
        }
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // Connections are started by a task of the server's runtime: a task
    // spawned from another thread lands in the runtime's shared queue,
    // whose depth is the overload signal (s3api's --max-queued-tasks), and
    // a flood of connections would read as overload.
    let (start, mut to_start) = tokio::sync::mpsc::unbounded_channel::<Connection>();
    let starter = tokio::spawn(async move {
        while let Some(connection) = to_start.recv().await {
            tokio::spawn(connection);
        }
    });
    let acceptor = Acceptor {
        tls,
        app,
        limits: Arc::new(limits),
        metrics,
        start,
        graceful: hyper_util::server::graceful::GracefulShutdown::new(),
    };
    let accepting = std::thread::Builder::new()
        .name("strata-accept".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the accept thread's runtime: {e}"))?;
            Ok::<_, String>(runtime.block_on(acceptor.run(listener, stopped)))
        });
    let accepting = match accepting {
        Ok(thread) => thread,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the accept thread");
            return;
        }
    };
    shutdown.await;
    let _ = stop.send(());
    let graceful = tokio::task::spawn_blocking(move || accepting.join()).await;
    // The acceptor (and its sender) is gone: the starter ends.
    let _ = starter.await;
    match graceful {
        Ok(Ok(Ok(graceful))) => graceful.shutdown().await,
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "the accept thread failed"),
        _ => tracing::error!("the accept thread panicked"),
    }
}

/// A connection admitted, to be served on the server's runtime.
type Connection = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What the accept thread needs to admit and start connections.
struct Acceptor {
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: axum::Router,
    limits: Arc<ConnectionLimits>,
    metrics: Arc<s3api::Metrics>,
    /// To the task that starts connections on the server's runtime.
    start: tokio::sync::mpsc::UnboundedSender<Connection>,
    graceful: hyper_util::server::graceful::GracefulShutdown,
}

impl Acceptor {
    /// Accepts until `stopped`; gives back the graceful shutdown that
    /// watches the connections it started.
    async fn run(
        self,
        listener: std::net::TcpListener,
        mut stopped: tokio::sync::oneshot::Receiver<()>,
    ) -> hyper_util::server::graceful::GracefulShutdown {
        let listener = match TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen on the accept thread");
                return self.graceful;
            }
        };
        let admission = Arc::new(Mutex::new(Admission {
            open: 0,
            probes: 0,
            by_address: HashMap::new(),
            conns: HashMap::new(),
            next_id: 0,
        }));
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
                _ = &mut stopped => break,
            };
            let state = Arc::new(ConnState {
                phase: Mutex::new(Phase::Head(Instant::now())),
                evict: tokio::sync::Notify::new(),
            });
            let slot = match admit(&admission, &self.limits, &self.metrics, peer.ip(), &state) {
                Ok(slot) => slot,
                Err(reason) => {
                    self.metrics.connection_refused(reason);
                    // Closed at once: the client learns now, and holds nothing.
                    drop(tcp);
                    continue;
                }
            };
            // Served on the server's runtime, registered with its reactor.
            let tcp = match tcp.into_std() {
                Ok(tcp) => tcp,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "cannot hand over a connection");
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let client = s3api::ClientInfo {
                addr: peer.ip(),
                tls: self.tls.is_some(),
            };
            let service = connection_service(self.app.clone(), state.clone(), slot.probe, client);
            let (limits, metrics, tls) =
                (self.limits.clone(), self.metrics.clone(), self.tls.clone());
            let watcher = self.graceful.watcher();
            let _ = self.start.send(Box::pin(async move {
                let _slot = slot;
                let tcp = match tokio::net::TcpStream::from_std(tcp) {
                    Ok(tcp) => tcp,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "cannot serve a connection");
                        return;
                    }
                };
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match tls {
                    Some(acceptor) => {
                        let handshake = tokio::time::timeout(
                            limits.tls_handshake_timeout,
                            acceptor.accept(tcp),
                        );
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
            }));
        }
        self.graceful
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        let second = Duration::from_secs(1);
        ConnectionLimits {
            max_connections: 2,
            max_connections_per_address: 2,
            probe_reserve: 0,
            header_timeout: second,
            idle_timeout: second,
            send_timeout: second,
            tls_handshake_timeout: second,
        }
    }

    fn conn(phase: Phase) -> Arc<ConnState> {
        Arc::new(ConnState {
            phase: Mutex::new(phase),
            evict: tokio::sync::Notify::new(),
        })
    }

    #[test]
    fn a_kept_alive_connection_gives_way_only_past_the_grace() {
        let address: IpAddr = [127, 0, 0, 1].into();
        let now = Instant::now();
        let long_ago = now - Duration::from_millis(500);
        let mut admission = Admission {
            open: 3,
            probes: 0,
            by_address: HashMap::from([(address, 3)]),
            conns: HashMap::from([
                (0, (address, conn(Phase::Idle(now)))),
                (1, (address, conn(Phase::Busy(1)))),
                (2, (address, conn(Phase::Head(long_ago)))),
            ]),
            next_id: 3,
        };
        let metrics = s3api::Metrics::default();
        // The one waiting for a request head for 500 ms goes first...
        assert!(evict_idlest(&mut admission, None, &limits(), &metrics));
        assert!(!admission.conns.contains_key(&2));
        // ...but not a kept-alive one idle for less than the 100 ms grace
        // (its next request may just not be read yet), nor one in service.
        assert!(!evict_idlest(&mut admission, None, &limits(), &metrics));
        assert_eq!(admission.conns.len(), 2);
        // A new connection waiting for its first head gives way after a
        // tenth of that grace (10 ms), not at once.
        admission
            .conns
            .insert(3, (address, conn(Phase::Head(Instant::now()))));
        assert!(!evict_idlest(&mut admission, None, &limits(), &metrics));
        let a_little_while_ago = Instant::now() - Duration::from_millis(20);
        admission
            .conns
            .insert(3, (address, conn(Phase::Head(a_little_while_ago))));
        assert!(evict_idlest(&mut admission, None, &limits(), &metrics));
        assert!(!admission.conns.contains_key(&3));
        // Once idle past the grace, the kept-alive one gives way too.
        admission
            .conns
            .insert(4, (address, conn(Phase::Idle(long_ago))));
        assert!(evict_idlest(&mut admission, None, &limits(), &metrics));
        assert!(!admission.conns.contains_key(&4));
    }
}
