//! A bucket's default encryption: Put, Get and DeleteBucketEncryption.
//! Writes without SSE headers into such a bucket are sealed as it says
//! (`encryption.rs`).

use lsm::format::{BucketEncryption, SseMode};
use lsm::BucketSetting;
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3Request, S3Response, S3Result};

use crate::bucket_config::{config, set};
use crate::errors::kms_error;
use crate::service::Strata;

fn not_found() -> S3Error {
    let mut error = s3_error!(
        ServerSideEncryptionConfigurationNotFoundError,
        "The server side encryption configuration was not found"
    );
    error.set_status_code(axum::http::StatusCode::NOT_FOUND);
    error
}

pub(crate) async fn put_encryption(
    s: &Strata,
    req: S3Request<PutBucketEncryptionInput>,
) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
    let input = &req.input;
    let rules = &input.server_side_encryption_configuration.rules;
    let [rule] = rules.as_slice() else {
        return Err(s3_error!(
            MalformedXML,
            "exactly one server-side encryption rule is expected"
        ));
    };
    let Some(default) = &rule.apply_server_side_encryption_by_default else {
        return Err(s3_error!(
            MalformedXML,
            "the rule has no ApplyServerSideEncryptionByDefault"
        ));
    };
    let mode = match default.sse_algorithm.as_str() {
        ServerSideEncryption::AES256 => SseMode::S3,
        ServerSideEncryption::AWS_KMS => SseMode::Kms,
        ServerSideEncryption::AWS_KMS_DSSE => {
            return Err(s3_error!(
                NotImplemented,
                "dual-layer encryption (aws:kms:dsse) is not supported"
            ))
        }
        other => {
            return Err(s3_error!(
                InvalidArgument,
                "The encryption method specified is not supported: {other}"
            ))
        }
    };
    let key_id = default.kms_master_key_id.clone();
    if mode == SseMode::S3 && key_id.is_some() {
        return Err(s3_error!(
            InvalidArgument,
            "KMSMasterKeyID is only valid with aws:kms"
        ));
    }
    // The key must exist now, so that writes do not fail later.
    s.sse()
        .keyring
        .resolve(key_id.as_deref().map(crate::encryption::key_name))
        .map_err(kms_error)?;
    let setting = BucketEncryption {
        mode,
        key_id,
        bucket_key: rule.bucket_key_enabled.unwrap_or(false),
    };
    set(s, &input.bucket, BucketSetting::Encryption(Some(setting))).await?;
    Ok(S3Response::new(PutBucketEncryptionOutput::default()))
}

pub(crate) async fn get_encryption(
    s: &Strata,
    req: S3Request<GetBucketEncryptionInput>,
) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
    let default = config(s, &req.input.bucket)?
        .encryption
        .ok_or_else(not_found)?;
    let algorithm = match default.mode {
        SseMode::Kms => ServerSideEncryption::AWS_KMS,
        SseMode::S3 | SseMode::Customer => ServerSideEncryption::AES256,
    };
    let rule = ServerSideEncryptionRule {
        apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
            sse_algorithm: ServerSideEncryption::from_static(algorithm),
            kms_master_key_id: default.key_id,
        }),
        bucket_key_enabled: Some(default.bucket_key),
    };
    Ok(S3Response::new(GetBucketEncryptionOutput {
        server_side_encryption_configuration: Some(ServerSideEncryptionConfiguration {
            rules: vec![rule],
        }),
    }))
}

pub(crate) async fn delete_encryption(
    s: &Strata,
    req: S3Request<DeleteBucketEncryptionInput>,
) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
    set(s, &req.input.bucket, BucketSetting::Encryption(None)).await?;
    Ok(S3Response::new(DeleteBucketEncryptionOutput::default()))
}
