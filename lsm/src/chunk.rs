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

thread_local! {
    /// zstd's contexts, one per thread: making one costs an allocation of
    /// about 1 MiB (compression) or 100 KiB (decompression), whose pages
    /// are faulted in afresh each time, and chunks are encoded and decoded
    /// on the same few encoder and reader threads.
    static ZSTD: std::cell::RefCell<ZstdContexts> = std::cell::RefCell::new(ZstdContexts::default());
}

thread_local! {
    /// A chunk in byte planes, on its way to `compress_planes`.
    static SHUFFLED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[derive(Default)]
struct ZstdContexts {
    compressor: Option<(i32, zstd::bulk::Compressor<'static>)>,
    plane_compressor: Option<zstd::bulk::Compressor<'static>>,
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
    /// Decompressed planes waiting to be interleaved back.
    planes: Vec<u8>,
}

/// zstd at `level` with this thread's context.
fn zstd_compress(data: &[u8], level: i32) -> Option<Vec<u8>> {
    ZSTD.with_borrow_mut(|z| {
        if z.compressor.as_ref().is_none_or(|(l, _)| *l != level) {
            z.compressor = Some((level, zstd::bulk::Compressor::new(level).ok()?));
        }
        z.compressor.as_mut()?.1.compress(data).ok()
    })
}

/// zstd of one byte plane, with this thread's context. A plane that
/// compresses is a few repeating values (a float's sign and exponent): its
/// Huffman-coded literals do the work, and matches shorter than 7 bytes
/// cost more than they save. Looking only for those in a small table
/// makes an embedding's exponent plane smaller than level 1 does (0.33
/// against 0.38 of it) and codes it about eight times as fast, and it
/// decodes about five times as fast (python-zstandard, one 256 KiB plane).
fn zstd_compress_plane(plane: &[u8]) -> Option<Vec<u8>> {
    use zstd::zstd_safe::{CParameter, Strategy};
    ZSTD.with_borrow_mut(|z| {
        if z.plane_compressor.is_none() {
            let mut c = zstd::bulk::Compressor::new(1).ok()?;
            for parameter in [
                CParameter::Strategy(Strategy::ZSTD_fast),
                CParameter::MinMatch(7),
                CParameter::HashLog(6),
                CParameter::ChainLog(6),
                CParameter::SearchLog(1),
                CParameter::TargetLength(0),
                CParameter::WindowLog(17),
            ] {
                c.set_parameter(parameter).ok()?;
            }
            z.plane_compressor = Some(c);
        }
        z.plane_compressor.as_mut()?.compress(plane).ok()
    })
}

/// `stored` decompressed (it is `raw_len` bytes), and interleaved back
/// from byte planes if `shuffled`, with this thread's context.
fn zstd_decompress(stored: &[u8], raw_len: usize, shuffled: bool) -> std::io::Result<Vec<u8>> {
    ZSTD.with_borrow_mut(|z| {
        if z.decompressor.is_none() {
            z.decompressor = Some(zstd::bulk::Decompressor::new()?);
        }
        let ZstdContexts {
            decompressor: Some(d),
            planes,
            ..
        } = z
        else {
            return Err(std::io::Error::other("no zstd context"));
        };
        if !shuffled {
            return d.decompress(stored, raw_len);
        }
        planes.clear();
        planes.reserve(raw_len);
        d.decompress_to_buffer(stored, planes)?;
        Ok(unshuffle4(planes))
    })
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
    let mut out = Vec::new();
    shuffle4_into(data, &mut out);
    out
}

/// `shuffle4` into `out`, which a caller reuses: a fresh megabyte's pages
/// are faulted in on every chunk.
fn shuffle4_into(data: &[u8], out: &mut Vec<u8>) {
    let words = data.len() / 4;
    out.clear();
    out.resize(data.len(), 0);
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

/// A plane is compressed only if its sample saves at least 1/16 of it;
/// the others are stored in raw zstd blocks, which cost nothing to encode
/// and decode at copy speed (a float's low mantissa bytes are noise).
const PLANE_MIN_SAVING_DIVISOR: usize = 16;

/// The byte ranges of `len` shuffled bytes that are compressed one by one:
/// the four planes, the odd tail with the last.
fn plane_ranges(len: usize) -> [std::ops::Range<usize>; 4] {
    let words = len / 4;
    [
        0..words,
        words..2 * words,
        2 * words..3 * words,
        3 * words..len,
    ]
}

/// zstd of shuffled bytes, a frame per byte plane (concatenated frames
/// decode as one). One frame for all would code a block's literals with one
/// Huffman table: a block holding the end of one plane and the start of
/// the next (as every block of a 64 KiB sample did) codes the repetitive
/// sign and exponent bytes with the noise of the mantissa's, and float32
/// data that a plane at a time compresses to 0.84 came out at 0.92.
/// `compressed[p]` says whether plane p is compressed or stored raw.
fn compress_planes(shuffled: &[u8], compressed: [bool; 4]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(shuffled.len() + 64);
    for (range, compress) in plane_ranges(shuffled.len()).into_iter().zip(compressed) {
        let plane = &shuffled[range];
        match compress {
            true => out.extend_from_slice(&zstd_compress_plane(plane)?),
            false => raw_zstd_frame(plane, &mut out),
        }
    }
    Some(out)
}

/// `data` as a zstd frame of raw (stored) blocks, RFC 8878: what zstd
/// itself writes for incompressible input, without its search for matches.
fn raw_zstd_frame(data: &[u8], out: &mut Vec<u8>) {
    const MAGIC: u32 = 0xFD2F_B528;
    const BLOCK_MAX_BYTES: usize = 128 << 10;
    out.extend_from_slice(&MAGIC.to_le_bytes());
    // Frame header descriptor: a 4-byte content size, single segment (no
    // window descriptor), no checksum, no dictionary.
    out.push(0b1010_0000);
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    let mut blocks = data.chunks(BLOCK_MAX_BYTES).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0]); // one empty last block
    }
    while let Some(block) = blocks.next() {
        // Block header: last-block bit, type 0 (raw), size; 3 bytes LE.
        let header = (block.len() as u32) << 3 | u32::from(blocks.peek().is_none());
        out.extend_from_slice(&header.to_le_bytes()[..3]);
        out.extend_from_slice(block);
    }
}

