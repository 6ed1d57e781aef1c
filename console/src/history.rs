//! The last hour of the server's own metrics, sampled in memory for the
//! dashboard (no Prometheus needed): requests per second and latency
//! percentiles by operation, and bytes in and out, per sample interval.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use s3api::{Metrics, MetricsSnapshot, LATENCY_BUCKETS_S};
use serde::Serialize;

const KEEP: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OperationPoint {
    pub per_s: f64,
    /// Upper bounds of the latency buckets holding the median and the
    /// 99th percentile, in milliseconds.
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Point {
    /// Unix time of the sample's end, in seconds.
    pub t: u64,
    pub operations: BTreeMap<String, OperationPoint>,
    pub bytes_in_per_s: f64,
    pub bytes_out_per_s: f64,
}

pub struct History {
    interval: Duration,
    points: Mutex<VecDeque<Point>>,
}

impl History {
    pub fn new(interval: Duration) -> Arc<History> {
        Arc::new(History {
            interval: interval.max(Duration::from_millis(100)),
            points: Mutex::default(),
        })
    }

    /// Samples `metrics` every interval, for as long as the task runs.
    pub async fn sample(self: Arc<History>, metrics: Arc<Metrics>) {
        let mut previous = metrics.snapshot();
        let mut ticks = tokio::time::interval(self.interval);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let now = metrics.snapshot();
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            self.push(point(&previous, &now, self.interval, t));
            previous = now;
        }
    }

    fn push(&self, point: Point) {
        let keep = (KEEP.as_millis() / self.interval.as_millis()).max(1) as usize;
        let mut points = self.points.lock();
        points.push_back(point);
        while points.len() > keep {
            points.pop_front();
        }
    }

    pub fn json(&self) -> serde_json::Value {
        let points: Vec<Point> = self.points.lock().iter().cloned().collect();
        serde_json::json!({
            "interval_s": self.interval.as_secs_f64(),
            "points": points,
        })
    }
}

fn point(before: &MetricsSnapshot, after: &MetricsSnapshot, interval: Duration, t: u64) -> Point {
    let seconds = interval.as_secs_f64();
    let mut operations = BTreeMap::new();
    for (op, (count, buckets)) in &after.operations {
        let (count_before, buckets_before) = before
            .operations
            .get(op)
            .copied()
            .unwrap_or((0, [0; LATENCY_BUCKETS_S.len()]));
        let requests = count.saturating_sub(count_before);
        if requests == 0 {
            continue;
        }
        let within: Vec<u64> = buckets
            .iter()
            .zip(buckets_before)
            .map(|(a, b)| a.saturating_sub(b))
            .collect();
        operations.insert(
            op.clone(),
            OperationPoint {
                per_s: requests as f64 / seconds,
                p50_ms: quantile_ms(&within, requests, 0.50),
                p99_ms: quantile_ms(&within, requests, 0.99),
            },
        );
    }
    Point {
        t,
        operations,
        bytes_in_per_s: after.bytes_in.saturating_sub(before.bytes_in) as f64 / seconds,
        bytes_out_per_s: after.bytes_out.saturating_sub(before.bytes_out) as f64 / seconds,
    }
}

/// The upper bound of the first bucket holding at least `q` of `total`
/// requests (`within` counts requests at or under each bound); past the
/// last bound, the last bound.
fn quantile_ms(within: &[u64], total: u64, q: f64) -> f64 {
    let wanted = (total as f64 * q).ceil() as u64;
    let bound = LATENCY_BUCKETS_S
        .iter()
        .zip(within)
        .find(|(_, count)| **count >= wanted)
        .map_or(LATENCY_BUCKETS_S[LATENCY_BUCKETS_S.len() - 1], |(b, _)| *b);
    bound * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(
        count: u64,
        buckets: [u64; LATENCY_BUCKETS_S.len()],
        bytes: u64,
    ) -> MetricsSnapshot {
        MetricsSnapshot {
            operations: [("GetObject".to_string(), (count, buckets))].into(),
            bytes_in: bytes,
            bytes_out: 2 * bytes,
        }
    }

    #[test]
    fn a_point_is_the_difference_of_two_samples() {
        let before = snapshot(10, [10; 12], 1000);
        // 100 more requests: 50 within 1 ms, 98 within 10 ms, all within 0.5 s.
        let mut buckets = [10u64; 12];
        for (i, add) in [0, 50, 50, 50, 98, 98, 99, 99, 99, 100, 100, 100]
            .iter()
            .enumerate()
        {
            buckets[i] += add;
        }
        let after = snapshot(110, buckets, 11_000);
        let p = point(&before, &after, Duration::from_secs(10), 7);
        let get = &p.operations["GetObject"];
        assert_eq!(get.per_s, 10.0);
        assert_eq!(get.p50_ms, 1.0);
        assert_eq!(get.p99_ms, 50.0);
        assert_eq!((p.bytes_in_per_s, p.bytes_out_per_s), (1000.0, 2000.0));
        // An idle interval has no operations.
        assert!(point(&after, &after, Duration::from_secs(10), 8)
            .operations
            .is_empty());
    }

    #[test]
    fn an_hour_is_kept() {
        let history = History::new(Duration::from_secs(60));
        for t in 0..100 {
            history.push(point(
                &snapshot(0, [0; 12], 0),
                &snapshot(0, [0; 12], 0),
                Duration::from_secs(60),
                t,
            ));
        }
        let json = history.json();
        let points = json["points"].as_array().unwrap();
        assert_eq!(points.len(), 60);
        assert_eq!(points[0]["t"], 40);
    }
}
