//! Format 8: how an object's data is encrypted, and a bucket's default
//! (DESIGN.md, "Encryption at rest"). The data key is stored wrapped only;
//! the master and customer keys never touch the device.

use serde::{Deserialize, Serialize};

/// S3's three server-side encryption modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SseMode {
    /// `AES256`: the default master key.
    S3,
    /// `aws:kms`: a named master key.
    Kms,
    /// The customer's key, sent with every request.
    Customer,
}

/// An encrypted version's (or upload's) data key, wrapped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEncryption {
    pub mode: SseMode,
    /// The master key's name; empty for SSE-C.
    pub key_name: String,
    /// Which generation of the wrapping key wrapped it: a keyed hash of
    /// the key, never the key.
    pub key_fingerprint: [u8; 8],
    /// The data key sealed under the wrapping key: ciphertext, tag, nonce.
    #[serde(with = "serde_bytes")]
    pub wrapped_key: Vec<u8>,
    /// SSE-KMS's encryption context as sent (base64 JSON), bound into the
    /// wrapping.
    pub context: Option<String>,
    /// S3 Bucket Keys asked for: answered back, with no effect here (the
    /// local keyring costs nothing per request).
    pub bucket_key: bool,
}

/// A bucket's default encryption (PutBucketEncryption).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketEncryption {
    /// S3 or Kms.
    pub mode: SseMode,
    /// SSE-KMS's key; None means the default key.
    pub key_id: Option<String>,
    pub bucket_key: bool,
}
