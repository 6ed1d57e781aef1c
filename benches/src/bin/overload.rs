//! Overload client: --clients HTTP/1.1 connections, each one client sending
//! small GETs (of prefilled objects) and PUTs (overwrites) back to back by
//! presigned URL, for --duration-s. Prints one JSON line: accepted requests
//! per second and their latency, the share answered 503 SlowDown, and
//! connections the server refused or dropped.
//!
//! Why not s3load: the SDK signs every request, and on this 2-core machine
//! 4,096 SDK clients queue behind each other in the load generator itself
//! (their p99 measured the client's run queue, not the server). Here every
//! URL is signed once up front, so a request costs the client a few
//! microseconds and the server is what saturates. A client answered 503
//! waits as the AWS SDKs' standard retry mode does (a random share of a
//! base doubling per refusal in a row, capped), then sends a new request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::presigning::PresigningConfig;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

#[derive(Parser, Debug)]
#[command(about = "Many cheap clients of 4 KiB GETs and PUTs by presigned URL")]
struct Args {
    /// S3 endpoint, e.g. http://127.0.0.1:9000 (path-style).
    #[arg(long)]
    endpoint: String,
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    access_key: String,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY")]
    secret_key: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    #[arg(long, default_value = "overload")]
    bucket: String,
    /// Concurrent clients, each with a connection of its own.
    #[arg(long)]
    clients: usize,
    #[arg(long, default_value_t = 15)]
    duration_s: u64,
    /// Object size in bytes.
    #[arg(long, default_value_t = 4096)]
    size: usize,
    /// Objects to GET (prefilled) and to overwrite.
    #[arg(long, default_value_t = 2000)]
    keys: usize,
    /// Share of GETs; the rest are PUTs.
    #[arg(long, default_value_t = 0.7)]
    get_share: f64,
    /// Base of the wait after a 503 (doubled per refusal in a row, up to
    /// 20x; the wait is a random share of it).
    #[arg(long, default_value_t = 100)]
    backoff_base_ms: u64,
    #[arg(long, default_value = "")]
    label: String,
}

/// How long past the run's end an answer is still waited for.
const GRACE: Duration = Duration::from_secs(5);

/// A presigned request: method, path and query, and the headers signed.
#[derive(Clone)]
struct Signed {
    method: hyper::Method,
    target: String,
    headers: Vec<(String, String)>,
}