/// How to store a chunk, judged on a sample: raw (None), zstd, or
/// shuffled with the planes that pay compressed.
enum Plan {
    Zstd,
    Shuffled([bool; 4]),
}

fn choose(data: &[u8], level: i32, shuffle: bool) -> Option<Plan> {
    let sample = &data[..data.len().min(SAMPLE_BYTES)];
    let mut planes = (usize::MAX, [false; 4]);
    if shuffle {
        let shuffled = shuffle4(sample);
        let (mut size, mut compressed) = (0, [false; 4]);
        for (p, range) in plane_ranges(shuffled.len()).into_iter().enumerate() {
            let raw = range.len();
            let packed = zstd_compress_plane(&shuffled[range]).map_or(usize::MAX, |c| c.len());
            compressed[p] = packed.saturating_add(raw / PLANE_MIN_SAVING_DIVISOR) <= raw;
            size += if compressed[p] { packed } else { raw };
        }
        planes = (size, compressed);
    }
    // A plane of noise (a float's low mantissa bytes) is noise to zstd in
    // any order, and the planes that repeat compress better alone: plain
    // zstd cannot win, and trying it cost a fifth of encoding such chunks.
    let noisy_plane = shuffle && planes.1.contains(&false);
    let plain = match noisy_plane {
        true => usize::MAX,
        false => zstd_compress(sample, level).map_or(usize::MAX, |c| c.len()),
    };
    let best = plain.min(planes.0);
    if !worth_it(sample.len(), best) {
        return None;
    }
    Some(match planes.0 < plain {
        true => Plan::Shuffled(planes.1),
        false => Plan::Zstd,
    })
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

    /// Room for `bytes` more (and the seal), so that filling it moves
    /// nothing.
    pub fn reserve(&mut self, bytes: usize) {
        self.0.reserve(bytes + SEAL_OVERHEAD);
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
    let (record_flags, compressed) = match choose(data, level, compression.shuffle)? {
        Plan::Shuffled(planes) => (
            flags::ZSTD | flags::SHUFFLE4,
            SHUFFLED.with_borrow_mut(|shuffled| {
                shuffle4_into(data, shuffled);
                compress_planes(shuffled, planes)
            })?,
        ),
        Plan::Zstd => (flags::ZSTD, zstd_compress(data, level)?),
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
        let shuffled = record_flags & flags::SHUFFLE4 != 0;
        let raw = zstd_decompress(stored, raw_len, shuffled)
            .map_err(|e| corrupt(&format!("zstd: {e}")))?;
        Bytes::from(raw)
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
    fn raw_zstd_frames_decode_as_zstd() {
        for len in [0usize, 1, 3, 4096, 128 << 10, (128 << 10) + 1, 1 << 20] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 251) as u8).collect();
            let mut frame = Vec::new();
            raw_zstd_frame(&data, &mut frame);
            assert_eq!(
                zstd::bulk::decompress(&frame, len).unwrap(),
                data,
                "length {len}"
            );
            // Concatenated with a compressed frame, as a chunk's planes are.
            let mut two = zstd::bulk::compress(&data, 1).unwrap();
            two.extend_from_slice(&frame);
            let both = zstd::bulk::decompress(&two, 2 * len).unwrap();
            assert_eq!(&both[len..], &data[..], "length {len}");
        }
    }

    /// Full-precision embeddings (roughly normal, |x| < 0.1): only the sign
    /// and exponent plane repeats. Judged on a sample whose zstd blocks mixed
    /// all four planes, they were stored raw (0.92 of raw at best, under the
    /// 1/8 rule); each plane in blocks of its own, they take about 0.84.
    #[test]
    fn full_precision_embeddings_are_kept_shuffled() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut unit = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        let floats: Vec<u8> = (0..262_144)
            .flat_map(|_| ((unit() + unit() + unit() - 1.5) * 0.06).to_le_bytes())
            .collect();
        let hash = content_hash(&floats);
        let rec = encode_chunk(RawChunk::copy_of(&floats), hash, Compression::default());
        assert_eq!(rec.flags, flags::ZSTD | flags::SHUFFLE4);
        let stored = rec.payload.len() - CHUNK_PREFIX_BYTES;
        assert!(
            stored * 100 < floats.len() * 86,
            "stored {stored} of {}",
            floats.len()
        );
        assert_eq!(
            decode_chunk(LOC, rec.flags, rec.payload.clone().into(), &hash, None).unwrap(),
            floats
        );
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
