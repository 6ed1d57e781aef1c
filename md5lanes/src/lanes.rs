//! The hashing thread and the streams that feed it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::{oneshot, Semaphore};

use crate::kernel::{self, BLOCK_BYTES, INITIAL_STATE, LANES};
use crate::Error;

/// Bytes handed to the thread and not yet hashed, across all streams: a
/// bound on the memory the thread can hold when uploads outrun it (pieces
/// stay alive until hashed). 40 ms of uploads at 400 MB/s; at 64 MiB a
/// debug build's slower thread let a 256 MiB PUT's server peak past the
/// 128 MiB that tools/tests/aws_sdk.rs allows.
pub const QUEUED_BYTES_MAX: usize = 16 << 20;

/// At most this much of one lane per lock-step round, so that a stream
/// with much queued does not keep newer ones out of their lanes for long.
const ROUND_BYTES_MAX: usize = 256 << 10;

/// A round waits for every open stream to have this much queued...
const ROUND_BYTES_WANTED: usize = 64 << 10;

/// ...or for this long. The thread hashes faster than uploads arrive, so
/// a round started as soon as one stream had a block would run one lane
/// at the cost of sixteen; waiting lets the other streams' pieces arrive.
const LINGER: Duration = Duration::from_millis(1);
const NAP: Duration = Duration::from_micros(250);

/// The hashing thread; see the crate's documentation.
pub struct Md5Lanes {
    tx: mpsc::Sender<Message>,
    room: Arc<Semaphore>,
    next_id: AtomicU64,
}

enum Message {
    Data(u64, Bytes),
    Finish(u64, oneshot::Sender<[u8; 16]>),
    Abandon(u64),
}

impl Md5Lanes {
    /// Starts the thread; `None` if the CPU lacks the kernel or the thread
    /// cannot be spawned.
    pub fn start() -> Option<Md5Lanes> {
        if !kernel::supported() {
            return None;
        }
        let (tx, rx) = mpsc::channel();
        let room = Arc::new(Semaphore::new(QUEUED_BYTES_MAX));
        let thread_room = room.clone();
        std::thread::Builder::new()
            .name("md5-lanes".into())
            .spawn(move || Lanes::default().run(&rx, &thread_room))
            .ok()?;
        Some(Md5Lanes {
            tx,
            room,
            next_id: AtomicU64::new(0),
        })
    }

    /// A new message to hash.
    pub fn stream(&self) -> Md5Stream<'_> {
        Md5Stream {
            lanes: self,
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            finished: false,
        }
    }
}

/// One message being hashed by the lanes thread.
pub struct Md5Stream<'a> {
    lanes: &'a Md5Lanes,
    id: u64,
    finished: bool,
}

impl Md5Stream<'_> {
    /// Appends `piece` to the message, once the thread has room for it.
    pub async fn update(&mut self, piece: Bytes) -> Result<(), Error> {
        if piece.is_empty() {
            return Ok(());
        }
        self.lanes
            .room
            .acquire_many(room_for(piece.len()) as u32)
            .await
            .map_err(|_| Error::Stopped)?
            .forget();
        self.lanes
            .tx
            .send(Message::Data(self.id, piece))
            .map_err(|_| Error::Stopped)
    }

    /// The message's MD5, once every piece is hashed.
    pub async fn finish(mut self) -> Result<[u8; 16], Error> {
        self.finished = true;
        let (tx, rx) = oneshot::channel();
        self.lanes
            .tx
            .send(Message::Finish(self.id, tx))
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }
}

impl Drop for Md5Stream<'_> {
    fn drop(&mut self) {
        if !self.finished {
            // A failed upload: the thread forgets what it queued.
            let _ = self.lanes.tx.send(Message::Abandon(self.id));
        }
    }
}

/// The room a piece takes in the queue: its length, or all of the room for
/// a piece larger than that (it then waits for the queue to empty).
fn room_for(len: usize) -> usize {
    len.min(QUEUED_BYTES_MAX)
}

