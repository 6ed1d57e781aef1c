//! Replays the object traffic of a vector database (Milvus 2.x naming) in
//! four phases, each reported on its own: insert (binlogs per field per
//! 16 MiB insert buffer, stats and delta logs), index (read a segment's
//! vectors, write the index in 16 MiB slices), load (list the index files,
//! ranged and whole reads of every slice) and compaction (read two
//! segments, write the merged one, delete the old ones).

use std::sync::Arc;
use std::time::Instant;

use crate::body::{key_id, Body, Payload, Rng};
use crate::ops::{self, Ctx, Job, DELETE_BATCH_KEYS, PART_BYTES};
use crate::stats::{OpError, Stats};
use crate::{Args, Report};

const DIM: u64 = 768;
/// Mean length of a row's varchar (JSON text) field.
const VARCHAR_BYTES: u64 = 256;
/// Row id, timestamp, primary key (int64 each), the vector, the text.
const ROW_BYTES: u64 = 3 * 8 + DIM * 4 + VARCHAR_BYTES;
/// A flush writes one binlog per field when the insert buffer holds this.
const INSERT_BUFFER_BYTES: u64 = 16 << 20;
const ROWS_PER_BUFFER: u64 = INSERT_BUFFER_BYTES / ROW_BYTES;
/// Row id, timestamp, pk, float vector, varchar.
const FIELDS: [u64; 5] = [0, 1, 100, 101, 102];
const VECTOR_FIELD: usize = 3;
const LOAD_RANGE_BYTES: u64 = 1 << 20;
/// Milvus timestamps: physical milliseconds shifted left by 18 logical bits.
const PHYSICAL_MS_BASE: i64 = 1_700_000_000_000;

pub struct Shape {
    seed: u64,
    segments: u64,
    buffers: u64,
    ranges_per_slice: u64,
}

impl Shape {
    pub fn new(args: &Args) -> Shape {
        Shape {
            seed: args.seed,
            segments: args.milvus_segments,
            buffers: args.milvus_buffers.max(1),
            ranges_per_slice: args.milvus_ranges_per_slice,
        }
    }
}

type Object = (String, Body);

struct Segment {
    id: u64,
    /// binlogs[field index][buffer]
    binlogs: Vec<Vec<Object>>,
    stats: Vec<Object>,
    delta: Object,
}

impl Segment {
    fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.binlogs.iter().flatten().map(|o| o.0.clone()).collect();
        keys.extend(self.stats.iter().map(|o| o.0.clone()));
        keys.push(self.delta.0.clone());
        keys
    }
}

struct Layout {
    seed: u64,
    collection: u64,
    partition: u64,
    segments: Vec<Segment>,
    next_log_id: u64,
}

impl Layout {
    fn new(shape: &Shape) -> Layout {
        // Milvus ids are 18-digit numbers; the seed picks the collection so
        // runs with other seeds do not overwrite each other.
        let collection = 450_000_000_000_000_000 + (shape.seed % 1_000_000) * 1000;
        let mut layout = Layout {
            seed: shape.seed,
            collection,
            partition: collection + 1,
            segments: Vec::new(),
            next_log_id: collection + 10_000,
        };
        for s in 0..shape.segments {
            let segment = layout.segment(s, shape.buffers);
            layout.segments.push(segment);
        }
        layout
    }

    fn log_id(&mut self) -> u64 {
        self.next_log_id += 1;
        self.next_log_id
    }

    fn insert_key(&mut self, segment: u64, field: u64) -> String {
        let log = self.log_id();
        format!(
            "files/insert_log/{}/{}/{segment}/{field}/{log}",
            self.collection, self.partition
        )
    }

    fn gen(&self, payload: Payload, key: &str, len_bytes: u64) -> Body {
        Body::Gen {
            payload,
            seed: self.seed,
            id: key_id(key),
            len_bytes,
        }
    }

