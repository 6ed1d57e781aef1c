//! Object bodies that are a pure function of (seed, body id, offset): a PUT
//! generates them, a GET with --verify regenerates the same bytes to compare,
//! and nothing is kept in memory in between. Any byte range can be produced
//! on its own, so ranged reads and multipart parts are checked too.

use std::io::Write;
use std::sync::Arc;

/// Bodies are made of independently seeded blocks, so a range costs at most
/// one partial block more than its length.
pub const BLOCK_BYTES: usize = 64 << 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Payload {
    /// Incompressible bytes.
    Random,
    /// Little-endian f32 values ~N(0, 0.05), like embeddings.
    Float32,
    /// JSON-ish lines of text.
    Json,
}

impl Payload {
    pub fn name(self) -> &'static str {
        match self {
            Payload::Random => "random",
            Payload::Float32 => "float32",
            Payload::Json => "json",
        }
    }
}

#[derive(Clone, Debug)]
pub enum Body {
    /// `len_bytes` of `payload`, its blocks seeded from (seed, id, block).
    Gen {
        payload: Payload,
        seed: u64,
        id: u64,
        len_bytes: u64,
    },
    /// Little-endian i64 values `first + k * step` for k in 0..count
    /// (row ids, timestamps, primary keys).
    Int64 { first: i64, step: i64, count: u64 },
    /// The bodies one after the other (a merged binlog).
    Concat(Arc<Vec<Body>>),
}

impl Body {
    pub fn len_bytes(&self) -> u64 {
        match self {
            Body::Gen { len_bytes, .. } => *len_bytes,
            Body::Int64 { count, .. } => count * 8,
            Body::Concat(parts) => parts.iter().map(Body::len_bytes).sum(),
        }
    }

    /// Writes bytes `offset .. offset + out.len()` of the body into `out`.
    pub fn fill(&self, offset: u64, out: &mut [u8]) {
        debug_assert!(offset + out.len() as u64 <= self.len_bytes());
        match self {
            Body::Gen {
                payload, seed, id, ..
            } => fill_gen(*payload, mix(*seed ^ mix(*id)), offset, out),
            Body::Int64 { first, step, .. } => {
                let mut pos = offset;
                let mut done = 0;
                while done < out.len() {
                    let k = pos / 8;
                    let value = first.wrapping_add(step.wrapping_mul(k as i64));
                    let bytes = value.to_le_bytes();
                    let from = (pos % 8) as usize;
                    let n = (8 - from).min(out.len() - done);
                    out[done..done + n].copy_from_slice(&bytes[from..from + n]);
                    done += n;
                    pos += n as u64;
                }
            }
            Body::Concat(parts) => {
                let mut start = 0u64;
                let mut done = 0usize;
                for part in parts.iter() {
                    let len = part.len_bytes();
                    let pos = offset + done as u64;
                    if done == out.len() {
                        break;
                    }
                    if pos < start + len {
                        let n = ((start + len - pos) as usize).min(out.len() - done);
                        part.fill(pos - start, &mut out[done..done + n]);
                        done += n;
                    }
                    start += len;
                }
            }
        }
    }

    /// The bytes `offset .. offset + len` as a new buffer.
    pub fn range(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        self.fill(offset, &mut out);
        out
    }
}

fn fill_gen(payload: Payload, key: u64, offset: u64, out: &mut [u8]) {
    let mut scratch: Vec<u8> = Vec::new();
    let mut pos = offset;
    let mut done = 0;
    while done < out.len() {
        let block = pos / BLOCK_BYTES as u64;
        let in_block = (pos % BLOCK_BYTES as u64) as usize;
        let n = (BLOCK_BYTES - in_block).min(out.len() - done);
        let block_key = mix(key ^ mix(block.wrapping_add(0x5eed)));
        if in_block == 0 {
            // Every generator is prefix-stable: a shorter output is the
            // start of the full block.
            gen_block(payload, block_key, block, &mut out[done..done + n]);
        } else {
            scratch.resize(in_block + n, 0);
            gen_block(payload, block_key, block, &mut scratch);
            out[done..done + n].copy_from_slice(&scratch[in_block..]);
        }
        done += n;
        pos += n as u64;
    }
}

