//! What the recovery_scan and s3_request targets both need.

use std::sync::OnceLock;

/// STRATA_FUZZ_DEBUG=1 makes a target print what it built and ran (for
/// triage: run the binary on one input).
pub fn debug() -> bool {
    static DEBUG: OnceLock<bool> = OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("STRATA_FUZZ_DEBUG").is_some())
}

/// One current-thread runtime per process, created on first use.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}
