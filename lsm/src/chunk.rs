//! Chunk records: content hash, compression decision, and decoding back to
//! the raw bytes.

use crate::error::{Error, Result};
use crate::format::{decode_chunk_payload, encode_chunk_payload, flags, Location, Record};
use crate::writer::PendingRecord;

/// Compression is kept only if it saves at least 1/8 of the bytes; below
/// that, the CPU spent on every read is not worth the space.
const MIN_SAVING_DIVISOR: usize = 8;
/// Incompressible data is detected on a sample before compressing it all.
const SAMPLE_BYTES: usize = 64 << 10;

#[derive(Debug, Clone, Copy)]
pub struct Compression {
    /// zstd level; `None` stores every chunk raw.
    pub zstd_level: Option<i32>,
}

impl Default for Compression {
    fn default() -> Self {
        Compression {
            zstd_level: Some(1),
        }
    }
}

pub fn content_hash(data: &[u8]) -> [u8; 32] {
    *blake3::hash(data).as_bytes()
}

fn worth_it(raw: usize, compressed: usize) -> bool {
    compressed + raw / MIN_SAVING_DIVISOR <= raw
}

/// Builds the chunk record for `data`, compressed where that pays.
pub fn encode_chunk(data: &[u8], compression: Compression) -> PendingRecord {
    let hash = content_hash(data);
    let raw_len = data.len() as u32;
    let mut record_flags = 0;
    let mut stored: Option<Vec<u8>> = None;
    if let Some(level) = compression.zstd_level {
        let sample = &data[..data.len().min(SAMPLE_BYTES)];
        let sample_ok = zstd::bulk::compress(sample, level)
            .map(|c| worth_it(sample.len(), c.len()))
            .unwrap_or(false);
        if sample_ok {
            if let Ok(compressed) = zstd::bulk::compress(data, level) {
                if worth_it(data.len(), compressed.len()) {
                    record_flags |= flags::ZSTD;
                    stored = Some(compressed);
                }
            }
        }
    }
    let payload = encode_chunk_payload(&hash, raw_len, stored.as_deref().unwrap_or(data));
    PendingRecord {
        flags: record_flags,
        payload,
        record: Record::Chunk { hash, raw_len },
    }
}

/// Turns a verified chunk payload back into its raw bytes.
pub fn decode_chunk(location: Location, record_flags: u8, payload: &[u8]) -> Result<Vec<u8>> {
    let corrupt = |reason: &str| Error::Corruption {
        location,
        reason: reason.to_string(),
    };
    let chunk = decode_chunk_payload(payload).ok_or_else(|| corrupt("chunk payload too short"))?;
    let raw_len = chunk.raw_len as usize;
    let raw = if record_flags & flags::ZSTD != 0 {
        zstd::bulk::decompress(chunk.stored, raw_len).map_err(|e| corrupt(&format!("zstd: {e}")))?
    } else {
        chunk.stored.to_vec()
    };
    if raw.len() != raw_len {
        return Err(corrupt("chunk length mismatch"));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOC: Location = Location {
        segment: 0,
        offset: 0,
        len: 0,
    };

    #[test]
    fn compressible_data_is_compressed_and_random_is_not() {
        let text = "{\"id\": 12, \"name\": \"vector\"} "
            .repeat(4000)
            .into_bytes();
        let rec = encode_chunk(&text, Compression::default());
        assert_eq!(rec.flags & flags::ZSTD, flags::ZSTD);
        assert!(rec.payload.len() < text.len() / 4);
        assert_eq!(decode_chunk(LOC, rec.flags, &rec.payload).unwrap(), text);

        let random: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let rec = encode_chunk(&random, Compression::default());
        if rec.flags & flags::ZSTD == 0 {
            assert_eq!(
                rec.payload.len(),
                random.len() + crate::format::CHUNK_PREFIX_BYTES
            );
        }
        assert_eq!(decode_chunk(LOC, rec.flags, &rec.payload).unwrap(), random);

        let raw = encode_chunk(&text, Compression { zstd_level: None });
        assert_eq!(raw.flags, 0);
    }
}
