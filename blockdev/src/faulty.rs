//! A fault-injecting in-memory device for tests, driven by a seed so that a
//! failure replays exactly. It models what a disk may do at power loss:
//! writes since the last sync may be lost, kept, or torn at 512-byte sector
//! granularity; it can also flip bits, fail reads with EIO, fail writes with
//! ENOSPC past a limit, and "crash" (every op fails) after N operations.
//! With a write latency, `start_write` reports from another thread after
//! it, so that callers keep several writes in flight as on a real device.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::device::{check_range, BlockDevice, DeviceError, WriteDone};
use crate::AlignedBuf;

const SECTOR: usize = 512;

#[derive(Debug, Clone, Default)]
pub struct FaultConfig {
    pub seed: u64,
    /// Writes, syncs and discards after this many succeed fail with EIO, as
    /// if power was cut; `crash_image` then gives what survived.
    pub crash_after_ops: Option<u64>,
    /// A write that ends past this offset fails with ENOSPC, after landing
    /// its blocks below it, as a file system fills what it can first.
    pub nospace_above: Option<u64>,
    /// `start_write` lands the write at once but reports it this much
    /// later, from another thread.
    pub write_latency: Option<Duration>,
}

pub struct FaultyDevice {
    size_bytes: u64,
    state: Mutex<State>,
    /// Reports writes after `write_latency`; `None` without one.
    reporter: Option<mpsc::Sender<LateReport>>,
    writes_in_flight: Arc<WritesInFlight>,
}

/// A write landed, to be reported when it is due.
struct LateReport {
    due: Instant,
    outcome: Result<AlignedBuf, DeviceError>,
    done: WriteDone,
}

#[derive(Default)]
struct WritesInFlight {
    now: AtomicUsize,
    /// See `fail_next_overlapped_write`.
    fail_next_overlapped: AtomicBool,
}

struct State {
    /// What reads see: every completed write.
    visible: Vec<u8>,
    /// What survives a crash for certain: writes covered by a sync.
    durable: Vec<u8>,
    /// Writes (and discards, as zero writes) since the last sync, in order.
    unsynced: Vec<(u64, Vec<u8>)>,
    ops: u64,
    config: FaultConfig,
    rng: StdRng,
    read_errors: bool,
    sync_nospace: bool,
    /// Bytes in `unsynced`, and the most there ever were at once.
    unsynced_bytes: u64,
    most_unsynced_bytes: u64,
}

impl FaultyDevice {
    pub fn new(size_bytes: u64, config: FaultConfig) -> Self {
        Self::from_image(vec![0; size_bytes as usize], config)
    }

    /// A device whose durable content is `image` (e.g. a previous crash image).
    pub fn from_image(image: Vec<u8>, config: FaultConfig) -> Self {
        let size_bytes = crate::align_down(image.len() as u64);
        let rng = StdRng::seed_from_u64(config.seed);
        let writes_in_flight = Arc::new(WritesInFlight::default());
        let reporter = config.write_latency.map(|_| {
            let (tx, rx) = mpsc::channel::<LateReport>();
            let in_flight = writes_in_flight.clone();
            // Ends when the device (the only sender) is dropped.
            std::thread::spawn(move || {
                for report in rx {
                    std::thread::sleep(report.due.saturating_duration_since(Instant::now()));
                    let others = in_flight.now.fetch_sub(1, Ordering::SeqCst) > 1;
                    let fail = others
                        && report.outcome.is_ok()
                        && in_flight.fail_next_overlapped.swap(false, Ordering::SeqCst);
                    let outcome = if fail {
                        Err(DeviceError::NoSpace)
                    } else {
                        report.outcome
                    };
                    (report.done)(outcome);
                }
            });
            tx
        });
        FaultyDevice {
            size_bytes,
            reporter,
            writes_in_flight,
            state: Mutex::new(State {
                durable: image.clone(),
                visible: image,
                unsynced: Vec::new(),
                ops: 0,
                config,
                rng,
                read_errors: false,
                sync_nospace: false,
                unsynced_bytes: 0,
                most_unsynced_bytes: 0,
            }),
        }
    }

