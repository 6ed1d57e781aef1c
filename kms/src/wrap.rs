//! Data keys: made per object or upload, wrapped under a master key
//! (SSE-S3, SSE-KMS) or a customer key (SSE-C), and opened again.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use base64::Engine;
use lsm::cipher::{DataKey, NONCE_BYTES, TAG_BYTES};
use lsm::format::{ObjectEncryption, SseMode};
use md5::{Digest, Md5};

use crate::keyring::{fingerprint_of, Keyring};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KmsError {
    #[error("server-side encryption was asked for, but no KMS master key is configured")]
    NotConfigured,
    #[error("no KMS key named {0:?} is configured")]
    UnknownKey(String),
    #[error("the generation of key {0:?} that wrapped this data key is no longer configured")]
    UnknownGeneration(String),
    #[error("{0}")]
    BadCustomerKey(&'static str),
    #[error("the customer key does not open this object's data key")]
    WrongCustomerKey,
    #[error("a wrapped data key is damaged")]
    Damaged,
    #[error("the system's random source failed")]
    Random,
}

/// A customer's key as SSE-C headers give it, checked against its MD5.
pub struct CustomerKey {
    key: [u8; 32],
    md5: String,
}

impl CustomerKey {
    /// The key's MD5 (base64), as S3 echoes it.
    pub fn md5(&self) -> &str {
        &self.md5
    }

    /// A new data key wrapped under this customer key.
    pub fn new_data_key(&self) -> Result<(DataKey, ObjectEncryption), KmsError> {
        let data_key = DataKey::generate().map_err(|_| KmsError::Random)?;
        let wrapped = wrap(&self.key, &data_key, SseMode::Customer, "", None)?;
        Ok((data_key, wrapped))
    }

    pub fn unwrap(&self, wrapped: &ObjectEncryption) -> Result<DataKey, KmsError> {
        if wrapped.mode != SseMode::Customer {
            return Err(KmsError::BadCustomerKey(
                "the object is not encrypted with a customer key",
            ));
        }
        open(&self.key, wrapped).map_err(|_| KmsError::WrongCustomerKey)
    }
}

/// Checks SSE-C headers: the algorithm must be AES256, the key 32 bytes
/// of base64, and its MD5 the one sent.
pub fn customer_key(
    algorithm: Option<&str>,
    key: Option<&str>,
    md5: Option<&str>,
) -> Result<CustomerKey, KmsError> {
    let (Some(algorithm), Some(key), Some(md5)) = (algorithm, key, md5) else {
        return Err(KmsError::BadCustomerKey(
            "SSE-C needs the algorithm, the key and the key's MD5",
        ));
    };
    if algorithm != "AES256" {
        return Err(KmsError::BadCustomerKey(
            "the SSE-C algorithm must be AES256",
        ));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let key: [u8; 32] =
        b64.decode(key)
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or(KmsError::BadCustomerKey(
                "the SSE-C key must be 256 bits, base64-encoded",
            ))?;
    let computed = b64.encode(Md5::digest(key));
    if computed != md5 {
        return Err(KmsError::BadCustomerKey(
            "the calculated MD5 hash of the key did not match the hash that was provided",
        ));
    }
    Ok(CustomerKey { key, md5: computed })
}

impl Keyring {
    /// A new data key wrapped under the current generation of master key
    /// `name` (the default key when None).
    pub fn new_data_key(
        &self,
        mode: SseMode,
        name: Option<&str>,
        context: Option<String>,
    ) -> Result<(DataKey, ObjectEncryption), KmsError> {
        let name = self.resolve(name)?;
        let data_key = DataKey::generate().map_err(|_| KmsError::Random)?;
        let wrapped = self.wrap_under(&data_key, mode, &name, context)?;
        Ok((data_key, wrapped))
    }

    /// `data_key` wrapped under master key `name` (the default when None).
    pub fn wrap_under(
        &self,
        data_key: &DataKey,
        mode: SseMode,
        name: &str,
        context: Option<String>,
    ) -> Result<ObjectEncryption, KmsError> {
        let master = self
            .current(name)
            .ok_or_else(|| KmsError::UnknownKey(name.to_string()))?;
        wrap(master, data_key, mode, name, context)
    }

    /// The key name a request means: the one given, or the default.
    pub fn resolve(&self, name: Option<&str>) -> Result<String, KmsError> {
        if self.is_empty() {
            return Err(KmsError::NotConfigured);
        }
        let name = match name {
            Some(name) => name,
            None => self.default_name().ok_or(KmsError::NotConfigured)?,
        };
        match self.contains(name) {
            true => Ok(name.to_string()),
            false => Err(KmsError::UnknownKey(name.to_string())),
        }
    }

    /// Opens an SSE-S3 or SSE-KMS object's data key.
    pub fn unwrap(&self, wrapped: &ObjectEncryption) -> Result<DataKey, KmsError> {
        if wrapped.mode == SseMode::Customer {
            return Err(KmsError::BadCustomerKey(
                "the object is encrypted with a customer key",
            ));
        }
        if self.is_empty() {
            return Err(KmsError::NotConfigured);
        }
        let master = self
            .generation(&wrapped.key_name, &wrapped.key_fingerprint)
            .ok_or_else(|| match self.contains(&wrapped.key_name) {
                true => KmsError::UnknownGeneration(wrapped.key_name.clone()),
                false => KmsError::UnknownKey(wrapped.key_name.clone()),
            })?;
        open(master, wrapped)
    }

    /// The data key wrapped again under its master key's current
    /// generation, if an older one wrapped it (rotation); the data is not
    /// touched.
    pub fn rewrap(&self, wrapped: &ObjectEncryption) -> Result<Option<ObjectEncryption>, KmsError> {
        if wrapped.mode == SseMode::Customer {
            return Ok(None);
        }
        let current = self
            .current(&wrapped.key_name)
            .ok_or_else(|| KmsError::UnknownKey(wrapped.key_name.clone()))?;
        if fingerprint_of(current) == wrapped.key_fingerprint {
            return Ok(None);
        }
        let data_key = self.unwrap(wrapped)?;
        let mut again = wrap(
            current,
            &data_key,
            wrapped.mode,
            &wrapped.key_name,
            wrapped.context.clone(),
        )?;
        again.bucket_key = wrapped.bucket_key;
        Ok(Some(again))
    }
}

/// An ETag for an object whose plaintext's MD5 must not be stored in the
/// clear (SSE-KMS, SSE-C: AWS's ETags for them are not MD5s either): the
/// MD5 under a key derived from the data key, still 16 bytes of hex, so
/// multipart ETags combine as usual.
pub fn sealed_etag(data_key: &DataKey, md5_hex: &str) -> String {
    let key = blake3::derive_key("strata sealed etag v1", data_key.bytes());
    hex16(blake3::keyed_hash(&key, md5_hex.as_bytes()).as_bytes())
}

fn hex16(bytes: &[u8]) -> String {
    bytes[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// What a wrapping is bound to: the mode, the key's name and the context.
fn aad(mode: SseMode, name: &str, context: Option<&str>) -> Vec<u8> {
    let mode = match mode {
        SseMode::S3 => b's',
        SseMode::Kms => b'k',
        SseMode::Customer => b'c',
    };
    let mut aad = b"strata data key v1".to_vec();
    aad.push(mode);
    aad.extend_from_slice(name.as_bytes());
    aad.push(0);
    aad.extend_from_slice(context.unwrap_or("").as_bytes());
    aad
}

fn wrap(
    wrapping_key: &[u8; 32],
    data_key: &DataKey,
    mode: SseMode,
    name: &str,
    context: Option<String>,
) -> Result<ObjectEncryption, KmsError> {
    let cipher = Aes256Gcm::new(wrapping_key.into());
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom(&mut nonce)?;
    let mut sealed = data_key.bytes().to_vec();
    let tag = cipher
        .encrypt_in_place_detached(
            Nonce::from_slice(&nonce),
            &aad(mode, name, context.as_deref()),
            &mut sealed,
        )
        .map_err(|_| KmsError::Damaged)?;
    sealed.extend_from_slice(&tag);
    sealed.extend_from_slice(&nonce);
    Ok(ObjectEncryption {
        mode,
        key_name: name.to_string(),
        key_fingerprint: fingerprint_of(wrapping_key),
        wrapped_key: sealed,
        context,
        bucket_key: false,
    })
}

fn open(wrapping_key: &[u8; 32], wrapped: &ObjectEncryption) -> Result<DataKey, KmsError> {
    let sealed = &wrapped.wrapped_key;
    if sealed.len() != 32 + TAG_BYTES + NONCE_BYTES {
        return Err(KmsError::Damaged);
    }
    let (body, rest) = sealed.split_at(32);
    let (tag, nonce) = rest.split_at(TAG_BYTES);
    let mut key = [0u8; 32];
    key.copy_from_slice(body);
    Aes256Gcm::new(wrapping_key.into())
        .decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            &aad(wrapped.mode, &wrapped.key_name, wrapped.context.as_deref()),
            &mut key,
            Tag::from_slice(tag),
        )
        .map_err(|_| KmsError::Damaged)?;
    Ok(DataKey::from_bytes(key))
}

fn getrandom(out: &mut [u8]) -> Result<(), KmsError> {
    ::getrandom::getrandom(out).map_err(|_| KmsError::Random)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(entries: &str) -> Keyring {
        let mut ring = Keyring::default();
        ring.add_entries(entries).unwrap();
        ring
    }

    const A: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const B: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

    #[test]
    fn a_wrapped_data_key_opens_under_its_master_key_only() {
        let keys = ring(&format!("main:{A},other:{B}"));
        let (data_key, wrapped) = keys.new_data_key(SseMode::S3, None, None).unwrap();
        assert_eq!(wrapped.key_name, "main");
        assert!(!wrapped
            .wrapped_key
            .windows(8)
            .any(|w| w == &data_key.bytes()[..8]));
        assert_eq!(keys.unwrap(&wrapped).unwrap().bytes(), data_key.bytes());

        let mut forged = wrapped.clone();
        forged.key_name = "other".into();
        assert!(keys.unwrap(&forged).is_err());
        let mut as_kms = wrapped.clone();
        as_kms.mode = SseMode::Kms;
        assert_eq!(keys.unwrap(&as_kms).unwrap_err(), KmsError::Damaged);
        assert_eq!(
            keys.new_data_key(SseMode::Kms, Some("nope"), None)
                .unwrap_err(),
            KmsError::UnknownKey("nope".into())
        );
        assert_eq!(
            Keyring::default()
                .new_data_key(SseMode::S3, None, None)
                .unwrap_err(),
            KmsError::NotConfigured
        );
    }

    #[test]
    fn rotation_rewraps_the_same_data_key_under_the_new_generation() {
        let old = ring(&format!("main:{A}"));
        let (data_key, wrapped) = old.new_data_key(SseMode::Kms, Some("main"), None).unwrap();
        let rotated = ring(&format!("main:{A}\nmain:{B}"));
        assert_eq!(old.rewrap(&wrapped).unwrap(), None);
        let again = rotated.rewrap(&wrapped).unwrap().expect("rewrapped");
        assert_ne!(again.key_fingerprint, wrapped.key_fingerprint);
        assert_eq!(rotated.unwrap(&again).unwrap().bytes(), data_key.bytes());
        assert_eq!(rotated.rewrap(&again).unwrap(), None);
        // Without the old generation, the old wrapping no longer opens.
        let only_new = ring(&format!("main:{B}"));
        assert_eq!(
            only_new.unwrap(&wrapped).unwrap_err(),
            KmsError::UnknownGeneration("main".into())
        );
    }

    #[test]
    fn customer_keys_are_checked_and_never_stored() {
        // The key and MD5 ceph/s3-tests use.
        let key = "pO3upElrwuEXSoFwCfnZPdSsmt/xWeFa0N9KgDijwVs=";
        let md5 = "DWygnHRtgiJ77HCm+1rvHw==";
        let customer = customer_key(Some("AES256"), Some(key), Some(md5)).unwrap();
        let (data_key, wrapped) = customer.new_data_key().unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(key)
            .unwrap();
        assert!(!wrapped.wrapped_key.windows(8).any(|w| w == &raw[..8]));
        assert!(wrapped.key_name.is_empty());
        assert_eq!(customer.unwrap(&wrapped).unwrap().bytes(), data_key.bytes());
        let other = customer_key(
            Some("AES256"),
            Some("6b+WOZ1T3cqZMxgThRcXAQBrS5mXKdDUphvpxptl9/4="),
            Some("arxBvwY2V4SiOne6yppVPQ=="),
        )
        .unwrap();
        assert_eq!(
            other.unwrap(&wrapped).unwrap_err(),
            KmsError::WrongCustomerKey
        );
        assert!(customer_key(Some("AES256"), Some(key), Some("AAAAAAAAAAAAAAAAAAAAAA==")).is_err());
        assert!(customer_key(Some("AES128"), Some(key), Some(md5)).is_err());
        assert!(customer_key(Some("AES256"), Some(key), None).is_err());
        assert!(customer_key(Some("AES256"), Some("c2hvcnQ="), Some(md5)).is_err());
    }

    #[test]
    fn sealed_etags_are_hex_md5_sized_and_depend_on_the_data_key() {
        let a = DataKey::from_bytes([1; 32]);
        let b = DataKey::from_bytes([2; 32]);
        let md5 = "900150983cd24fb0d6963f7d28e17f72";
        let etag = sealed_etag(&a, md5);
        assert_eq!(etag.len(), 32);
        assert!(etag.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(etag, md5);
        assert_eq!(etag, sealed_etag(&a, md5));
        assert_ne!(etag, sealed_etag(&b, md5));
    }
}
