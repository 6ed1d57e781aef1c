//! Streaming a body into chunk records: content-defined cuts (FastCDC) with
//! dedup, fixed cuts without, chunks hashed and compressed on encoder
//! threads while the body is still arriving, at most a window of them in
//! flight. A small body is kept whole to go inline into its object record.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::chunk::{content_hash, encode_chunk, encode_sealed_chunk, RawChunk};
use crate::cipher::DataKey;
use crate::error::{Error, Result};
use crate::format::{ChunkRef, Location, Superblock};
use crate::store::{Store, WrittenData, INLINE_MAX_BYTES};
use crate::writer::{PinGuard, Ticket};

impl Store {
    /// A writer for one body; pass its result to `put_object` or `put_part`.
    pub fn object_writer(&self) -> ObjectWriter {
        ObjectWriter {
            store: self.clone(),
            pending: RawChunk::with_capacity(0),
            next_cut_attempt: 0,
            size: 0,
            chunks: Vec::new(),
            in_flight: VecDeque::new(),
            pins: PinGuard::empty(self.catalog()),
            key: None,
        }
    }

    /// Hashes a chunk and submits its record, unless the same content is
    /// stored already (with dedup on). A chunk sealed under a data key is
    /// never deduplicated: see DESIGN.md, "Encryption at rest".
    fn store_chunk(&self, chunk: RawChunk, key: Option<&DataKey>) -> Result<Encoded> {
        if let Some(key) = key {
            let record = encode_sealed_chunk(chunk, self.config().compression, key)?;
            let crate::format::Record::Chunk { hash, .. } = record.record else {
                return Err(Error::Failed("a sealed chunk is a chunk record".into()));
            };
            return Ok(Encoded::Submitted(hash, self.writer().submit(vec![record])));
        }
        let hash = content_hash(chunk.bytes());
        if self.config().dedup {
            let raw_len = chunk.bytes().len() as u32;
            if let Some((stored, pins)) = self.pin_existing(&hash, raw_len) {
                return Ok(Encoded::Stored(stored, pins));
            }
        }
        let record = encode_chunk(chunk, hash, self.config().compression);
        Ok(Encoded::Submitted(hash, self.writer().submit(vec![record])))
    }
}

/// Streams one body into chunk records, cut at content-defined boundaries.
/// A chunk already stored is referenced instead of written. Up to
/// `write_window_chunks` chunks are in flight at once; `write` waits for the
/// oldest when the window is full.
pub struct ObjectWriter {
    store: Store,
    /// Bytes received and not yet cut into chunks, held where the next
    /// chunk's record will hold them: a byte is copied once on its way in,
    /// and once more only if it arrived past a content-defined cut.
    pending: RawChunk,
    /// Pending bytes at which to look for the next cut again.
    next_cut_attempt: usize,
    size: u64,
    chunks: Vec<ChunkRef>,
    in_flight: VecDeque<(usize, Encoding)>,
    pins: PinGuard,
    /// The object's data key, when it is encrypted.
    key: Option<Arc<DataKey>>,
}

/// A chunk found already stored, or handed to the writer.
enum Encoded {
    Stored(ChunkRef, PinGuard),
    Submitted([u8; 32], Ticket),
}

enum Encoding {
    Done(Encoded),
    /// On an encoder thread.
    Offloaded(tokio::task::JoinHandle<Result<Encoded>>),
}

/// FastCDC's bounds around the average chunk size: a quarter of it at
/// least, four times at most, and never more than one log write can hold or
/// half a segment.
fn chunk_bounds(average: usize, geometry: &Superblock) -> (usize, usize, usize) {
    let cap = (crate::writer::MAX_BATCH_BYTES - crate::format::RECORD_HEADER_BYTES - 64)
        .min((geometry.segment_size_bytes / 2) as usize);
    let average = average.clamp(1024, cap / 4);
    (average / 4, average, (average * 4).min(cap))
}

impl ObjectWriter {
    /// The body is to be `len` bytes: its first chunk gets its room now
    /// (as every later one does when it starts), rather than growing to it
    /// by doubling, each growth a copy of all it held and fresh pages.
    pub fn expecting(mut self, len: u64) -> ObjectWriter {
        let bounds = self.bounds();
        let room = self.fixed_cut(bounds).unwrap_or(2 * bounds.1);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.pending.reserve(len.min(room));
        self
    }

    /// Seals every chunk of the body under `key`.
    pub fn sealed_with(mut self, key: Arc<DataKey>) -> ObjectWriter {
        self.key = Some(key);
        self
    }

    pub async fn write(&mut self, mut data: &[u8]) -> Result<()> {
        let bounds = self.bounds();
        self.size += data.len() as u64;
        while !data.is_empty() {
            // A fixed cut is known before its bytes arrive: the chunk is
            // filled exactly to it, and nothing is copied past it. A
            // content-defined cut is looked for after each average chunk's
            // worth, so that what is copied again past a cut stays about
            // one chunk however large the write.
            let pending = self.pending.bytes().len();
            let take = match self.fixed_cut(bounds) {
                Some(cut) if cut > pending => cut - pending,
                _ => bounds.1,
            };
            let take = take.min(data.len());
            let (now, later) = data.split_at(take);
            self.pending.extend(now);
            data = later;
            while let Some(cut) = self.final_cut(bounds) {
                self.flush_chunk(cut, true, bounds).await?;
            }
        }
        Ok(())
    }

    fn bounds(&self) -> (usize, usize, usize) {
        chunk_bounds(self.store.config().chunk_size_bytes, self.store.geometry())
    }