    /// What a restart after power loss would find: the durable image plus,
    /// for each unsynced write in order, all of it, none of it, or a torn
    /// prefix of its sectors, chosen by the seeded generator.
    pub fn crash_image(&self) -> Vec<u8> {
        let mut state = self.state.lock();
        let mut image = state.durable.clone();
        let unsynced = std::mem::take(&mut state.unsynced);
        for (offset, data) in &unsynced {
            let keep = match state.rng.gen_range(0..3) {
                0 => 0,
                1 => data.len(),
                _ => state.rng.gen_range(0..=data.len() / SECTOR) * SECTOR,
            };
            let start = *offset as usize;
            image[start..start + keep].copy_from_slice(&data[..keep]);
        }
        state.unsynced = unsynced;
        image
    }

    /// Everything written so far, as if every write had been synced.
    pub fn visible_image(&self) -> Vec<u8> {
        self.state.lock().visible.clone()
    }

    /// Flips one bit in what reads see and in what survives a crash.
    pub fn flip_bit(&self, offset: u64, bit: u8) {
        let mut state = self.state.lock();
        let mask = 1u8 << (bit % 8);
        state.visible[offset as usize] ^= mask;
        state.durable[offset as usize] ^= mask;
    }

    pub fn set_crash_after_ops(&self, ops: Option<u64>) {
        let mut state = self.state.lock();
        state.config.crash_after_ops = ops.map(|n| state.ops + n);
    }

    pub fn set_nospace_above(&self, limit: Option<u64>) {
        self.state.lock().config.nospace_above = limit;
    }

    pub fn set_read_errors(&self, fail: bool) {
        self.state.lock().read_errors = fail;
    }

    /// Syncs fail with ENOSPC, as a thin or full host may report at
    /// writeback (the unsynced writes stay unsynced).
    pub fn set_sync_nospace(&self, fail: bool) {
        self.state.lock().sync_nospace = fail;
    }

    /// With a write latency: the next write reported while another is
    /// still in flight fails with ENOSPC, though it landed (what a failed
    /// write leaves is unknown): a host out of space for a moment, at the
    /// worst time for a caller that keeps several writes in flight.
    pub fn fail_next_overlapped_write(&self) {
        self.writes_in_flight
            .fail_next_overlapped
            .store(true, Ordering::SeqCst);
    }

    /// The most bytes that were ever written but unsynced at one time: what
    /// a crash could have left half-written.
    pub fn most_unsynced_bytes(&self) -> u64 {
        self.state.lock().most_unsynced_bytes
    }

    pub fn ops(&self) -> u64 {
        self.state.lock().ops
    }

    pub fn crashed(&self) -> bool {
        let state = self.state.lock();
        state.config.crash_after_ops.is_some_and(|n| state.ops >= n)
    }
}

impl State {
    /// Counts a mutating operation; fails it if the device has "lost power".
    fn begin_op(&mut self) -> Result<(), DeviceError> {
        if self.config.crash_after_ops.is_some_and(|n| self.ops >= n) {
            return Err(eio("simulated power loss"));
        }
        self.ops += 1;
        Ok(())
    }

    fn apply(&mut self, offset: u64, data: &[u8]) {
        let start = offset as usize;
        self.visible[start..start + data.len()].copy_from_slice(data);
        self.unsynced.push((offset, data.to_vec()));
        self.unsynced_bytes += data.len() as u64;
        self.most_unsynced_bytes = self.most_unsynced_bytes.max(self.unsynced_bytes);
    }
}

fn eio(what: &str) -> DeviceError {
    DeviceError::Io {
        device: "faulty".into(),
        source: std::io::Error::other(what.to_string()),
    }
}

impl BlockDevice for FaultyDevice {
    fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    fn read_at(&self, mut buf: AlignedBuf, offset: u64) -> Result<AlignedBuf, DeviceError> {
        check_range(offset, buf.len(), self.size_bytes)?;
        let state = self.state.lock();
        if state.read_errors || state.config.crash_after_ops.is_some_and(|n| state.ops >= n) {
            return Err(eio("simulated read error"));
        }
        let start = offset as usize;
        let len = buf.len();
        buf.copy_from_slice(&state.visible[start..start + len]);
        Ok(buf)
    }

    fn write_at(&self, buf: AlignedBuf, offset: u64) -> Result<AlignedBuf, DeviceError> {
        check_range(offset, buf.len(), self.size_bytes)?;
        let mut state = self.state.lock();
        let end = offset + buf.len() as u64;
        if let Some(limit) = state.config.nospace_above.filter(|&limit| end > limit) {
            let fits = crate::align_down(limit.saturating_sub(offset)) as usize;
            if fits > 0 {
                state.begin_op()?;
                state.apply(offset, &buf[..fits]);
            }
            return Err(DeviceError::NoSpace);
        }
        state.begin_op()?;
        state.apply(offset, &buf);
        Ok(buf)
    }

