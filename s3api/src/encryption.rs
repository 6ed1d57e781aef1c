//! Server-side encryption as S3 requests see it (DESIGN.md, "Encryption at
//! rest"): which data key a write is sealed under (SSE-C, SSE-S3, SSE-KMS,
//! the bucket's default, or the server's encrypt-everything setting), which
//! key a read must present, and the headers S3 answers with.

use std::sync::Arc;

use lsm::cipher::DataKey;
use lsm::format::{BucketEncryption, ObjectEncryption, SseMode};
use lsm::{BucketConfig, ObjectMeta};
use s3s::dto::ServerSideEncryption;
use s3s::{s3_error, S3Result};

use crate::authz::ClientInfo;
use crate::errors::kms_error;

/// The server's encryption settings.
#[derive(Debug, Default)]
pub struct SseSettings {
    pub keyring: kms::Keyring,
    /// Seal every write that asks for nothing (and lands in a bucket
    /// without a default) with SSE-S3, as AWS does since 2023.
    pub encrypt_new_objects: bool,
    /// Take SSE-C keys over plain HTTP from clients that are not on a
    /// loopback address (AWS never does).
    pub sse_c_over_http: bool,
}

/// An object's (or upload's) data key, open, and what S3 answers about it.
pub(crate) struct Sealed {
    pub key: Arc<DataKey>,
    pub wrapped: ObjectEncryption,
    /// SSE-C: the customer key's MD5, echoed back.
    pub customer_md5: Option<String>,
}

impl Sealed {
    /// The ETag of a body with this MD5: the MD5 for SSE-S3 (as S3
    /// clients compare), a keyed digest of it for SSE-KMS and SSE-C, whose
    /// plaintext's MD5 is not stored in the clear.
    pub fn etag(&self, md5_hex: String) -> String {
        match self.wrapped.mode {
            SseMode::S3 => md5_hex,
            SseMode::Kms | SseMode::Customer => kms::sealed_etag(&self.key, &md5_hex),
        }
    }

    /// The ETag of a body written under `sealed` (None: in the clear).
    pub fn etag_of(sealed: Option<&Sealed>, md5_hex: String) -> String {
        match sealed {
            Some(sealed) => sealed.etag(md5_hex),
            None => md5_hex,
        }
    }

    pub fn answer(&self) -> SseAnswer {
        SseAnswer::of(Some(&self.wrapped), self.customer_md5.as_deref())
    }
}

/// The SSE-C headers of a request (or of a copy's source).
#[derive(Default)]
pub(crate) struct CustomerHeaders<'a> {
    pub algorithm: Option<&'a str>,
    pub key: Option<&'a str>,
    pub md5: Option<&'a str>,
}

impl CustomerHeaders<'_> {
    fn present(&self) -> bool {
        self.algorithm.is_some() || self.key.is_some() || self.md5.is_some()
    }
}

/// The SSE headers of a write.
#[derive(Default)]
pub(crate) struct WriteHeaders<'a> {
    pub sse: Option<&'a str>,
    pub kms_key_id: Option<&'a str>,
    pub context: Option<&'a str>,
    pub bucket_key: Option<bool>,
    pub customer: CustomerHeaders<'a>,
}

/// The SSE-C headers of an S3 input.
macro_rules! customer_headers {
    ($input:expr) => {
        $crate::encryption::CustomerHeaders {
            algorithm: $input.sse_customer_algorithm.as_deref(),
            key: $input.sse_customer_key.as_deref(),
            md5: $input.sse_customer_key_md5.as_deref(),
        }
    };
}
pub(crate) use customer_headers;

/// The SSE-C headers of a copy's source.
macro_rules! copy_source_customer_headers {
    ($input:expr) => {
        $crate::encryption::CustomerHeaders {
            algorithm: $input.copy_source_sse_customer_algorithm.as_deref(),
            key: $input.copy_source_sse_customer_key.as_deref(),
            md5: $input.copy_source_sse_customer_key_md5.as_deref(),
        }
    };
}
pub(crate) use copy_source_customer_headers;

/// The SSE headers of a write's S3 input.
macro_rules! write_headers {
    ($input:expr) => {
        $crate::encryption::WriteHeaders {
            sse: $input.server_side_encryption.as_ref().map(|s| s.as_str()),
            kms_key_id: $input.ssekms_key_id.as_deref(),
            context: $input.ssekms_encryption_context.as_deref(),
            bucket_key: $input.bucket_key_enabled,
            customer: $crate::encryption::customer_headers!($input),
        }
    };
}
pub(crate) use write_headers;

/// The SSE headers S3 answers with.
#[derive(Default)]
pub(crate) struct SseAnswer {
    pub sse: Option<ServerSideEncryption>,
    pub kms_key_id: Option<String>,
    pub bucket_key: Option<bool>,
    pub customer_algorithm: Option<String>,
    pub customer_md5: Option<String>,
}

