//! The one place where store errors become S3 errors, so every handler
//! answers the same way.

use s3s::{s3_error, S3Error, S3ErrorCode};

pub(crate) fn storage_full() -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("XMinioStorageFull".into()),
        "Storage backend has reached its minimum free drive threshold. Please delete a few objects to proceed.",
    );
    e.set_status_code(axum::http::StatusCode::INSUFFICIENT_STORAGE);
    e
}

pub(crate) fn to_s3(e: lsm::Error) -> S3Error {
    use lsm::Error as E;
    match e {
        E::NoSuchBucket => s3_error!(NoSuchBucket),
        E::BucketExists => s3_error!(BucketAlreadyOwnedByYou),
        E::BucketNotEmpty => s3_error!(BucketNotEmpty),
        E::NoSuchKey => s3_error!(NoSuchKey),
        E::Quarantined(reason) => s3_error!(
            InternalError,
            "the object's data is damaged and was quarantined by fsck --repair: {reason}"
        ),
        E::NoSuchUpload => s3_error!(NoSuchUpload),
        E::PreconditionFailed => s3_error!(PreconditionFailed),
        E::InvalidPart(m) => s3_error!(InvalidPart, "{m}"),
        E::InvalidPartOrder => s3_error!(InvalidPartOrder),
        E::EntityTooSmall(n) => s3_error!(
            EntityTooSmall,
            "part {n} is smaller than the minimum part size"
        ),
        E::TooLarge(m) => s3_error!(EntityTooLarge, "{m}"),
        E::NoSpace => storage_full(),
        E::Corruption { location, reason } => {
            tracing::error!(segment = location.segment, offset = location.offset, %reason, "corrupt data refused");
            s3_error!(
                InternalError,
                "stored data failed its checksum; it is not served"
            )
        }
        E::Failed(m) => {
            tracing::error!(reason = %m, "store is read-only");
            s3_error!(
                ServiceUnavailable,
                "the store is read-only after an I/O error"
            )
        }
        E::ShuttingDown => s3_error!(ServiceUnavailable, "the server is shutting down"),
        // The version being read was replaced and its space reused: a
        // retry reads the current version.
        E::Moved(_) => s3_error!(
            ServiceUnavailable,
            "the object changed while it was read; retry"
        ),
        other @ (E::Device(_) | E::Decode(_)) => {
            tracing::error!(error = %other, "storage error");
            s3_error!(InternalError, "storage error")
        }
    }
}
