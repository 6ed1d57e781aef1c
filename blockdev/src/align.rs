//! Page-aligned buffers: O_DIRECT needs the memory, the offset and the length
//! aligned to the logical block, and io_uring needs buffers it can own.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// The logical block: every device offset and length is a multiple of it.
pub const BLOCK_SIZE: usize = 4096;

pub fn align_up(n: u64) -> u64 {
    n.div_ceil(BLOCK_SIZE as u64) * BLOCK_SIZE as u64
}

pub fn align_down(n: u64) -> u64 {
    n / BLOCK_SIZE as u64 * BLOCK_SIZE as u64
}

/// A zero-initialised heap buffer whose start is block-aligned and whose
/// length is a whole number of blocks. Its length may shrink and grow back
/// within the allocation, so one buffer serves writes of varying size.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
    capacity: usize,
}

// SAFETY: AlignedBuf owns its allocation exclusively, like a Vec<u8>.
unsafe impl Send for AlignedBuf {}
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes rounded up to whole blocks (at least one).
    pub fn zeroed(len: usize) -> Self {
        let len = (align_up(len as u64) as usize).max(BLOCK_SIZE);
        let layout = Self::layout(len);
        // SAFETY: layout has a non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            std::alloc::handle_alloc_error(layout)
        };
        AlignedBuf {
            ptr,
            len,
            capacity: len,
        }
    }

    /// Sets the length to `len` rounded up to whole blocks, keeping the
    /// contents; false (and nothing changed) if the allocation is smaller.
    pub fn set_len(&mut self, len: usize) -> bool {
        let len = (align_up(len as u64) as usize).max(BLOCK_SIZE);
        if len > self.capacity {
            return false;
        }
        self.len = len;
        true
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn layout(len: usize) -> Layout {
        match Layout::from_size_align(len, BLOCK_SIZE) {
            Ok(layout) => layout,
            Err(_) => panic!("aligned buffer of {len} bytes exceeds the address space"),
        }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this exact layout.
        unsafe { dealloc(self.ptr.as_ptr(), Self::layout(self.capacity)) }
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: ptr is valid for len initialised bytes.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: ptr is valid for len initialised bytes and we hold &mut self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBuf({} bytes)", self.len)
    }
}

// SAFETY: the pointer is stable for the buffer's lifetime (heap allocation
// that never moves) and every byte is initialised.
unsafe impl tokio_uring::buf::IoBuf for AlignedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len
    }
    fn bytes_total(&self) -> usize {
        self.len
    }
}

// SAFETY: as above; the buffer is always fully initialised (zeroed at birth).
unsafe impl tokio_uring::buf::IoBufMut for AlignedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    unsafe fn set_init(&mut self, _pos: usize) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_block_aligned_and_rounded() {
        let buf = AlignedBuf::zeroed(5000);
        assert_eq!(buf.len(), 8192);
        assert_eq!(buf.as_ptr() as usize % BLOCK_SIZE, 0);
        assert!(buf.iter().all(|&b| b == 0));
        assert_eq!(align_up(1), 4096);
        assert_eq!(align_up(4096), 4096);
        assert_eq!(align_down(8191), 4096);
    }

    #[test]
    fn length_moves_within_the_allocation_and_keeps_contents() {
        let mut buf = AlignedBuf::zeroed(3 * BLOCK_SIZE);
        buf[5000] = 7;
        assert!(buf.set_len(10));
        assert_eq!(buf.len(), BLOCK_SIZE);
        assert!(!buf.set_len(3 * BLOCK_SIZE + 1), "past the allocation");
        assert_eq!(buf.len(), BLOCK_SIZE);
        assert!(buf.set_len(2 * BLOCK_SIZE));
        assert_eq!(
            (buf.len(), buf[5000], buf.capacity()),
            (8192, 7, 3 * BLOCK_SIZE)
        );
    }
}