fn gen_block(payload: Payload, key: u64, block: u64, out: &mut [u8]) {
    let mut rng = Rng::new(key);
    match payload {
        Payload::Random => {
            let mut chunks = out.chunks_exact_mut(8);
            for c in &mut chunks {
                c.copy_from_slice(&rng.next_u64().to_le_bytes());
            }
            let tail = chunks.into_remainder();
            let last = rng.next_u64().to_le_bytes();
            tail.copy_from_slice(&last[..tail.len()]);
        }
        Payload::Float32 => {
            let mut chunks = out.chunks_exact_mut(4);
            for c in &mut chunks {
                c.copy_from_slice(&gaussian_f32(&mut rng).to_le_bytes());
            }
            let tail = chunks.into_remainder();
            let last = gaussian_f32(&mut rng).to_le_bytes();
            tail.copy_from_slice(&last[..tail.len()]);
        }
        Payload::Json => json_lines(&mut rng, block, out),
    }
}

/// ~N(0, 0.05) from the sum of four uniform u32 (Irwin-Hall): a few
/// nanoseconds a value, so generating never becomes the benchmark.
fn gaussian_f32(rng: &mut Rng) -> f32 {
    let a = rng.next_u64();
    let b = rng.next_u64();
    let sum = (a & 0xffff_ffff) + (a >> 32) + (b & 0xffff_ffff) + (b >> 32);
    const MEAN: f64 = 2.0 * 4_294_967_295.0;
    // Standard deviation of a sum of four U(0, 2^32): 2^32 * sqrt(4 / 12).
    const SD: f64 = 4_294_967_296.0 * 0.577_350_269_189_625_8;
    (((sum as f64) - MEAN) / SD * 0.05) as f32
}

const WORDS: [&str; 32] = [
    "vector",
    "index",
    "segment",
    "query",
    "search",
    "milvus",
    "object",
    "store",
    "cluster",
    "replica",
    "shard",
    "field",
    "schema",
    "insert",
    "delete",
    "flush",
    "compact",
    "binlog",
    "sealed",
    "growing",
    "channel",
    "collection",
    "partition",
    "embedding",
    "distance",
    "cosine",
    "recall",
    "latency",
    "throughput",
    "storage",
    "bucket",
    "region",
];

/// Lines such as `{"id":..,"user":"u1f3a","score":0.4821,"tags":[..],"text":".."}`,
/// cut where the block ends (a byte slice writer stops exactly when full).
fn json_lines(rng: &mut Rng, block: u64, out: &mut [u8]) {
    let mut w: &mut [u8] = out;
    let mut line = block * 1024;
    loop {
        let r = rng.next_u64();
        let word = |k: u32| WORDS[((r >> (k * 5)) & 31) as usize];
        let text_words = 4 + (r >> 40) % 24;
        let res = (|| -> std::io::Result<()> {
            write!(
                w,
                "{{\"id\":{line},\"user\":\"u{:05x}\",\"score\":{:.4},\"tags\":[\"{}\",\"{}\"],\"text\":\"",
                (r >> 20) & 0xfffff,
                (r & 0xffff) as f64 / 65536.0,
                word(0),
                word(1)
            )?;
            let mut t = rng.next_u64();
            for k in 0..text_words {
                if k % 12 == 11 {
                    t = rng.next_u64();
                }
                let sep = if k == 0 { "" } else { " " };
                write!(w, "{sep}{}", WORDS[(t & 31) as usize])?;
                t >>= 5;
            }
            w.write_all(b"\"}\n")
        })();
        if res.is_err() || w.is_empty() {
            return;
        }
        line += 1;
    }
}

