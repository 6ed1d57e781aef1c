//! A multipart object's own checksum, made from its parts': COMPOSITE (the
//! algorithm over the parts' digests, "-N" appended) or FULL_OBJECT (for
//! CRCs, the CRC of the whole object, combined from the parts' CRCs and
//! lengths without reading a byte again).

use base64::Engine;
use lsm::ChecksumType;
use s3s::crypto::Checksum as _;
use s3s::{s3_error, S3Result};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The algorithm a request names, as S3 spells it.
pub(crate) fn algorithm_name(name: &str) -> S3Result<&'static str> {
    crate::body::ALGORITHMS
        .iter()
        .find(|a| a.eq_ignore_ascii_case(name))
        .copied()
        .ok_or_else(|| s3_error!(InvalidRequest, "unknown checksum algorithm {name}"))
}

/// The checksum type an upload uses: what it asked for, or S3's default
/// for the algorithm (FULL_OBJECT for CRC64NVME, COMPOSITE otherwise).
pub(crate) fn upload_checksum_type(algorithm: &str, asked: Option<&str>) -> S3Result<ChecksumType> {
    let crc = algorithm.starts_with("CRC");
    match asked {
        None if algorithm == "CRC64NVME" => Ok(ChecksumType::FullObject),
        None => Ok(ChecksumType::Composite),
        Some("FULL_OBJECT") if crc => Ok(ChecksumType::FullObject),
        Some("COMPOSITE") if algorithm != "CRC64NVME" => Ok(ChecksumType::Composite),
        Some(other) => Err(s3_error!(
            InvalidRequest,
            "The {algorithm} algorithm does not support the {other} checksum type"
        )),
    }
}

fn crc_algorithm(algorithm: &str) -> Option<(crc_fast::CrcAlgorithm, usize)> {
    match algorithm {
        "CRC32" => Some((crc_fast::CrcAlgorithm::Crc32IsoHdlc, 4)),
        "CRC32C" => Some((crc_fast::CrcAlgorithm::Crc32Iscsi, 4)),
        "CRC64NVME" => Some((crc_fast::CrcAlgorithm::Crc64Nvme, 8)),
        _ => None,
    }
}

fn digest_of(algorithm: &str, bytes: &[u8]) -> Vec<u8> {
    use s3s::crypto::{Crc32, Crc32c, Crc64Nvme, Sha1, Sha256};
    match algorithm {
        "CRC32" => Crc32::checksum(bytes).to_vec(),
        "CRC32C" => Crc32c::checksum(bytes).to_vec(),
        "CRC64NVME" => Crc64Nvme::checksum(bytes).to_vec(),
        "SHA1" => Sha1::checksum(bytes).to_vec(),
        _ => Sha256::checksum(bytes).as_ref().to_vec(),
    }
}

