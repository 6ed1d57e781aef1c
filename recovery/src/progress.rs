//! What a long pass over the device tells a progress display (fsck's log
//! scan and chunk read-back; the tools draw it).

/// Told when a pass starts and as it reads. The methods do nothing by
/// default, so `&()` means nobody is watching.
pub trait Progress {
    /// A pass named `pass` starts and will read about `total_bytes`.
    fn start(&self, _pass: &str, _total_bytes: u64) {}
    /// `bytes` more of the current pass are done.
    fn advance(&self, _bytes: u64) {}
}

impl Progress for () {}