/// A message on the thread.
struct Stream {
    state: [u32; 4],
    queued: VecDeque<Bytes>,
    /// The first queued piece's bytes already taken.
    front_used: usize,
    /// Queued bytes not yet taken.
    queued_len: usize,
    /// The room the queued pieces hold.
    room_held: usize,
    /// The message's length so far, for MD5's padding.
    len: u64,
    finish: Option<oneshot::Sender<[u8; 16]>>,
}

impl Stream {
    fn new() -> Stream {
        Stream {
            state: INITIAL_STATE,
            queued: VecDeque::new(),
            front_used: 0,
            queued_len: 0,
            room_held: 0,
            len: 0,
            finish: None,
        }
    }

    /// Whether a round can do something for this stream.
    fn ready(&self) -> bool {
        self.queued_len >= BLOCK_BYTES || self.finish.is_some()
    }

    /// The whole blocks to hash next, at most `max` bytes, taken off the
    /// queue as slices of its pieces (a block that spans two is copied);
    /// `released` counts the room thereby given back. Once the message has
    /// ended and its rest fits, the rest with MD5's padding (0x80, zeros
    /// to 56 bytes mod 64, the length in bits), and true: the last blocks.
    fn take_blocks(&mut self, max: usize, released: &mut usize) -> (Vec<Bytes>, bool) {
        let ending = self.finish.is_some() && self.queued_len <= max;
        let mut budget = match ending {
            true => self.queued_len,
            false => self.queued_len.min(max) / BLOCK_BYTES * BLOCK_BYTES,
        };
        let mut out = Vec::new();
        let mut spanning = BytesMut::new();
        while budget > 0 {
            let Some(front) = self.queued.front() else {
                break;
            };
            let start = self.front_used;
            let left = (front.len() - start).min(budget);
            let n = match spanning.is_empty() && left >= BLOCK_BYTES {
                true => {
                    let n = left / BLOCK_BYTES * BLOCK_BYTES;
                    out.push(front.slice(start..start + n));
                    n
                }
                false => {
                    let n = left.min(BLOCK_BYTES - spanning.len());
                    spanning.extend_from_slice(&front[start..start + n]);
                    if spanning.len() == BLOCK_BYTES {
                        out.push(spanning.split().freeze());
                    }
                    n
                }
            };
            self.advance(n, released);
            budget -= n;
        }
        if ending {
            spanning.extend_from_slice(&[0x80]);
            let padded = (spanning.len() + 8).next_multiple_of(BLOCK_BYTES);
            spanning.resize(padded - 8, 0);
            spanning.extend_from_slice(&self.len.wrapping_mul(8).to_le_bytes());
            out.push(spanning.freeze());
        }
        (out, ending)
    }

    fn advance(&mut self, n: usize, released: &mut usize) {
        self.front_used += n;
        self.queued_len -= n;
        if self
            .queued
            .front()
            .is_some_and(|f| f.len() == self.front_used)
        {
            if let Some(done) = self.queued.pop_front() {
                let room = room_for(done.len());
                self.room_held -= room;
                *released += room;
            }
            self.front_used = 0;
        }
    }

    fn digest(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, word) in self.state.iter().enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&word.to_le_bytes());
        }
        out
    }
}

/// The thread's streams, and whose turn it is.
#[derive(Default)]
struct Lanes {
    streams: HashMap<u64, Stream>,
    /// Ready streams in the order they became ready, so that every stream
    /// gets a lane within a few rounds however many are open.
    turn: VecDeque<u64>,
}

impl Lanes {
    /// Runs rounds of up to sixteen ready streams in lock-step, each once
    /// the lanes are full or have lingered; waits for messages when nothing
    /// is ready. Ends when every sender is gone.
    fn run(mut self, rx: &mpsc::Receiver<Message>, room: &Semaphore) {
        loop {
            if self.turn.is_empty() {
                match rx.recv() {
                    Ok(m) => room.add_permits(self.apply(m)),
                    Err(_) => return,
                }
                self.drain(rx, room);
                continue;
            }
            // Sleeping through the linger in short naps, rather than
            // waking for every piece: at 15,000 pieces a second the
            // wake-ups cost more than the hashing they waited for.
            let since = Instant::now();
            while !self.round_is_due(since) {
                std::thread::sleep(NAP);
                self.drain(rx, room);
            }
            room.add_permits(self.round());
            self.drain(rx, room);
        }
    }

