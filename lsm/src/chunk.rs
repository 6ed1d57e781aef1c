//! Chunk records: content hash, compression decision, and decoding back to
//! the raw bytes.

use bytes::Bytes;

use crate::cipher::{DataKey, SEAL_OVERHEAD};
use crate::error::{Error, Result};
use crate::format::{
    chunk_payload_unhashed, decode_chunk_payload, encode_chunk_payload, fill_chunk_prefix, flags,
    Location, Record, CHUNK_PREFIX_BYTES, MAX_RECORD_BYTES,
};
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
    /// Also try zstd on the data split into 4 byte planes, which is how
    /// float32 arrays compress (their sign and exponent bytes repeat).
    pub shuffle: bool,
}

impl Default for Compression {
    fn default() -> Self {
        Compression {
            zstd_level: Some(1),
            shuffle: true,
        }
    }
}

pub fn content_hash(data: &[u8]) -> [u8; 32] {
    *blake3::hash(data).as_bytes()
}

fn worth_it(raw: usize, compressed: usize) -> bool {
    compressed + raw / MIN_SAVING_DIVISOR <= raw
}

/// Byte planes: every 4th byte together, then the next plane, and so on.
/// A tail that is not a multiple of 4 stays as it is.
fn shuffle4(data: &[u8]) -> Vec<u8> {
    let words = data.len() / 4;
    let mut out = vec![0; data.len()];
    let (planes, tail) = out.split_at_mut(words * 4);
    let (p0, rest) = planes.split_at_mut(words);
    let (p1, rest) = rest.split_at_mut(words);
    let (p2, p3) = rest.split_at_mut(words);
    // One pass over the words, no index checks: the compiler vectorises it.
    for ((((word, a), b), c), d) in data
        .chunks_exact(4)
        .zip(p0.iter_mut())
        .zip(p1.iter_mut())
        .zip(p2.iter_mut())
        .zip(p3.iter_mut())
    {
        *a = word[0];
        *b = word[1];
        *c = word[2];
        *d = word[3];
    }
    tail.copy_from_slice(&data[words * 4..]);
    out
}

fn unshuffle4(data: &[u8]) -> Vec<u8> {
    let words = data.len() / 4;
    let mut out = vec![0; data.len()];
    let (p0, rest) = data.split_at(words);
    let (p1, rest) = rest.split_at(words);
    let (p2, rest) = rest.split_at(words);
    let (p3, tail) = rest.split_at(words);
    let (body, out_tail) = out.split_at_mut(words * 4);
    for ((((word, a), b), c), d) in body.chunks_exact_mut(4).zip(p0).zip(p1).zip(p2).zip(p3) {
        word.copy_from_slice(&[*a, *b, *c, *d]);
    }
    out_tail.copy_from_slice(tail);
    out
}

/// How to store a chunk, judged on a sample: raw, zstd, or shuffle + zstd.
fn choose(data: &[u8], level: i32, shuffle: bool) -> Option<bool> {
    let sample = &data[..data.len().min(SAMPLE_BYTES)];
    let size = |bytes: &[u8]| zstd::bulk::compress(bytes, level).map_or(usize::MAX, |c| c.len());
    let plain = size(sample);
    let planes = if shuffle {
        size(&shuffle4(sample))
    } else {
        usize::MAX
    };
    let best = plain.min(planes);
    worth_it(sample.len(), best).then_some(planes < plain)
}

/// A chunk's raw bytes, held where its record's payload will hold them
/// (after room for the prefix), so that stored raw they are not copied again.
pub struct RawChunk(Vec<u8>);

impl RawChunk {
    /// Room for `bytes` and for sealing them, so that a sealed chunk is
    /// not moved to grow by its tag and nonce.
    pub fn with_capacity(bytes: usize) -> RawChunk {
        RawChunk(chunk_payload_unhashed(&[], bytes + SEAL_OVERHEAD))
    }

    pub fn extend(&mut self, data: &[u8]) {
        self.0.extend_from_slice(data);
    }