#[derive(Default)]
struct Tally {
    latency_us: Vec<u32>,
    /// PUTs' latencies, also in `latency_us`.
    put_latency_us: Vec<u32>,
    /// Latencies of a connection's first request (waiting for the server
    /// to accept the connection), also in `latency_us`.
    first_latency_us: Vec<u32>,
    shed: u64,
    errors: u64,
    connections_lost: u64,
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    // One thread and its one unbounded FIFO queue: with thousands of
    // clients, a multi-thread runtime's local queues (256 tasks) overflow
    // into a global queue polled only now and then, and the clients sent
    // there are read late: the load generator's own tail.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<(), String> {
    let (gets, puts) = prepare(&args).await?;
    // Shared, not copied per client: thousands of copies of thousands of
    // signed URLs took longer than the run.
    let (gets, puts): (Arc<[Signed]>, Arc<[Signed]>) = (gets.into(), puts.into());
    let authority = args
        .endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let addr: SocketAddr = authority.parse().map_err(|e| format!("{authority}: {e}"))?;
    let body = Bytes::from(vec![b'o'; args.size]);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration_s);
    let own_lag = tokio::spawn(own_scheduling_lag(deadline));
    let clients: Vec<_> = (0..args.clients)
        .map(|i| {
            let (gets, puts, body, authority) =
                (gets.clone(), puts.clone(), body.clone(), authority.clone());
            let (share, base) = (args.get_share, args.backoff_base_ms);
            tokio::spawn(async move {
                let mut rng = Rng(i as u64 * 0x9e37_79b9 + 1);
                client(
                    addr, &authority, &gets, &puts, body, share, base, deadline, &mut rng,
                )
                .await
            })
        })
        .collect();
    let mut all = Tally::default();
    for c in clients {
        let t = c.await.map_err(|e| e.to_string())?;
        all.latency_us.extend(t.latency_us);
        all.put_latency_us.extend(t.put_latency_us);
        all.first_latency_us.extend(t.first_latency_us);
        all.shed += t.shed;
        all.errors += t.errors;
        all.connections_lost += t.connections_lost;
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut own_lag_us = own_lag.await.map_err(|e| e.to_string())?;
    own_lag_us.sort_unstable();
    all.latency_us.sort_unstable();
    all.put_latency_us.sort_unstable();
    all.first_latency_us.sort_unstable();
    let pct_of = |lat: &[u32], q: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let rank = ((q * lat.len() as f64).ceil() as usize).clamp(1, lat.len());
        f64::from(lat[rank - 1]) / 1000.0
    };
    let pct = |q: f64| pct_of(&all.latency_us, q);
    let accepted = all.latency_us.len() as u64;
    let answered = accepted + all.shed;
    println!(
        "{}",
        serde_json::json!({
            "label": args.label,
            "clients": args.clients,
            "seconds": seconds,
            "accepted": accepted,
            "accepted_per_s": accepted as f64 / seconds,
            "p50_ms": pct(0.50),
            "p90_ms": pct(0.90),
            "p95_ms": pct(0.95),
            "p98_ms": pct(0.98),
            "p99_ms": pct(0.99),
            "p999_ms": pct(0.999),
            "put_p99_ms": pct_of(&all.put_latency_us, 0.99),
            // How long this load generator's own ready tasks waited for
            // its cores: a response it read late counts in the latency.
            "own_lag_p99_ms": pct_of(&own_lag_us, 0.99),
            "first_on_connection": all.first_latency_us.len(),
            "first_on_connection_p99_ms": pct_of(&all.first_latency_us, 0.99),
            "shed": all.shed,
            "shed_share": if answered > 0 { all.shed as f64 / answered as f64 } else { 0.0 },
            "errors": all.errors,
            "connections_lost": all.connections_lost,
        })
    );
    Ok(())
}

/// The bucket with --keys objects, and a presigned GET of each and a
/// presigned PUT of each's overwrite.
async fn prepare(args: &Args) -> Result<(Vec<Signed>, Vec<Signed>), String> {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&args.endpoint)
        .region(Region::new(args.region.clone()))
        .credentials_provider(Credentials::new(
            &args.access_key,
            &args.secret_key,
            None,
            None,
            "overload",
        ))
        .force_path_style(true)
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(config);
    // Already there (an earlier step of the same run) is fine.
    let _ = s3.create_bucket().bucket(&args.bucket).send().await;
    let body = vec![b'p'; args.size];
    let expires =
        PresigningConfig::expires_in(Duration::from_secs(3600)).map_err(|e| e.to_string())?;
    let (mut gets, mut puts) = (Vec::new(), Vec::new());
    for i in 0..args.keys {
        let key = format!("o/{i:06}");
        s3.put_object()
            .bucket(&args.bucket)
            .key(&key)
            .body(body.clone().into())
            .send()
            .await
            .map_err(|e| format!("prefill {key}: {e:?}"))?;
        let get = s3
            .get_object()
            .bucket(&args.bucket)
            .key(&key)
            .presigned(expires.clone())
            .await
            .map_err(|e| e.to_string())?;
        let put = s3
            .put_object()
            .bucket(&args.bucket)
            .key(&key)
            .presigned(expires.clone())
            .await
            .map_err(|e| e.to_string())?;
        gets.push(signed(&get)?);
        puts.push(signed(&put)?);
    }
    Ok((gets, puts))
}