    /// Applies every message already sent.
    fn drain(&mut self, rx: &mpsc::Receiver<Message>, room: &Semaphore) {
        while let Ok(m) = rx.try_recv() {
            room.add_permits(self.apply(m));
        }
    }

    /// A round runs once every open stream (up to sixteen) has a lane's
    /// worth queued, one is ending, or the first ready one has lingered.
    fn round_is_due(&self, ready_since: Instant) -> bool {
        let lingered = ready_since.elapsed() >= LINGER;
        let full = self.turn.len() >= self.streams.len().min(LANES)
            && self.turn.iter().take(LANES).all(|id| {
                self.streams
                    .get(id)
                    .is_some_and(|s| s.queued_len >= ROUND_BYTES_WANTED || s.finish.is_some())
            });
        let ending = self
            .turn
            .iter()
            .take(LANES)
            .any(|id| self.streams.get(id).is_some_and(|s| s.finish.is_some()));
        lingered || full || ending
    }

    /// Applies one message; returns the room it gave back.
    fn apply(&mut self, message: Message) -> usize {
        let (id, released) = match message {
            Message::Data(id, piece) => {
                let stream = self.streams.entry(id).or_insert_with(Stream::new);
                stream.len += piece.len() as u64;
                stream.queued_len += piece.len();
                stream.room_held += room_for(piece.len());
                stream.queued.push_back(piece);
                (id, 0)
            }
            Message::Finish(id, done) => {
                self.streams.entry(id).or_insert_with(Stream::new).finish = Some(done);
                (id, 0)
            }
            Message::Abandon(id) => {
                let released = self.streams.remove(&id).map_or(0, |s| s.room_held);
                self.turn.retain(|t| *t != id);
                (id, released)
            }
        };
        if self.streams.get(&id).is_some_and(Stream::ready) && !self.turn.contains(&id) {
            self.turn.push_back(id);
        }
        released
    }

    /// One lock-step round over the first sixteen ready streams; returns
    /// the room it gave back. A stream whose message has ended gets its
    /// digest and is forgotten.
    fn round(&mut self) -> usize {
        let chosen: Vec<u64> = self.turn.drain(..self.turn.len().min(LANES)).collect();
        let mut released = 0;
        let mut inputs: Vec<Vec<Bytes>> = Vec::with_capacity(LANES);
        let mut states: Vec<[u32; 4]> = Vec::with_capacity(LANES);
        let mut ended: Vec<bool> = Vec::with_capacity(LANES);
        for id in &chosen {
            let (state, (blocks, last)) = match self.streams.get_mut(id) {
                Some(s) => (s.state, s.take_blocks(ROUND_BYTES_MAX, &mut released)),
                None => ([0; 4], (Vec::new(), false)),
            };
            states.push(state);
            inputs.push(blocks);
            ended.push(last);
        }
        let slices: Vec<Vec<&[u8]>> = inputs
            .iter()
            .map(|lane| lane.iter().map(|b| b.as_ref()).collect())
            .collect();
        let slices: Vec<&[&[u8]]> = slices.iter().map(|lane| &lane[..]).collect();
        match &mut states[..] {
            [one] => kernel::compress_one(one, slices[0]),
            _ => kernel::compress(&mut states, &slices),
        }
        for ((id, state), last) in chosen.iter().zip(states).zip(ended) {
            let Some(stream) = self.streams.get_mut(id) else {
                continue;
            };
            stream.state = state;
            if last {
                if let Some(done) = stream.finish.take() {
                    let _ = done.send(stream.digest());
                }
                self.streams.remove(id);
            } else if stream.ready() {
                self.turn.push_back(*id);
            }
        }
        released
    }
}