impl SseAnswer {
    pub fn of(wrapped: Option<&ObjectEncryption>, customer_md5: Option<&str>) -> SseAnswer {
        let Some(wrapped) = wrapped else {
            return SseAnswer::default();
        };
        match wrapped.mode {
            SseMode::S3 => SseAnswer {
                sse: Some(ServerSideEncryption::from_static(
                    ServerSideEncryption::AES256,
                )),
                bucket_key: wrapped.bucket_key.then_some(true),
                ..Default::default()
            },
            SseMode::Kms => SseAnswer {
                sse: Some(ServerSideEncryption::from_static(
                    ServerSideEncryption::AWS_KMS,
                )),
                kms_key_id: Some(wrapped.key_name.clone()),
                bucket_key: wrapped.bucket_key.then_some(true),
                ..Default::default()
            },
            SseMode::Customer => SseAnswer {
                customer_algorithm: Some("AES256".into()),
                customer_md5: customer_md5.map(str::to_string),
                ..Default::default()
            },
        }
    }
}

/// Sets an S3 output's server-side encryption fields (algorithm, KMS key
/// id, bucket key) from an `SseAnswer`; returns the SSE-C ones.
macro_rules! fill_sse {
    ($output:expr, $answer:expr) => {{
        let $crate::encryption::SseAnswer {
            sse,
            kms_key_id,
            bucket_key,
            customer_algorithm,
            customer_md5,
        } = $answer;
        $output.server_side_encryption = sse;
        $output.ssekms_key_id = kms_key_id;
        $output.bucket_key_enabled = bucket_key;
        (customer_algorithm, customer_md5)
    }};
}
pub(crate) use fill_sse;

/// `fill_sse`, and the SSE-C fields for outputs that have them.
macro_rules! fill_sse_all {
    ($output:expr, $answer:expr) => {{
        let (algorithm, md5) = $crate::encryption::fill_sse!($output, $answer);
        $output.sse_customer_algorithm = algorithm;
        $output.sse_customer_key_md5 = md5;
    }};
}
pub(crate) use fill_sse_all;

/// A KMS key id as clients send it: a name, or an ARN or alias naming it.
pub(crate) fn key_name(id: &str) -> &str {
    id.rsplit_once(":key/")
        .or_else(|| id.rsplit_once("alias/"))
        .map_or(id, |(_, name)| name)
}

