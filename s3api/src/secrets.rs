//! Secret keys at rest (DESIGN.md, "Secrets"): sealed with AES-256-GCM
//! under a key derived from the first account's root secret, which never
//! touches the device. A sealed secret names the key that sealed it, so a
//! rotated root secret is recognised and its secrets re-sealed.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;

/// Layout: [format 1][key id 8][nonce 12][ciphertext + tag 16].
const SEAL_FORMAT: u8 = 1;
const KEY_ID_BYTES: usize = 8;
const NONCE_BYTES: usize = 12;
const HEADER_BYTES: usize = 1 + KEY_ID_BYTES + NONCE_BYTES;

struct SealingKey {
    cipher: Aes256Gcm,
    id: [u8; KEY_ID_BYTES],
}

impl SealingKey {
    fn derive(root_secret: &str) -> SealingKey {
        let hk = Hkdf::<Sha256>::new(Some(b"strata secrets v1"), root_secret.as_bytes());
        let mut key = [0u8; 32];
        let mut id = [0u8; KEY_ID_BYTES];
        // 32 and 8 bytes are far below HKDF-SHA256's limit of 8160.
        let _ = hk.expand(b"seal", &mut key);
        let _ = hk.expand(b"key id", &mut id);
        SealingKey {
            cipher: Aes256Gcm::new(&key.into()),
            id,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error(
        "sealed under a key this server was not given (rotate with STRATA_PREVIOUS_SECRET_KEY)"
    )]
    UnknownKey,
    #[error("sealed secret is damaged")]
    Damaged,
    #[error("the system's random source failed")]
    Random,
}

/// A secret opened, and whether it was sealed under the previous key (it
/// should be sealed again under the current one).
pub struct Opened {
    pub secret: String,
    pub stale: bool,
}

pub struct Sealer {
    current: SealingKey,
    previous: Option<SealingKey>,
}

impl Sealer {
    pub fn new(root_secret: &str, previous_root_secret: Option<&str>) -> Sealer {
        Sealer {
            current: SealingKey::derive(root_secret),
            previous: previous_root_secret.map(SealingKey::derive),
        }
    }

    pub fn seal(&self, secret: &str) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::getrandom(&mut nonce).map_err(|_| SealError::Random)?;
        let sealed = self
            .current
            .cipher
            .encrypt(Nonce::from_slice(&nonce), secret.as_bytes())
            .map_err(|_| SealError::Damaged)?;
        let mut out = Vec::with_capacity(HEADER_BYTES + sealed.len());
        out.push(SEAL_FORMAT);
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Opened, SealError> {
        if sealed.len() < HEADER_BYTES || sealed[0] != SEAL_FORMAT {
            return Err(SealError::Damaged);
        }
        let id = &sealed[1..1 + KEY_ID_BYTES];
        let (key, stale) = if id == self.current.id {
            (&self.current, false)
        } else {
            match &self.previous {
                Some(previous) if id == previous.id => (previous, true),
                _ => return Err(SealError::UnknownKey),
            }
        };
        let nonce = Nonce::from_slice(&sealed[1 + KEY_ID_BYTES..HEADER_BYTES]);
        let plain = key
            .cipher
            .decrypt(nonce, &sealed[HEADER_BYTES..])
            .map_err(|_| SealError::Damaged)?;
        let secret = String::from_utf8(plain).map_err(|_| SealError::Damaged)?;
        Ok(Opened { secret, stale })
    }
}

/// A new access key id: 20 characters of A-Z and 0-9, as AWS's look.
pub fn new_access_key() -> Result<String, SealError> {
    random_string(20, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
}

/// A new secret key: 40 characters from base64's alphabet (without '/'
/// and '+', which some tools mangle in configuration files).
pub fn new_secret_key() -> Result<String, SealError> {
    random_string(
        40,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    )
}

fn random_string(len: usize, alphabet: &[u8]) -> Result<String, SealError> {
    let mut out = String::with_capacity(len);
    let mut bytes = [0u8; 64];
    while out.len() < len {
        getrandom::getrandom(&mut bytes).map_err(|_| SealError::Random)?;
        // Rejection sampling keeps every character equally likely.
        let limit = 256 - 256 % alphabet.len();
        for b in bytes {
            if (b as usize) < limit && out.len() < len {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_root_and_hides_the_secret() {
        let sealer = Sealer::new("root-secret", None);
        let sealed = sealer.seal("wJalrXUtnFEMI/K7MDENG").unwrap();
        assert!(!sealed.windows(8).any(|w| "wJalrXUtnFEMI/K7MDENG"
            .as_bytes()
            .windows(8)
            .any(|s| s == w)));
        let opened = sealer.open(&sealed).unwrap();
        assert_eq!(opened.secret, "wJalrXUtnFEMI/K7MDENG");
        assert!(!opened.stale);
        // Two seals of one secret differ (random nonces).
        assert_ne!(sealed, sealer.seal("wJalrXUtnFEMI/K7MDENG").unwrap());
        let other = Sealer::new("another-root", None);
        assert_eq!(other.open(&sealed).err(), Some(SealError::UnknownKey));
        // After a rotation the old seal opens through the previous root,
        // marked stale so that it is sealed again.
        let rotated = Sealer::new("another-root", Some("root-secret"));
        let opened = rotated.open(&sealed).unwrap();
        assert_eq!(opened.secret, "wJalrXUtnFEMI/K7MDENG");
        assert!(opened.stale);
        let mut damaged = sealed.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert_eq!(sealer.open(&damaged).err(), Some(SealError::Damaged));
        assert_eq!(sealer.open(&sealed[..5]).err(), Some(SealError::Damaged));
    }

    #[test]
    fn new_keys_have_the_expected_shape_and_differ() {
        let a = new_access_key().unwrap();
        assert_eq!(a.len(), 20);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        let s = new_secret_key().unwrap();
        assert_eq!(s.len(), 40);
        assert_ne!(s, new_secret_key().unwrap());
    }
}
