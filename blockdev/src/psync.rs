//! The pread/pwrite engine: blocking system calls on the caller's thread.

use std::os::unix::fs::FileExt;

use crate::device::{check_range, BlockDevice, DeviceError};
use crate::file::DeviceFile;
use crate::AlignedBuf;

pub(crate) struct PsyncDevice {
    dev: DeviceFile,
}

impl PsyncDevice {
    pub fn new(dev: DeviceFile) -> Self {
        PsyncDevice { dev }
    }
}

impl BlockDevice for PsyncDevice {
    fn size_bytes(&self) -> u64 {
        self.dev.size_bytes
    }

    fn read_at(&self, mut buf: AlignedBuf, offset: u64) -> Result<AlignedBuf, DeviceError> {
        check_range(offset, buf.len(), self.dev.size_bytes)?;
        self.dev
            .file
            .read_exact_at(&mut buf, offset)
            .map_err(|e| DeviceError::io(&self.dev.path, e))?;
        Ok(buf)
    }

    fn write_at(&self, buf: AlignedBuf, offset: u64) -> Result<AlignedBuf, DeviceError> {
        check_range(offset, buf.len(), self.dev.size_bytes)?;
        self.dev
            .file
            .write_all_at(&buf, offset)
            .map_err(|e| DeviceError::io(&self.dev.path, e))?;
        Ok(buf)
    }

    fn sync(&self) -> Result<(), DeviceError> {
        self.dev.sync()
    }

    fn discard(&self, offset: u64, len: u64) -> Result<(), DeviceError> {
        check_range(offset, len as usize, self.dev.size_bytes)?;
        self.dev.discard(offset, len)
    }

    fn allocated_bytes(&self) -> Option<u64> {
        self.dev.allocated_bytes()
    }

    fn describe(&self) -> String {
        format!(
            "{} ({:?}, psync, direct={})",
            self.dev.path, self.dev.kind, self.dev.direct
        )
    }
}