/// The object's checksum from its parts' (base64 value, size), in order.
pub(crate) fn object_checksum(
    algorithm: &str,
    kind: ChecksumType,
    parts: &[(String, u64)],
) -> S3Result<String> {
    let decoded = parts
        .iter()
        .map(|(value, _)| {
            B64.decode(value)
                .map_err(|_| s3_error!(InvalidPart, "a part's checksum is not base64"))
        })
        .collect::<S3Result<Vec<_>>>()?;
    match kind {
        ChecksumType::Composite => {
            let whole = digest_of(algorithm, &decoded.concat());
            Ok(format!("{}-{}", B64.encode(whole), parts.len()))
        }
        ChecksumType::FullObject => {
            let (crc, width) = crc_algorithm(algorithm)
                .ok_or_else(|| s3_error!(InvalidRequest, "FULL_OBJECT checksums are CRCs"))?;
            let value = |bytes: &[u8]| -> S3Result<u64> {
                if bytes.len() != width {
                    return Err(s3_error!(
                        InvalidPart,
                        "a part's checksum has the wrong length"
                    ));
                }
                Ok(bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
            };
            let mut combined: Option<u64> = None;
            for (bytes, (_, size)) in decoded.iter().zip(parts) {
                let part = value(bytes)?;
                combined = Some(match combined {
                    None => part,
                    Some(acc) => crc_fast::checksum_combine(crc, acc, part, *size),
                });
            }
            let combined = combined.unwrap_or(0);
            Ok(B64.encode(&combined.to_be_bytes()[8 - width..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        B64.encode(bytes)
    }

    /// A FULL_OBJECT checksum combined from parts equals the checksum of
    /// the whole body, for every CRC; a COMPOSITE one is the digest of the
    /// digests.
    #[test]
    fn combined_crcs_equal_the_crc_of_the_whole() {
        let parts: Vec<Vec<u8>> = vec![
            vec![b'A'; 5000],
            vec![b'B'; 7],
            (0..=255u8).cycle().take(9000).collect(),
        ];
        let whole = parts.concat();
        for algorithm in ["CRC32", "CRC32C", "CRC64NVME"] {
            let listed: Vec<(String, u64)> = parts
                .iter()
                .map(|p| (b64(&digest_of(algorithm, p)), p.len() as u64))
                .collect();
            let combined = object_checksum(algorithm, ChecksumType::FullObject, &listed).unwrap();
            assert_eq!(combined, b64(&digest_of(algorithm, &whole)), "{algorithm}");
        }
        let listed: Vec<(String, u64)> = parts
            .iter()
            .map(|p| (b64(&digest_of("SHA256", p)), p.len() as u64))
            .collect();
        let digests: Vec<u8> = parts.iter().flat_map(|p| digest_of("SHA256", p)).collect();
        assert_eq!(
            object_checksum("SHA256", ChecksumType::Composite, &listed).unwrap(),
            format!("{}-3", b64(&digest_of("SHA256", &digests)))
        );
        assert!(object_checksum("SHA256", ChecksumType::FullObject, &listed).is_err());
    }

    /// Three 5 MiB parts of 'A', 'B' and 'C': the whole-object CRCs as
    /// zlib and the CRC crates compute them over the concatenation (the
    /// vectors ceph/s3-tests uses).
    #[test]
    fn full_object_crcs_match_known_vectors() {
        let mib5 = 5 << 20;
        let cases = [
            ("CRC32", ["JRTCyQ==", "QoZTGg==", "YAgjqw=="], "WgDhBQ=="),
            ("CRC32C", ["MDaLrw==", "TH4EZg==", "Z7mBIQ=="], "xU+Krw=="),
            (
                "CRC64NVME",
                ["L/E4WYn8v98=", "xW1l19VobYM=", "cK5MnNaWrW4="],
                "i+6LR0y3eFo=",
            ),
        ];
        for (algorithm, parts, whole) in cases {
            let listed: Vec<(String, u64)> = parts.iter().map(|p| (p.to_string(), mib5)).collect();
            assert_eq!(
                object_checksum(algorithm, ChecksumType::FullObject, &listed).unwrap(),
                whole,
                "{algorithm}"
            );
        }
    }

    #[test]
    fn checksum_types_follow_s3_rules() {
        assert_eq!(
            upload_checksum_type("CRC64NVME", None).unwrap(),
            ChecksumType::FullObject
        );
        assert_eq!(
            upload_checksum_type("SHA256", None).unwrap(),
            ChecksumType::Composite
        );
        assert_eq!(
            upload_checksum_type("CRC32", Some("FULL_OBJECT")).unwrap(),
            ChecksumType::FullObject
        );
        assert!(upload_checksum_type("SHA1", Some("FULL_OBJECT")).is_err());
        assert!(upload_checksum_type("CRC64NVME", Some("COMPOSITE")).is_err());
        assert_eq!(algorithm_name("sha256").unwrap(), "SHA256");
        assert!(algorithm_name("md5").is_err());
    }
}
