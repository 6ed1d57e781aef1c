//! Opening "the device": a raw block device (O_DIRECT, O_EXCL, size from
//! BLKGETSIZE64) or a regular file (O_DIRECT where the filesystem allows it,
//! an exclusive flock, created sparse on first use). Picks the I/O engine.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

use crate::device::{BlockDevice, DeviceError, IoEngine};
use crate::{align_down, psync::PsyncDevice, uring::UringDevice, BLOCK_SIZE};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    File,
    Block,
}

#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// For a regular file that does not exist yet: create it sparse at this size.
    pub create_size_bytes: Option<u64>,
    /// Force an engine; `None` reads STRATA_IO_ENGINE (`uring`/`psync`) and
    /// otherwise probes io_uring.
    pub engine: Option<IoEngine>,
}

/// An open device file with what we learned about it.
pub(crate) struct DeviceFile {
    pub file: File,
    pub path: String,
    pub kind: DeviceKind,
    pub size_bytes: u64,
    pub direct: bool,
}

nix::ioctl_read!(blk_get_size64, 0x12, 114, u64);
nix::ioctl_read_bad!(blk_get_sector_size, 0x1268, libc::c_int);
nix::ioctl_write_ptr_bad!(blk_discard, 0x1277, [u64; 2]);

pub fn open_device(path: &Path, opts: &OpenOptions) -> Result<Arc<dyn BlockDevice>, DeviceError> {
    let dev = open_file(path, opts.create_size_bytes)?;
    let engine = match opts.engine {
        Some(engine) => engine,
        None => match std::env::var("STRATA_IO_ENGINE").as_deref() {
            Ok("psync") => IoEngine::Psync,
            Ok("uring") => IoEngine::Uring,
            _ => {
                if UringDevice::available() {
                    IoEngine::Uring
                } else {
                    tracing::warn!("io_uring is not available here (seccomp?); using pread/pwrite");
                    IoEngine::Psync
                }
            }
        },
    };
    tracing::info!(
        path = %dev.path,
        kind = ?dev.kind,
        size_bytes = dev.size_bytes,
        direct_io = dev.direct,
        engine = %engine,
        "device opened"
    );
    Ok(match engine {
        IoEngine::Psync => Arc::new(PsyncDevice::new(dev)),
        IoEngine::Uring => Arc::new(UringDevice::start(dev)?),
    })
}

fn open_file(path: &Path, create_size: Option<u64>) -> Result<DeviceFile, DeviceError> {
    let shown = path.display().to_string();
    let open_err = |e: std::io::Error| DeviceError::Open {
        path: shown.clone(),
        reason: e.to_string(),
    };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => Some(meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(open_err(e)),
    };
    if meta
        .as_ref()
        .is_some_and(|m| m.file_type().is_block_device())
    {
        return open_block_device(path, shown);
    }
    if meta.is_none() {
        let Some(size) = create_size else {
            return Err(DeviceError::Open {
                path: shown,
                reason: "no such file (and no size given to create it)".into(),
            });
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(open_err)?;
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(open_err)?;
        file.set_len(align_down(size)).map_err(open_err)?;
    }
    let (file, direct) = match open_rw(path, libc::O_DIRECT) {
        Ok(file) => (file, true),
        // tmpfs and some others refuse O_DIRECT; still correct, just cached.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            tracing::warn!(path = %shown, "filesystem refuses O_DIRECT; using buffered I/O");
            (open_rw(path, 0).map_err(open_err)?, false)
        }
        Err(e) => return Err(open_err(e)),
    };
    // SAFETY: flock on a valid fd we own.
    let try_lock = || unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if !retry_while_busy(try_lock) {
        return Err(DeviceError::Busy {
            path: shown,
            reason: "another Strata process holds it (flock)".into(),
        });
    }
    let size_bytes = align_down(file.metadata().map_err(open_err)?.len());
    Ok(DeviceFile {
        file,
        path: shown,
        kind: DeviceKind::File,
        size_bytes,
        direct,
    })
}

/// How long to wait for a holder to let go. A process killed with io_uring
/// requests in flight keeps its files (and their locks) open until the
/// kernel has torn its rings down, a moment after it died; a restart right
/// after a crash must not fail for that.
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn retry_while_busy(mut attempt: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + BUSY_WAIT;
    loop {
        if attempt() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn open_rw(path: &Path, extra_flags: i32) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(extra_flags)
        .open(path)
}

fn open_block_device(path: &Path, shown: String) -> Result<DeviceFile, DeviceError> {
    // O_EXCL on a block device fails with EBUSY when it is mounted or another
    // process opened it exclusively.
    let mut opened = open_rw(path, libc::O_DIRECT | libc::O_EXCL);
    retry_while_busy(|| {
        if matches!(&opened, Err(e) if e.raw_os_error() == Some(libc::EBUSY)) {
            opened = open_rw(path, libc::O_DIRECT | libc::O_EXCL);
        }
        !matches!(&opened, Err(e) if e.raw_os_error() == Some(libc::EBUSY))
    });
    let file = opened.map_err(|e| {
        if e.raw_os_error() == Some(libc::EBUSY) {
            DeviceError::Busy {
                path: shown.clone(),
                reason: "mounted, or opened exclusively by another process".into(),
            }
        } else {
            DeviceError::Open {
                path: shown.clone(),
                reason: e.to_string(),
            }
        }
    })?;
    let mut size: u64 = 0;
    let mut sector: libc::c_int = 0;
    // SAFETY: both ioctls write one integer into the pointer we pass.
    let ioctls = unsafe {
        blk_get_size64(file.as_raw_fd(), &mut size)
            .and_then(|_| blk_get_sector_size(file.as_raw_fd(), &mut sector))
    };
    ioctls.map_err(|e| DeviceError::Open {
        path: shown.clone(),
        reason: format!("block device ioctl failed: {e}"),
    })?;
    if sector as usize > BLOCK_SIZE || !BLOCK_SIZE.is_multiple_of(sector.max(1) as usize) {
        return Err(DeviceError::Open {
            path: shown,
            reason: format!(
                "logical block size {sector} is not supported (need a divisor of {BLOCK_SIZE})"
            ),
        });
    }
    Ok(DeviceFile {
        file,
        path: shown,
        kind: DeviceKind::Block,
        size_bytes: align_down(size),
        direct: true,
    })
}

impl DeviceFile {
    pub fn discard(&self, offset: u64, len: u64) -> Result<(), DeviceError> {
        let fd = self.file.as_raw_fd();
        let result = match self.kind {
            DeviceKind::Block => {
                let range = [offset, len];
                // SAFETY: BLKDISCARD reads two u64 from the pointer.
                unsafe { blk_discard(fd, &range) }.map(|_| ())
            }
            DeviceKind::File => nix::fcntl::fallocate(
                fd,
                nix::fcntl::FallocateFlags::FALLOC_FL_PUNCH_HOLE
                    | nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE,
                offset as i64,
                len as i64,
            ),
        };
        match result {
            Ok(()) => Ok(()),
            // A device without discard support keeps the bytes: harmless.
            Err(nix::errno::Errno::EOPNOTSUPP) => Ok(()),
            Err(e) => Err(DeviceError::io(&self.path, e.into())),
        }
    }

    pub fn allocated_bytes(&self) -> Option<u64> {
        match self.kind {
            DeviceKind::File => self.file.metadata().ok().map(|m| m.blocks() * 512),
            DeviceKind::Block => None,
        }
    }

    pub fn sync(&self) -> Result<(), DeviceError> {
        self.file
            .sync_data()
            .map_err(|e| DeviceError::io(&self.path, e))
    }
}