    /// A chunk of a copy of `data`, for callers that hold whole bodies
    /// (tests, fuzzing).
    pub fn copy_of(data: &[u8]) -> RawChunk {
        RawChunk(chunk_payload_unhashed(data, data.len()))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0[CHUNK_PREFIX_BYTES..]
    }

    /// Keeps the first `at` bytes and returns the rest as the next chunk,
    /// with room for `capacity` bytes.
    pub fn split_off(&mut self, at: usize, capacity: usize) -> RawChunk {
        let rest = &self.bytes()[at..];
        let mut next = RawChunk::with_capacity(capacity.max(rest.len()));
        next.extend(rest);
        self.0.truncate(CHUNK_PREFIX_BYTES + at);
        next
    }
}

/// The chunk's bytes compressed, with the flags that say how, where
/// compression pays.
fn compress(data: &[u8], compression: Compression) -> Option<(u8, Vec<u8>)> {
    let level = compression.zstd_level?;
    let shuffled = choose(data, level, compression.shuffle)?;
    let input = if shuffled {
        std::borrow::Cow::Owned(shuffle4(data))
    } else {
        std::borrow::Cow::Borrowed(data)
    };
    let compressed = zstd::bulk::compress(&input, level).ok()?;
    let record_flags = match shuffled {
        true => flags::ZSTD | flags::SHUFFLE4,
        false => flags::ZSTD,
    };
    worth_it(data.len(), compressed.len()).then_some((record_flags, compressed))
}

/// Builds the record for `chunk` (whose content hash is `hash`), compressed
/// where that pays.
pub fn encode_chunk(chunk: RawChunk, hash: [u8; 32], compression: Compression) -> PendingRecord {
    let raw_len = chunk.bytes().len() as u32;
    let (record_flags, payload) = match compress(chunk.bytes(), compression) {
        Some((record_flags, stored)) => {
            (record_flags, encode_chunk_payload(&hash, raw_len, &stored))
        }
        None => {
            let mut payload = chunk.0;
            fill_chunk_prefix(&mut payload, &hash, raw_len);
            (0, payload)
        }
    };
    PendingRecord {
        flags: record_flags,
        payload,
        record: Record::Chunk { hash, raw_len },
        relocation: false,
    }
}

/// What a sealed chunk's tag also covers: its length and how it is stored,
/// so that neither can be changed without the key.
fn sealed_aad(raw_len: u32, record_flags: u8) -> [u8; 5] {
    let mut aad = [0; 5];
    aad[..4].copy_from_slice(&raw_len.to_le_bytes());
    aad[4] = record_flags;
    aad
}

/// Builds the record for `chunk` sealed under `key`: compressed first
/// (ciphertext does not compress), then sealed. Its hash is of the stored
/// bytes, so that nothing of the plaintext is kept in the clear and dedup
/// never matches it.
pub fn encode_sealed_chunk(
    chunk: RawChunk,
    compression: Compression,
    key: &DataKey,
) -> Result<PendingRecord> {
    let raw_len = chunk.bytes().len() as u32;
    let (record_flags, mut payload) = match compress(chunk.bytes(), compression) {
        Some((record_flags, stored)) => (
            record_flags | flags::ENCRYPTED,
            chunk_payload_unhashed(&stored, stored.len() + SEAL_OVERHEAD),
        ),
        None => (flags::ENCRYPTED, chunk.0),
    };
    key.seal(
        &mut payload,
        CHUNK_PREFIX_BYTES,
        &sealed_aad(raw_len, record_flags),
    )
    .map_err(|e| Error::Failed(format!("sealing a chunk: {e}")))?;
    let hash = content_hash(&payload[CHUNK_PREFIX_BYTES..]);
    fill_chunk_prefix(&mut payload, &hash, raw_len);
    Ok(PendingRecord {
        flags: record_flags,
        payload,
        record: Record::Chunk { hash, raw_len },
        relocation: false,
    })
}