/// wyrand: fast, and good enough that random bodies do not compress.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(mix(seed))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) ^ t) as u64
    }

    /// Uniform in 0..n (n > 0); the bias of the modulo is irrelevant here.
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        self.next_u64() % n
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// splitmix64 finaliser.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A stable id for a key (FNV-1a, then mixed), so a body can be derived
/// from the key alone.
pub fn key_id(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// Compares a streamed response with the expected bytes of a body range.
pub struct Checker<'a> {
    body: &'a Body,
    pos: u64,
    end: u64,
    scratch: Vec<u8>,
}

impl<'a> Checker<'a> {
    pub fn new(body: &'a Body, offset: u64, len: u64) -> Checker<'a> {
        Checker {
            body,
            pos: offset,
            end: offset + len,
            scratch: Vec::new(),
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), String> {
        if self.pos + chunk.len() as u64 > self.end {
            return Err(format!(
                "response longer than expected: {} bytes past offset {}",
                chunk.len(),
                self.pos
            ));
        }
        self.scratch.resize(chunk.len(), 0);
        self.body.fill(self.pos, &mut self.scratch);
        if self.scratch != chunk {
            let at = self
                .scratch
                .iter()
                .zip(chunk)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Err(format!(
                "body differs from the expected bytes at object offset {}",
                self.pos + at as u64
            ));
        }
        self.pos += chunk.len() as u64;
        Ok(())
    }

    pub fn finish(&self) -> Result<(), String> {
        if self.pos != self.end {
            return Err(format!(
                "response shorter than expected: ended at offset {}, expected {}",
                self.pos, self.end
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bodies() -> Vec<Body> {
        let gen = |payload| Body::Gen {
            payload,
            seed: 7,
            id: 3,
            len_bytes: 5 * BLOCK_BYTES as u64 + 1234,
        };
        let ints = Body::Int64 {
            first: -5,
            step: 3,
            count: 1001,
        };
        vec![
            gen(Payload::Random),
            gen(Payload::Float32),
            gen(Payload::Json),
            ints.clone(),
            Body::Concat(Arc::new(vec![
                gen(Payload::Json),
                ints,
                gen(Payload::Random),
            ])),
        ]
    }

    #[test]
    fn any_range_matches_the_whole_body() {
        for body in bodies() {
            let len = body.len_bytes() as usize;
            let whole = body.range(0, len);
            for (off, n) in [
                (0, 1),
                (1, 7),
                (4095, 70_000),
                (BLOCK_BYTES - 3, 9),
                (len - 5, 5),
            ] {
                if off >= len {
                    continue;
                }
                let n = n.min(len - off);
                assert_eq!(
                    body.range(off as u64, n),
                    whole[off..off + n],
                    "{body:?} {off}"
                );
            }
        }
    }

    #[test]
    fn checker_accepts_chunks_and_rejects_changes() {
        let body = &bodies()[2];
        let bytes = body.range(100, 200_000);
        let mut c = Checker::new(body, 100, 200_000);
        for chunk in bytes.chunks(8191) {
            c.feed(chunk).unwrap();
        }
        c.finish().unwrap();
        let mut bad = bytes.clone();
        bad[12345] ^= 1;
        let mut c = Checker::new(body, 100, 200_000);
        assert!(c.feed(&bad).unwrap_err().contains("12445"));
    }

    #[test]
    fn float32_looks_like_embeddings() {
        let body = &bodies()[1];
        let bytes = body.range(0, 1 << 18);
        let v: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let mean = v.iter().map(|x| f64::from(*x)).sum::<f64>() / v.len() as f64;
        let var = v
            .iter()
            .map(|x| (f64::from(*x) - mean).powi(2))
            .sum::<f64>()
            / v.len() as f64;
        assert!(mean.abs() < 0.002, "{mean}");
        assert!((var.sqrt() - 0.05).abs() < 0.002, "{}", var.sqrt());
    }
}
