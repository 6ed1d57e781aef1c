//! blockdev owns block-aligned I/O on "the device": a raw block device or a
//! regular file that plays one. It knows offsets and bytes, never records;
//! everything above it speaks in 4 KiB-aligned reads and writes.

mod align;
mod device;
mod faulty;
mod file;
mod psync;
mod uring;

pub use align::{align_down, align_up, AlignedBuf, BLOCK_SIZE};
pub use device::{BlockDevice, DeviceError, IoEngine, WriteDone, WRITE_PIECE_BYTES};
pub use faulty::{FaultConfig, FaultyDevice};
pub use file::{open_device, DeviceKind, OpenOptions};