/// Turns a verified chunk payload back into its raw bytes, checking that
/// it is the chunk the reference names. A sealed chunk needs its object's
/// data key, and its tag must verify.
pub fn decode_chunk(
    location: Location,
    record_flags: u8,
    payload: Bytes,
    expected_hash: &[u8; 32],
    key: Option<&DataKey>,
) -> Result<Bytes> {
    let corrupt = |reason: &str| Error::Corruption {
        location,
        reason: reason.to_string(),
    };
    let chunk = decode_chunk_payload(&payload).ok_or_else(|| corrupt("chunk payload too short"))?;
    if &chunk.hash != expected_hash {
        return Err(Error::Moved(location));
    }
    let raw_len = chunk.raw_len as usize;
    // The writer never makes a chunk larger than a record; a bigger length
    // is damage, and trusting it would let the device choose our allocation.
    if raw_len > MAX_RECORD_BYTES {
        return Err(corrupt("chunk length beyond the record limit"));
    }
    let opened = match record_flags & flags::ENCRYPTED != 0 {
        true => Some(
            key.ok_or(Error::Sealed)?
                .open(chunk.stored, &sealed_aad(chunk.raw_len, record_flags))
                .map_err(|e| corrupt(&e.to_string()))?,
        ),
        false => None,
    };
    let stored = opened.as_deref().unwrap_or(chunk.stored);
    let raw = if record_flags & flags::ZSTD != 0 {
        let raw =
            zstd::bulk::decompress(stored, raw_len).map_err(|e| corrupt(&format!("zstd: {e}")))?;
        Bytes::from(if record_flags & flags::SHUFFLE4 != 0 {
            unshuffle4(&raw)
        } else {
            raw
        })
    } else if let Some(opened) = opened {
        Bytes::from(opened)
    } else {
        payload.slice_ref(chunk.stored)
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
        let rec = encode_chunk(
            RawChunk::copy_of(&text),
            content_hash(&text),
            Compression::default(),
        );
        assert_eq!(rec.flags & flags::ZSTD, flags::ZSTD);
        assert!(rec.payload.len() < text.len() / 4);
        assert_eq!(
            decode_chunk(
                LOC,
                rec.flags,
                rec.payload.clone().into(),
                &content_hash(&text),
                None
            )
            .unwrap(),
            text
        );

        let random: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let rec = encode_chunk(
            RawChunk::copy_of(&random),
            content_hash(&random),
            Compression::default(),
        );
        if rec.flags & flags::ZSTD == 0 {
            assert_eq!(
                rec.payload.len(),
                random.len() + crate::format::CHUNK_PREFIX_BYTES
            );
        }
        assert_eq!(
            decode_chunk(
                LOC,
                rec.flags,
                rec.payload.clone().into(),
                &content_hash(&random),
                None
            )
            .unwrap(),
            random
        );
        // Another chunk's hash: the reference does not name these bytes.
        assert!(matches!(
            decode_chunk(LOC, rec.flags, rec.payload.clone().into(), &[0; 32], None),
            Err(Error::Moved(_))
        ));

        let off = Compression {
            zstd_level: None,
            shuffle: false,
        };
        assert_eq!(
            encode_chunk(RawChunk::copy_of(&text), [0; 32], off).flags,
            0
        );
    }

    /// Found by fuzzing: a damaged length made zstd allocate up to 4 GiB.
    #[test]
    fn a_chunk_claiming_a_huge_length_is_corruption() {
        let data = vec![7u8; 10_000];
        let hash = content_hash(&data);
        let rec = encode_chunk(RawChunk::copy_of(&data), hash, Compression::default());
        assert_eq!(rec.flags & flags::ZSTD, flags::ZSTD);
        let stored = &rec.payload[crate::format::CHUNK_PREFIX_BYTES..];
        let lying = encode_chunk_payload(&hash, u32::MAX, stored);
        assert!(matches!(
            decode_chunk(LOC, rec.flags, lying.into(), &hash, None),
            Err(Error::Corruption { .. })
        ));
    }

    /// float32 embeddings produced at half precision (as many models emit
    /// them): their low mantissa bytes are zero and their high bytes repeat,
    /// which byte planes expose and zstd alone finds only in part.
    #[test]
    fn byte_planes_round_trip_at_every_length() {
        assert_eq!(
            shuffle4(&[0, 1, 2, 3, 4, 5, 6, 7, 8]),
            [0, 4, 1, 5, 2, 6, 3, 7, 8]
        );
        for len in 0..=13usize {
            let data: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
            assert_eq!(unshuffle4(&shuffle4(&data)), data, "length {len}");
        }
    }

    #[test]
    fn float_arrays_are_shuffled_when_that_wins() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let floats: Vec<u8> = (0..200_000)
            .flat_map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
                let half_precision = (unit * 0.2 - 0.1).to_bits() & !0x1fff;
                half_precision.to_le_bytes()
            })
            .collect();
        let hash = content_hash(&floats);
        let rec = encode_chunk(RawChunk::copy_of(&floats), hash, Compression::default());
        assert_eq!(rec.flags, flags::ZSTD | flags::SHUFFLE4);
        assert_eq!(
            decode_chunk(LOC, rec.flags, rec.payload.clone().into(), &hash, None).unwrap(),
            floats
        );
        let odd = &floats[..1001];
        assert_eq!(unshuffle4(&shuffle4(odd)), odd);
    }

    /// A sealed chunk: compressed before sealing, its plaintext nowhere in
    /// the record, its hash that of the stored bytes, readable only with
    /// its key, and a flipped bit is an error, not other data.
    #[test]
    fn sealed_chunks_hide_their_plaintext_and_open_only_under_their_key() {
        let text = "marker-7f3a text that compresses well "
            .repeat(3000)
            .into_bytes();
        let key = DataKey::generate().unwrap();
        let rec =
            encode_sealed_chunk(RawChunk::copy_of(&text), Compression::default(), &key).unwrap();
        assert_eq!(rec.flags, flags::ZSTD | flags::ENCRYPTED);
        assert!(rec.payload.len() < text.len() / 4);
        assert!(!rec.payload.windows(11).any(|w| w == b"marker-7f3a"));
        let Record::Chunk { hash, raw_len } = rec.record else {
            panic!("a chunk record")
        };
        assert_eq!(raw_len as usize, text.len());
        assert_ne!(hash, content_hash(&text));
        assert_eq!(hash, content_hash(&rec.payload[CHUNK_PREFIX_BYTES..]));
        let payload: Bytes = rec.payload.clone().into();
        let read = |key: Option<&DataKey>, payload: Bytes| {
            decode_chunk(LOC, rec.flags, payload, &hash, key)
        };
        assert_eq!(read(Some(&key), payload.clone()).unwrap(), text);
        assert!(matches!(read(None, payload.clone()), Err(Error::Sealed)));
        let other = DataKey::generate().unwrap();
        assert!(matches!(
            read(Some(&other), payload.clone()),
            Err(Error::Corruption { .. })
        ));
        let mut flipped = rec.payload.clone();
        flipped[CHUNK_PREFIX_BYTES + 10] ^= 0x10;
        assert!(matches!(
            read(Some(&key), flipped.into()),
            Err(Error::Corruption { .. })
        ));

        // Incompressible bytes are sealed where they lie; sealed twice,
        // the same bytes differ.
        let random: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let a =
            encode_sealed_chunk(RawChunk::copy_of(&random), Compression::default(), &key).unwrap();
        let b =
            encode_sealed_chunk(RawChunk::copy_of(&random), Compression::default(), &key).unwrap();
        assert_ne!(a.payload, b.payload);
        let Record::Chunk { hash, .. } = a.record else {
            panic!("a chunk record")
        };
        assert_eq!(
            decode_chunk(LOC, a.flags, a.payload.into(), &hash, Some(&key)).unwrap(),
            random
        );
    }
}