fn signed(p: &aws_sdk_s3::presigning::PresignedRequest) -> Result<Signed, String> {
    let uri: hyper::Uri = p.uri().parse().map_err(|e| format!("{}: {e}", p.uri()))?;
    Ok(Signed {
        method: p.method().parse().map_err(|e| format!("{e}"))?,
        target: uri
            .path_and_query()
            .map_or("/".to_string(), |pq| pq.to_string()),
        headers: p
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
}

#[allow(clippy::too_many_arguments)]
async fn client(
    addr: SocketAddr,
    authority: &str,
    gets: &[Signed],
    puts: &[Signed],
    body: Bytes,
    get_share: f64,
    backoff_base_ms: u64,
    deadline: Instant,
    rng: &mut Rng,
) -> Tally {
    let mut tally = Tally::default();
    let mut refusals_in_a_row = 0u32;
    let mut connection = None;
    let mut fresh = false;
    while Instant::now() < deadline {
        let sender = match &mut connection {
            Some(sender) => sender,
            None => match connect(addr).await {
                Some(sender) => {
                    fresh = true;
                    connection.insert(sender)
                }
                None => {
                    tally.connections_lost += 1;
                    backoff(&mut refusals_in_a_row, backoff_base_ms, rng).await;
                    continue;
                }
            },
        };
        let is_get = rng.unit() < get_share;
        let pick = if is_get { gets } else { puts };
        let signed = &pick[rng.below(pick.len())];
        let mut request = hyper::Request::builder()
            .method(signed.method.clone())
            .uri(&signed.target)
            .header(hyper::header::HOST, authority);
        for (k, v) in &signed.headers {
            request = request.header(k, v);
        }
        let payload = if is_get { Bytes::new() } else { body.clone() };
        let Ok(request) = request
            .header(hyper::header::CONTENT_LENGTH, payload.len())
            .body(Full::new(payload))
        else {
            tally.errors += 1;
            continue;
        };
        let sent = Instant::now();
        let answer = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            response.into_body().collect().await?;
            Ok::<_, hyper::Error>(status)
        };
        // A request still unanswered a while after the run ended is lost.
        let answered = match tokio::time::timeout_at((deadline + GRACE).into(), answer).await {
            Ok(answered) => answered,
            Err(_) => {
                tally.errors += 1;
                break;
            }
        };
        let was_fresh = std::mem::replace(&mut fresh, false);
        match answered {
            Ok(status) if status.is_success() => {
                let us = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                tally.latency_us.push(us);
                if !is_get {
                    tally.put_latency_us.push(us);
                }
                if was_fresh {
                    tally.first_latency_us.push(us);
                }
                refusals_in_a_row = 0;
            }
            Ok(status) if status == hyper::StatusCode::SERVICE_UNAVAILABLE => {
                tally.shed += 1;
                backoff(&mut refusals_in_a_row, backoff_base_ms, rng).await;
            }
            Ok(_) => tally.errors += 1,
            // Refused past the connection caps (closed at once) or dropped:
            // a client waits as it does after a 503, then connects again.
            Err(_) => {
                tally.connections_lost += 1;
                connection = None;
                backoff(&mut refusals_in_a_row, backoff_base_ms, rng).await;
            }
        }
        // The server closes a connection whose request body it did not
        // read (a shed PUT); the next request opens another.
        if connection.as_ref().is_some_and(|s| s.is_closed()) {
            connection = None;
        }
    }
    tally
}

/// Samples, every 5 ms, how long a yielding task waits to run again here.
async fn own_scheduling_lag(deadline: Instant) -> Vec<u32> {
    let mut samples = Vec::new();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let yielded = Instant::now();
        tokio::task::yield_now().await;
        samples.push(yielded.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
    }
    samples
}

async fn connect(addr: SocketAddr) -> Option<http1::SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(connection);
    Some(sender)
}

async fn backoff(in_a_row: &mut u32, base_ms: u64, rng: &mut Rng) {
    *in_a_row = (*in_a_row + 1).min(5);
    let cap_ms = (base_ms << (*in_a_row - 1)).min(base_ms * 20);
    let wait = Duration::from_micros((rng.unit() * cap_ms as f64 * 1000.0) as u64);
    tokio::time::sleep(wait).await;
}

/// wyrand: enough to pick keys and waits.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) ^ t) as u64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