    /// Where the next chunk ends, once that is certain with more of the body
    /// to come. A cut point depends only on the bytes before it, so one
    /// found before the end of what is pending is final, and so is `max`.
    /// Looking again only once the pending bytes have doubled bounds the
    /// rescanning to about one more pass over the data. The first cut waits
    /// until the body can no longer go inline (or reaches `max`, as small
    /// test chunks do): which bodies go inline does not depend on the cuts.
    fn final_cut(&mut self, (min, avg, max): (usize, usize, usize)) -> Option<usize> {
        let len = self.pending.bytes().len();
        if self.chunks.is_empty() && len < max.min(INLINE_MAX_BYTES + 1) {
            return None;
        }
        let fixed = self.fixed_cut((min, avg, max));
        if fixed.is_none() && len < max && len < self.next_cut_attempt.max(min) {
            return None;
        }
        let cut = self.cut_point(self.pending.bytes(), (min, avg, max));
        if cut == len && len < max && Some(cut) != fixed {
            self.next_cut_attempt = 2 * len;
            return None;
        }
        self.next_cut_attempt = min;
        Some(cut)
    }

    /// Without dedup, chunks are cut at a fixed size: nothing is gained by
    /// finding content boundaries. It is a little under the average so that
    /// records, with their headers and block padding, pack whole into a
    /// segment: at exactly 1 MiB only 15 fit in 16 MiB after the segment
    /// header.
    fn fixed_cut(&self, (_, avg, _): (usize, usize, usize)) -> Option<usize> {
        (!self.store.config().dedup).then_some(avg - avg / 64)
    }

    /// Where the next chunk of `pending` ends if the body ended there:
    /// content-defined with dedup (an insertion then shifts only the chunks
    /// around it), fixed without.
    fn cut_point(&self, pending: &[u8], (min, avg, max): (usize, usize, usize)) -> usize {
        if let Some(fixed) = self.fixed_cut((min, avg, max)) {
            return fixed.min(pending.len());
        }
        fastcdc::v2020::FastCDC::new(pending, min as u32, avg as u32, max as u32)
            .next()
            .map_or(max.min(pending.len()), |c| c.length)
    }

    /// Encodes a chunk and puts it in flight. While more of the body is to
    /// come, an encoder thread does it and the upload goes on: one upload
    /// then uses more than one core, where hashing on its own task bounded
    /// it to one. The last chunks are encoded here: nothing is left to
    /// overlap with them but the hand-off's latency.
    async fn flush_chunk(
        &mut self,
        cut: usize,
        more_to_come: bool,
        bounds: (usize, usize, usize),
    ) -> Result<()> {
        // More to come: room for a chunk, so that its bytes are not moved
        // as it fills.
        let next_capacity = match more_to_come {
            true => self.fixed_cut(bounds).unwrap_or(2 * bounds.1),
            false => 0,
        };
        let rest = self.pending.split_off(cut, next_capacity);
        let chunk = std::mem::replace(&mut self.pending, rest);
        let slot = self.chunks.len();
        self.chunks.push(ChunkRef {
            location: Location {
                segment: u32::MAX,
                offset: 0,
                len: 0,
            },
            raw_len: cut as u32,
            hash: [0; 32],
        });
        let encoding = if more_to_come {
            let permit = self
                .store
                .encoders()
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| Error::ShuttingDown)?;
            let store = self.store.clone();
            let key = self.key.clone();
            Encoding::Offloaded(tokio::task::spawn_blocking(move || {
                let _permit = permit;
                store.store_chunk(chunk, key.as_deref())
            }))
        } else {
            Encoding::Done(self.store.store_chunk(chunk, self.key.as_deref())?)
        };
        self.in_flight.push_back((slot, encoding));
        while self.in_flight.len() > self.store.config().write_window_chunks {
            self.settle_oldest().await?;
        }
        Ok(())
    }

    async fn settle_oldest(&mut self) -> Result<()> {
        let Some((slot, encoding)) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let encoded = match encoding {
            Encoding::Done(encoded) => encoded,
            Encoding::Offloaded(handle) => handle
                .await
                .map_err(|e| Error::Failed(format!("chunk encoder: {e}")))??,
        };
        match encoded {
            Encoded::Stored(chunk, pins) => {
                self.chunks[slot] = chunk;
                self.pins.absorb(pins);
            }
            Encoded::Submitted(hash, ticket) => {
                let (location, pinned) = ticket.wait().await?.into_single()?;
                self.pins.absorb(pinned);
                self.chunks[slot].location = location;
                self.chunks[slot].hash = hash;
            }
        }
        Ok(())
    }

    /// Writes what is buffered and waits for every chunk to be durable. A
    /// small body is not written yet: it goes inline into the object record.
    pub async fn finish(mut self) -> Result<WrittenData> {
        let bounds = self.bounds();
        let len = self.pending.bytes().len();
        if self.chunks.is_empty() && len <= INLINE_MAX_BYTES && len > 0 {
            let compression = self.store.config().compression;
            let chunk = match &self.key {
                Some(key) => encode_sealed_chunk(self.pending, compression, key)?,
                None => {
                    let hash = content_hash(self.pending.bytes());
                    encode_chunk(self.pending, hash, compression)
                }
            };
            return Ok(WrittenData {
                size: self.size,
                chunks: Vec::new(),
                inline: Some(chunk),
                pins: self.pins,
            });
        }
        while !self.pending.bytes().is_empty() {
            let cut = self.cut_point(self.pending.bytes(), bounds);
            self.flush_chunk(cut, false, bounds).await?;
        }
        while !self.in_flight.is_empty() {
            self.settle_oldest().await?;
        }
        Ok(WrittenData {
            size: self.size,
            chunks: self.chunks,
            inline: None,
            pins: self.pins,
        })
    }
}