    fn segment(&mut self, s: u64, buffers: u64) -> Segment {
        let id = self.collection + 100 + s;
        let mut binlogs = vec![Vec::new(); FIELDS.len()];
        let mut stats = Vec::new();
        let rows = ROWS_PER_BUFFER;
        for b in 0..buffers {
            let row0 = ((s * buffers + b) * rows) as i64;
            for (f, &field) in FIELDS.iter().enumerate() {
                let key = self.insert_key(id, field);
                let body = match field {
                    0 => Body::Int64 {
                        first: row0,
                        step: 1,
                        count: rows,
                    },
                    1 => Body::Int64 {
                        first: (PHYSICAL_MS_BASE + (s * 1_000_000 + b * 1000) as i64) << 18,
                        step: 1,
                        count: rows,
                    },
                    100 => Body::Int64 {
                        first: 1_000_000_000 + row0,
                        step: 1,
                        count: rows,
                    },
                    101 => self.gen(Payload::Float32, &key, rows * DIM * 4),
                    _ => self.gen(Payload::Json, &key, rows * VARCHAR_BYTES),
                };
                binlogs[f].push((key, body));
            }
            // A bloom filter of the buffer's primary keys, 10 bits a row.
            let log = self.log_id();
            let key = format!(
                "files/stats_log/{}/{}/{id}/100/{log}",
                self.collection, self.partition
            );
            let body = self.gen(Payload::Random, &key, (rows * 10).div_ceil(8));
            stats.push((key, body));
        }
        // Deletes of 1% of the rows: primary keys and timestamps.
        let log = self.log_id();
        let key = format!(
            "files/delta_log/{}/{}/{id}/{log}",
            self.collection, self.partition
        );
        let delta = (
            key,
            Body::Int64 {
                first: 1_000_000_000 + (s * buffers * rows) as i64,
                step: 97,
                count: 2 * (buffers * rows / 100).max(1),
            },
        );
        Segment {
            id,
            binlogs,
            stats,
            delta,
        }
    }

    /// The index slices of a segment: as many bytes as its vectors, cut in
    /// 16 MiB objects.
    fn index_slices(&self, segment: &Segment) -> Vec<Object> {
        let total: u64 = segment.binlogs[VECTOR_FIELD]
            .iter()
            .map(|o| o.1.len_bytes())
            .sum();
        let build = self.collection + 50_000 + segment.id % 1000;
        let version = 1;
        (0..total.div_ceil(PART_BYTES))
            .map(|n| {
                let key = format!(
                    "index_files/{build}_{version}_{}_{}/index_file_{n}",
                    segment.id, FIELDS[VECTOR_FIELD]
                );
                let len = PART_BYTES.min(total - n * PART_BYTES);
                let body = self.gen(Payload::Float32, &key, len);
                (key, body)
            })
            .collect()
    }
}

fn puts(objects: &[Object]) -> Vec<Job> {
    objects
        .iter()
        .map(|(key, body)| Job::Put {
            key: key.clone(),
            body: body.clone(),
        })
        .collect()
}

fn gets(objects: &[Object]) -> Vec<Job> {
    objects
        .iter()
        .map(|(key, body)| Job::Get {
            key: key.clone(),
            body: body.clone(),
            range: None,
        })
        .collect()
}

fn emit(report: &Report, phase: &str, stats: Stats, start: Instant) {
    let mean = stats.bytes / stats.ops().max(1);
    report.emit(phase, mean, stats, start.elapsed());
}