impl SseSettings {
    /// The data key a new write is sealed under, made and wrapped here;
    /// None for a plaintext write. What the request asks for wins, then
    /// the bucket's default, then the server's setting.
    pub(crate) fn seal_for_write(
        &self,
        client: Option<&ClientInfo>,
        headers: &WriteHeaders<'_>,
        bucket: &BucketConfig,
    ) -> S3Result<Option<Sealed>> {
        if headers.customer.present() {
            if headers.sse.is_some() || headers.kms_key_id.is_some() {
                return Err(s3_error!(
                    InvalidArgument,
                    "Server Side Encryption with Customer provided key is incompatible with the encryption method specified"
                ));
            }
            let customer = self.customer_key(client, &headers.customer)?;
            let (key, wrapped) = customer.new_data_key().map_err(kms_error)?;
            return Ok(Some(Sealed {
                key: Arc::new(key),
                wrapped,
                customer_md5: Some(customer.md5().to_string()),
            }));
        }
        let asked = match headers.sse {
            Some(ServerSideEncryption::AES256) => {
                if headers.kms_key_id.is_some() {
                    return Err(s3_error!(
                        InvalidArgument,
                        "x-amz-server-side-encryption-aws-kms-key-id is only valid with aws:kms"
                    ));
                }
                Some(BucketEncryption {
                    mode: SseMode::S3,
                    key_id: None,
                    bucket_key: headers.bucket_key.unwrap_or(false),
                })
            }
            Some(ServerSideEncryption::AWS_KMS) => Some(BucketEncryption {
                mode: SseMode::Kms,
                key_id: headers.kms_key_id.map(|id| key_name(id).to_string()),
                bucket_key: headers.bucket_key.unwrap_or(false),
            }),
            Some(ServerSideEncryption::AWS_KMS_DSSE) => {
                return Err(s3_error!(
                    NotImplemented,
                    "dual-layer encryption (aws:kms:dsse) is not supported; nothing was stored"
                ))
            }
            Some(other) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "The encryption method specified is not supported: {other}"
                ))
            }
            None if headers.kms_key_id.is_some() => {
                return Err(s3_error!(
                    InvalidArgument,
                    "x-amz-server-side-encryption-aws-kms-key-id is only valid with aws:kms"
                ))
            }
            None => None,
        };
        let chosen = asked.or_else(|| bucket.encryption.clone()).or_else(|| {
            self.encrypt_new_objects.then_some(BucketEncryption {
                mode: SseMode::S3,
                key_id: None,
                bucket_key: false,
            })
        });
        let Some(chosen) = chosen else {
            return Ok(None);
        };
        let context = match chosen.mode {
            SseMode::Kms => headers.context.map(str::to_string),
            _ => None,
        };
        let (key, mut wrapped) = self
            .keyring
            .new_data_key(chosen.mode, chosen.key_id.as_deref().map(key_name), context)
            .map_err(kms_error)?;
        wrapped.bucket_key = chosen.bucket_key;
        Ok(Some(Sealed {
            key: Arc::new(key),
            wrapped,
            customer_md5: None,
        }))
    }

    /// The data key a read of this version (or a part of this upload)
    /// needs, checked: an SSE-C object needs its customer key, and SSE-C
    /// headers on any other object are refused. None for plaintext.
    pub(crate) fn open_for_read(
        &self,
        client: Option<&ClientInfo>,
        meta: &ObjectMeta,
        headers: &CustomerHeaders<'_>,
    ) -> S3Result<Option<Sealed>> {
        let Some(wrapped) = meta.encryption() else {
            if headers.present() {
                return Err(s3_error!(
                    InvalidRequest,
                    "The encryption parameters are not applicable to this object."
                ));
            }
            return Ok(None);
        };
        match wrapped.mode {
            SseMode::Customer => {
                if !headers.present() {
                    return Err(s3_error!(
                        InvalidRequest,
                        "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object."
                    ));
                }
                let customer = self.customer_key(client, headers)?;
                let key = customer.unwrap(wrapped).map_err(kms_error)?;
                Ok(Some(Sealed {
                    key: Arc::new(key),
                    wrapped: wrapped.clone(),
                    customer_md5: Some(customer.md5().to_string()),
                }))
            }
            SseMode::S3 | SseMode::Kms => {
                if headers.present() {
                    return Err(s3_error!(
                        InvalidRequest,
                        "The encryption parameters are not applicable to this object."
                    ));
                }
                let key = self.keyring.unwrap(wrapped).map_err(kms_error)?;
                Ok(Some(Sealed {
                    key: Arc::new(key),
                    wrapped: wrapped.clone(),
                    customer_md5: None,
                }))
            }
        }
    }

    /// A copy's destination that may share the source's chunks: the same
    /// data key wrapped again for the destination. Only between SSE-S3 and
    /// SSE-KMS objects (or plaintext to plaintext); anything else is
    /// rewritten.
    pub(crate) fn share_for_copy(
        &self,
        source: Option<&Sealed>,
        destination: Option<&Sealed>,
    ) -> S3Result<Option<Option<ObjectEncryption>>> {
        match (source, destination) {
            (None, None) => Ok(Some(None)),
            (Some(from), Some(to))
                if from.wrapped.mode != SseMode::Customer
                    && to.wrapped.mode != SseMode::Customer =>
            {
                let mut wrapped = self
                    .keyring
                    .wrap_under(
                        &from.key,
                        to.wrapped.mode,
                        &to.wrapped.key_name,
                        to.wrapped.context.clone(),
                    )
                    .map_err(kms_error)?;
                wrapped.bucket_key = to.wrapped.bucket_key;
                Ok(Some(Some(wrapped)))
            }
            _ => Ok(None),
        }
    }

    fn customer_key(
        &self,
        client: Option<&ClientInfo>,
        headers: &CustomerHeaders<'_>,
    ) -> S3Result<kms::CustomerKey> {
        let secure = client.is_some_and(|c| c.tls || c.addr.is_loopback());
        if !secure && !self.sse_c_over_http {
            return Err(s3_error!(
                InvalidRequest,
                "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection."
            ));
        }
        kms::customer_key(headers.algorithm, headers.key, headers.md5).map_err(kms_error)
    }
}

/// A read names only a customer key: SSE-S3 and SSE-KMS objects open
/// without one, and AWS refuses their write headers on GET and HEAD.
pub(crate) fn refuse_server_side_headers_on_read(headers: &axum::http::HeaderMap) -> S3Result<()> {
    for name in [
        "x-amz-server-side-encryption",
        "x-amz-server-side-encryption-aws-kms-key-id",
    ] {
        if headers.contains_key(name) {
            return Err(s3_error!(
                InvalidArgument,
                "The {name} header is not supported for this operation."
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kms_key_ids_name_keys_as_arns_and_aliases_do() {
        assert_eq!(key_name("testkey-1"), "testkey-1");
        assert_eq!(
            key_name("arn:aws:kms:us-east-1:123456789012:key/testkey-1"),
            "testkey-1"
        );
        assert_eq!(key_name("alias/testkey-1"), "testkey-1");
    }
}
