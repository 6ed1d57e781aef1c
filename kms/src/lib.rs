//! Keys for encryption at rest (DESIGN.md, "Encryption at rest").
//!
//! Master keys are named and come from the configuration, never from the
//! device: a key file, `STRATA_KMS_KEYS`, or MinIO's
//! `MINIO_KMS_SECRET_KEY`, each entry `name:base64-of-32-bytes`. A name
//! given again later is the key's next generation: the last is current,
//! the earlier ones still unwrap until every data key they wrapped has
//! been wrapped again. Each object's data key is stored wrapped
//! (AES-256-GCM) under a master key (SSE-S3, SSE-KMS) or under the
//! customer's key (SSE-C), which is never stored.

mod keyring;
mod wrap;

pub use keyring::{Keyring, KeyringError};
pub use wrap::{customer_key, sealed_etag, CustomerKey, KmsError};
