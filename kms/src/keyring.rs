//! The named master keys, parsed from the configuration.

use std::collections::BTreeMap;

use base64::Engine;

pub(crate) type MasterKey = [u8; 32];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyringError {
    #[error("a key entry must be name:base64-of-32-bytes, found {0:?}")]
    Malformed(String),
    #[error("key {0:?} is not 32 bytes of base64")]
    BadKey(String),
    #[error("the default key {0:?} is not configured")]
    NoDefault(String),
}

/// Named master keys, each with its generations (oldest first), and the
/// one SSE-S3 uses.
#[derive(Default, Clone)]
pub struct Keyring {
    keys: BTreeMap<String, Vec<MasterKey>>,
    default: Option<String>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("names", &self.keys.keys().collect::<Vec<_>>())
            .field("default", &self.default)
            .finish()
    }
}

impl Keyring {
    /// Adds the entries of `text`: `name:base64` separated by newlines or
    /// commas; blank lines and lines starting with `#` are skipped. The
    /// first name ever added is the default unless one is set.
    pub fn add_entries(&mut self, text: &str) -> Result<(), KeyringError> {
        for entry in text.split([',', '\n']).map(str::trim) {
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let (name, encoded) = entry
                .split_once(':')
                .filter(|(name, _)| !name.is_empty())
                .ok_or_else(|| KeyringError::Malformed(redact(entry)))?;
            let key: MasterKey = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| KeyringError::BadKey(name.to_string()))?;
            let generations = self.keys.entry(name.to_string()).or_default();
            if generations.last() != Some(&key) {
                generations.push(key);
            }
            self.default.get_or_insert_with(|| name.to_string());
        }
        Ok(())
    }

    /// Makes `name` the key SSE-S3 (and SSE-KMS without a key id) uses.
    pub fn set_default(&mut self, name: &str) -> Result<(), KeyringError> {
        if !self.keys.contains_key(name) {
            return Err(KeyringError::NoDefault(name.to_string()));
        }
        self.default = Some(name.to_string());
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn default_name(&self) -> Option<&str> {
        self.default.as_deref()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.keys.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// The current generation of `name`.
    pub(crate) fn current(&self, name: &str) -> Option<&MasterKey> {
        self.keys.get(name).and_then(|g| g.last())
    }

    /// The generation of `name` whose fingerprint is `fingerprint`.
    pub(crate) fn generation(&self, name: &str, fingerprint: &[u8; 8]) -> Option<&MasterKey> {
        self.keys
            .get(name)?
            .iter()
            .find(|k| &fingerprint_of(k) == fingerprint)
    }
}

/// Names which key wrapped a data key without revealing the key.
pub(crate) fn fingerprint_of(key: &[u8; 32]) -> [u8; 8] {
    let hash = blake3::keyed_hash(key, b"strata master key fingerprint v1");
    let mut out = [0; 8];
    out.copy_from_slice(&hash.as_bytes()[..8]);
    out
}

/// An entry as an error may show it: its name, never its key.
fn redact(entry: &str) -> String {
    match entry.split_once(':') {
        Some((name, _)) => format!("{name}:..."),
        None if entry.len() > 8 => format!("{}...", &entry[..4]),
        None => entry.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes
    const B: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

    #[test]
    fn entries_parse_as_minio_writes_them_and_repeat_as_generations() {
        let mut ring = Keyring::default();
        ring.add_entries(&format!("my-minio-key:{A}")).unwrap();
        assert_eq!(ring.default_name(), Some("my-minio-key"));
        ring.add_entries(&format!("# comment\nother:{B}, my-minio-key:{B}\n"))
            .unwrap();
        assert_eq!(ring.names().collect::<Vec<_>>(), ["my-minio-key", "other"]);
        assert!(ring
            .generation("my-minio-key", &fingerprint_of(&[0; 32]))
            .is_none());
        let current = *ring.current("my-minio-key").unwrap();
        assert_eq!(Some(&current), ring.current("other"));
        let first = ring.keys["my-minio-key"][0];
        assert_eq!(
            ring.generation("my-minio-key", &fingerprint_of(&first)),
            Some(&first)
        );
        ring.set_default("other").unwrap();
        assert_eq!(ring.default_name(), Some("other"));
        assert!(ring.set_default("nope").is_err());
    }

    #[test]
    fn bad_entries_are_refused_without_echoing_the_key() {
        let mut ring = Keyring::default();
        let e = ring.add_entries("nameonly-secretstuff").unwrap_err();
        assert!(!e.to_string().contains("secretstuff"));
        assert_eq!(
            ring.add_entries("k:c2hvcnQ="),
            Err(KeyringError::BadKey("k".into()))
        );
        assert_eq!(
            ring.add_entries(&format!(":{A}")),
            Err(KeyringError::Malformed(":...".into()))
        );
        assert!(ring.is_empty());
    }
}
