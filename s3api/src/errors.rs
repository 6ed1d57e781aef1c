//! The one place where store errors become S3 errors, so every handler
//! answers the same way.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use s3s::{s3_error, S3Error, S3ErrorCode};

/// An error whose code s3s does not know, with its status.
pub(crate) fn custom(code: &'static str, status: StatusCode, message: &'static str) -> S3Error {
    let mut e = S3Error::with_message(S3ErrorCode::Custom(code.into()), message);
    e.set_status_code(status);
    e
}

pub(crate) fn storage_full() -> S3Error {
    custom(
        "XMinioStorageFull",
        StatusCode::INSUFFICIENT_STORAGE,
        "Storage backend has reached its minimum free drive threshold. Please delete a few objects to proceed.",
    )
}

/// A read that found no object: 404 NoSuchKey, or, where the key's newest
/// version is a delete marker, 404 with the marker's headers; a version
/// asked for by id that is a delete marker is 405. Every such answer says
/// `x-amz-delete-marker`, true or false, as clients probe it.
pub(crate) fn read_error(e: lsm::Error, by_version: bool) -> S3Error {
    let (mut error, marker) = match e {
        lsm::Error::DeleteMarker { lsn, null_version } if by_version => (
            s3_error!(
                MethodNotAllowed,
                "The specified method is not allowed against this resource."
            ),
            Some(lsm::version_id(lsn, null_version)),
        ),
        lsm::Error::DeleteMarker { lsn, null_version } => (
            s3_error!(NoSuchKey),
            Some(lsm::version_id(lsn, null_version)),
        ),
        lsm::Error::NoSuchKey => (s3_error!(NoSuchKey), None),
        other => return to_s3(other),
    };
    // These headers replace s3s's own, its content type included.
    let mut headers = HeaderMap::new();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    let flag = if marker.is_some() { "true" } else { "false" };
    headers.insert("x-amz-delete-marker", HeaderValue::from_static(flag));
    if let Some(id) = marker.and_then(|id| HeaderValue::from_str(&id).ok()) {
        headers.insert("x-amz-version-id", id);
    }
    error.set_headers(headers);
    error
}

pub(crate) fn md5_failed(e: md5lanes::Error) -> S3Error {
    s3_error!(InternalError, "{e}")
}

pub(crate) fn to_s3(e: lsm::Error) -> S3Error {
    use lsm::Error as E;
    match e {
        E::NoSuchBucket => s3_error!(NoSuchBucket),
        E::BucketExists => s3_error!(BucketAlreadyOwnedByYou),
        E::BucketNotEmpty => s3_error!(BucketNotEmpty),
        E::NoSuchKey => s3_error!(NoSuchKey),
        E::NoSuchVersion => s3_error!(NoSuchVersion, "The specified version does not exist."),
        E::DeleteMarker { .. } => s3_error!(NoSuchKey),
        E::Locked(why) => s3_error!(
            AccessDenied,
            "Access Denied because object protected by object lock: {why}"
        ),
        E::InvalidBucketState(why) => s3_error!(InvalidBucketState, "{why}"),
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
        // Handlers open an object's data key before they read it.
        E::Sealed => s3_error!(InternalError, "encrypted data was read without its key"),
        other @ (E::Device(_) | E::Decode(_)) => {
            tracing::error!(error = %other, "storage error");
            s3_error!(InternalError, "storage error")
        }
    }
}

/// Key management's errors as S3 (and MinIO) answer them.
pub(crate) fn kms_error(e: kms::KmsError) -> S3Error {
    use kms::KmsError as K;
    match e {
        K::NotConfigured => s3_error!(
            NotImplemented,
            "Server side encryption specified but KMS is not configured (set --kms-key-file, STRATA_KMS_KEYS or MINIO_KMS_SECRET_KEY); nothing was stored"
        ),
        K::UnknownKey(name) => {
            let mut error = S3Error::with_message(
                s3s::S3ErrorCode::Custom("KMS.NotFoundException".into()),
                format!("Invalid keyId {name}"),
            );
            error.set_status_code(axum::http::StatusCode::BAD_REQUEST);
            error
        }
        K::BadCustomerKey(why) => s3_error!(InvalidArgument, "{why}"),
        K::WrongCustomerKey => s3_error!(
            AccessDenied,
            "The provided customer key does not match the key the object was encrypted with"
        ),
        other @ (K::UnknownGeneration(_) | K::Damaged | K::Random) => {
            tracing::error!(error = %other, "data key unavailable");
            s3_error!(InternalError, "the object's data key cannot be opened: {other}")
        }
    }
}