pub async fn run(ctx: &Arc<Ctx>, report: &Report<'_>, shape: &Shape) {
    let mut layout = Layout::new(shape);
    let conc = report.concurrency();

    // insert: each flush writes a binlog per field and a stats log; the
    // delta log comes at the segment's end.
    let start = Instant::now();
    let mut objects = Vec::new();
    for seg in &layout.segments {
        for b in 0..seg.stats.len() {
            objects.extend(seg.binlogs.iter().map(|f| f[b].clone()));
            objects.push(seg.stats[b].clone());
        }
        objects.push(seg.delta.clone());
    }
    let stats = ops::run_jobs(ctx, puts(&objects), conc).await;
    emit(report, "insert", stats, start);
    report.drop_caches();

    // index: one segment after the other, as index tasks are.
    let start = Instant::now();
    let mut stats = Stats::default();
    let mut slices = Vec::new();
    for seg in &layout.segments {
        stats.merge(ops::run_jobs(ctx, gets(&seg.binlogs[VECTOR_FIELD]), conc).await);
        let own = layout.index_slices(seg);
        stats.merge(ops::run_jobs(ctx, puts(&own), conc).await);
        slices.extend(own);
    }
    emit(report, "index", stats, start);
    report.drop_caches();

    // load: find the index files, then read parts of each slice (a query)
    // and each slice whole (loading the index).
    let start = Instant::now();
    let mut stats = Stats::default();
    if let Some(listed) = ops::list_all(ctx, "index_files/", &mut stats, || true).await {
        let listed: std::collections::HashSet<String> = listed.into_iter().collect();
        let missing = slices.iter().filter(|s| !listed.contains(&s.0)).count();
        if ctx.verify && missing > 0 {
            stats.errors += 1;
            ctx.errors.note(&OpError::new(
                "ListObjectsV2 verify",
                format!("{missing} of {} index slices not listed", slices.len()),
            ));
        }
    }
    let mut rng = Rng::new(shape.seed ^ 0x10ad);
    let mut jobs = Vec::new();
    for (key, body) in &slices {
        let len = body.len_bytes();
        let range_len = LOAD_RANGE_BYTES.min(len);
        for _ in 0..shape.ranges_per_slice {
            jobs.push(Job::Get {
                key: key.clone(),
                body: body.clone(),
                range: Some((rng.below(len - range_len + 1), range_len)),
            });
        }
        jobs.push(Job::Get {
            key: key.clone(),
            body: body.clone(),
            range: None,
        });
    }
    for i in (1..jobs.len()).rev() {
        jobs.swap(i, rng.below(i as u64 + 1) as usize);
    }
    stats.merge(ops::run_jobs(ctx, jobs, conc).await);
    emit(report, "load", stats, start);
    report.drop_caches();

    // compaction: merge segments pairwise; each field's binlogs of both
    // become one binlog (multipart when large), then the old ones go.
    let start = Instant::now();
    let mut stats = Stats::default();
    let pairs = layout.segments.len() / 2;
    for k in 0..pairs {
        let (a, b) = (&layout.segments[2 * k], &layout.segments[2 * k + 1]);
        let mut reads: Vec<Object> = Vec::new();
        for seg in [a, b] {
            reads.extend(seg.binlogs.iter().flatten().cloned());
            reads.push(seg.delta.clone());
        }
        let old_keys: Vec<String> = a.keys().into_iter().chain(b.keys()).collect();
        let merged_id = layout.collection + 200 + k as u64;
        let field_bodies: Vec<Body> = (0..FIELDS.len())
            .map(|f| {
                let parts: Vec<Body> = [a, b]
                    .iter()
                    .flat_map(|seg| seg.binlogs[f].iter().map(|o| o.1.clone()))
                    .collect();
                Body::Concat(Arc::new(parts))
            })
            .collect();
        let stats_len: u64 = [a, b]
            .iter()
            .flat_map(|seg| seg.stats.iter().map(|o| o.1.len_bytes()))
            .sum();
        let mut writes = Vec::new();
        for (f, body) in field_bodies.into_iter().enumerate() {
            writes.push((layout.insert_key(merged_id, FIELDS[f]), body));
        }
        let log = layout.log_id();
        let key = format!(
            "files/stats_log/{}/{}/{merged_id}/100/{log}",
            layout.collection, layout.partition
        );
        let body = layout.gen(Payload::Random, &key, stats_len);
        writes.push((key, body));

        stats.merge(ops::run_jobs(ctx, gets(&reads), conc).await);
        stats.merge(ops::run_jobs(ctx, puts(&writes), conc).await);
        let deletes = old_keys
            .chunks(DELETE_BATCH_KEYS)
            .map(|c| Job::Delete { keys: c.to_vec() })
            .collect();
        stats.merge(ops::run_jobs(ctx, deletes, conc).await);
    }
    emit(report, "compaction", stats, start);
}