    fn start_write(&self, buf: AlignedBuf, offset: u64, done: WriteDone) {
        let outcome = self.write_at(buf, offset);
        let Some(reporter) = &self.reporter else {
            return done(outcome);
        };
        self.writes_in_flight.now.fetch_add(1, Ordering::SeqCst);
        let due = Instant::now() + self.state.lock().config.write_latency.unwrap_or_default();
        let report = LateReport { due, outcome, done };
        if let Err(mpsc::SendError(report)) = reporter.send(report) {
            self.writes_in_flight.now.fetch_sub(1, Ordering::SeqCst);
            (report.done)(report.outcome);
        }
    }

    fn sync(&self) -> Result<(), DeviceError> {
        let mut state = self.state.lock();
        if state.sync_nospace {
            return Err(DeviceError::NoSpace);
        }
        state.begin_op()?;
        state.unsynced_bytes = 0;
        let unsynced = std::mem::take(&mut state.unsynced);
        for (offset, data) in unsynced {
            let start = offset as usize;
            state.durable[start..start + data.len()].copy_from_slice(&data);
        }
        Ok(())
    }

    fn discard(&self, offset: u64, len: u64) -> Result<(), DeviceError> {
        check_range(offset, len as usize, self.size_bytes)?;
        let mut state = self.state.lock();
        state.begin_op()?;
        state.apply(offset, &vec![0; len as usize]);
        Ok(())
    }

    fn describe(&self) -> String {
        format!("fault-injecting device ({} bytes)", self.size_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(byte: u8) -> AlignedBuf {
        let mut buf = AlignedBuf::zeroed(4096);
        buf.fill(byte);
        buf
    }

    #[test]
    fn synced_writes_survive_a_crash_and_unsynced_ones_may_tear() {
        let dev = FaultyDevice::new(
            64 * 1024,
            FaultConfig {
                seed: 7,
                ..Default::default()
            },
        );
        dev.write_at(block(1), 0).unwrap();
        dev.sync().unwrap();
        dev.write_at(block(2), 4096).unwrap();
        let mut outcomes = std::collections::BTreeSet::new();
        for _ in 0..64 {
            let image = dev.crash_image();
            assert!(image[..4096].iter().all(|&b| b == 1), "synced data lost");
            let kept = image[4096..8192].iter().take_while(|&&b| b == 2).count();
            assert_eq!(kept % SECTOR, 0);
            assert!(image[4096 + kept..8192].iter().all(|&b| b == 0));
            outcomes.insert(kept);
        }
        assert!(outcomes.contains(&0) && outcomes.contains(&4096) && outcomes.len() > 2);
    }

    #[test]
    fn crash_after_ops_fails_everything_after() {
        let dev = FaultyDevice::new(64 * 1024, FaultConfig::default());
        dev.set_crash_after_ops(Some(1));
        dev.write_at(block(1), 0).unwrap();
        assert!(dev.sync().is_err());
        assert!(dev.write_at(block(1), 4096).is_err());
        assert!(dev.read_at(AlignedBuf::zeroed(4096), 0).is_err());
        assert!(dev.crashed());
    }

    #[test]
    fn nospace_limit_fails_writes_but_not_reads() {
        let dev = FaultyDevice::new(64 * 1024, FaultConfig::default());
        dev.set_nospace_above(Some(8192));
        dev.write_at(block(3), 4096).unwrap();
        assert!(matches!(
            dev.write_at(block(3), 8192),
            Err(DeviceError::NoSpace)
        ));
        assert_eq!(dev.read_at(AlignedBuf::zeroed(4096), 4096).unwrap()[0], 3);
        // A write across the limit lands the blocks below it, then fails.
        let mut across = AlignedBuf::zeroed(3 * 4096);
        across.fill(4);
        dev.set_nospace_above(Some(12288));
        assert!(matches!(
            dev.write_at(across, 4096),
            Err(DeviceError::NoSpace)
        ));
        let landed = dev.read_at(AlignedBuf::zeroed(3 * 4096), 4096).unwrap();
        assert!(landed[..8192].iter().all(|&b| b == 4));
        assert!(landed[8192..].iter().all(|&b| b == 0));
    }
}
