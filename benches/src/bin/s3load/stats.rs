//! What a run measures: per-worker latency vectors (microseconds, merged at
//! the end: fine for our run sizes, no histogram library), byte and error
//! counts, and the two outputs: a table row on stderr, one JSON line on
//! stdout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// One worker's (or one phase's) measurements.
#[derive(Default)]
pub struct Stats {
    /// Latency of every successful operation, in microseconds.
    pub latency_us: Vec<u32>,
    pub bytes: u64,
    pub errors: u64,
}

impl Stats {
    pub fn record(&mut self, latency: Duration, bytes: u64) {
        self.latency_us
            .push(latency.as_micros().min(u128::from(u32::MAX)) as u32);
        self.bytes += bytes;
    }

    pub fn merge(&mut self, other: Stats) {
        self.latency_us.extend(other.latency_us);
        self.bytes += other.bytes;
        self.errors += other.errors;
    }

    pub fn ops(&self) -> u64 {
        self.latency_us.len() as u64
    }
}

/// A failed operation: `kind` groups errors (operation and S3 code), the
/// message is printed for the first error of each kind only.
#[derive(Debug)]
pub struct OpError {
    pub kind: String,
    pub message: String,
}

impl OpError {
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> OpError {
        OpError {
            kind: kind.into(),
            message: message.into(),
        }
    }
}

/// Counts errors by kind across workers; errors are measured, not fatal.
#[derive(Default)]
pub struct Errors {
    by_kind: Mutex<HashMap<String, u64>>,
}

impl Errors {
    pub fn note(&self, e: &OpError) {
        let mut map = self.by_kind.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(e.kind.clone()).or_insert(0);
        if *n == 0 {
            eprintln!("error [{}]: {}", e.kind, e.message);
        }
        *n += 1;
    }

    pub fn summary(&self) -> Vec<(String, u64)> {
        let map = self.by_kind.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = map.iter().map(|(k, n)| (k.clone(), *n)).collect();
        v.sort();
        v
    }
}

/// The fixed columns of a result row.
pub struct RowInfo<'a> {
    pub label: &'a str,
    pub endpoint: &'a str,
    pub mode: &'a str,
    pub phase: &'a str,
    pub concurrency: usize,
    pub size_bytes: u64,
    pub payload: &'a str,
}

static HEADER_PRINTED: AtomicBool = AtomicBool::new(false);

/// Prints the table row (stderr) and the JSON line (stdout) of one run or
/// phase. `ops` counts successful operations; errors are separate.
pub fn emit(info: &RowInfo, mut stats: Stats, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    stats.latency_us.sort_unstable();
    let lat = &stats.latency_us;
    let pct = |q: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let rank = ((q * lat.len() as f64).ceil() as usize).clamp(1, lat.len());
        f64::from(lat[rank - 1]) / 1000.0
    };
    let ops = stats.ops();
    let ops_per_s = ops as f64 / seconds;
    let mb_per_s = stats.bytes as f64 / 1e6 / seconds;
    let round = |x: f64, digits: i32| {
        let m = 10f64.powi(digits);
        (x * m).round() / m
    };
    let row = serde_json::json!({
        "label": info.label,
        "endpoint": info.endpoint,
        "mode": info.mode,
        "phase": info.phase,
        "concurrency": info.concurrency,
        "size_bytes": info.size_bytes,
        "payload": info.payload,
        "ops": ops,
        "errors": stats.errors,
        "bytes": stats.bytes,
        "seconds": round(seconds, 3),
        "ops_per_s": round(ops_per_s, 1),
        "mb_per_s": round(mb_per_s, 1),
        "latency_ms_p50": round(pct(0.50), 3),
        "latency_ms_p90": round(pct(0.90), 3),
        "latency_ms_p99": round(pct(0.99), 3),
        "latency_ms_p999": round(pct(0.999), 3),
        "latency_ms_max": round(lat.last().map_or(0.0, |v| f64::from(*v) / 1000.0), 3),
    });
    if !HEADER_PRINTED.swap(true, Ordering::Relaxed) {
        eprintln!(
            "{:<14} {:<7} {:<11} {:>4} {:>11} {:>8} {:>6} {:>7} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "label", "mode", "phase", "conc", "size", "ops", "errors", "secs", "ops/s", "MB/s",
            "p50 ms", "p99 ms", "p999 ms", "max ms"
        );
    }
    eprintln!(
        "{:<14} {:<7} {:<11} {:>4} {:>11} {:>8} {:>6} {:>7.2} {:>10.1} {:>8.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
        info.label,
        info.mode,
        info.phase,
        info.concurrency,
        info.size_bytes,
        ops,
        stats.errors,
        seconds,
        ops_per_s,
        mb_per_s,
        pct(0.50),
        pct(0.99),
        pct(0.999),
        lat.last().map_or(0.0, |v| f64::from(*v) / 1000.0),
    );
    println!("{row}");
}
