//! What a browser form upload (POST object) says that s3s does not read:
//! the `tagging` field, which S3 documents for forms (s3s reads only
//! `x-amz-tagging`), and `${filename}` in the key, which S3 replaces by the
//! name of the uploaded file before it checks the POST policy. The form's
//! fields come before its file, so the front reads only those (bounded,
//! with the body's stall timeout), hands the tagging field on as a request
//! extension, writes the file's name into the key, and passes the body on
//! with the file still streaming.

use std::ops::Range;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

/// The form's `tagging` field (a Tagging document), for PostObject.
#[derive(Debug, Clone)]
pub(crate) struct FormTagging(pub String);

/// Fields beyond this many bytes before the file are not read here; s3s
/// refuses a form whose fields exceed its own limit, which is this.
pub(crate) const MAX_FORM_FIELDS_BYTES: usize = 1 << 20;

/// A form upload with its tagging field noted and `${filename}` replaced;
/// any other request as it came. A form that stalls before its file is
/// answered RequestTimeout.
pub(crate) async fn prepare(req: Request, stall: Duration) -> Result<Request, Response> {
    let Some(boundary) = form_boundary(&req) else {
        return Ok(req);
    };
    let (mut parts, body) = req.into_parts();
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    let scan = loop {
        match scan_fields(&buf, &boundary) {
            Scan::NeedMore if buf.len() <= MAX_FORM_FIELDS_BYTES => {}
            done => break done,
        }
        match tokio::time::timeout(stall, stream.next()).await {
            Err(_) => {
                return Err(crate::http::early_error(
                    StatusCode::BAD_REQUEST,
                    "RequestTimeout",
                    "Your socket connection to the server was not read from or written to within the timeout period.",
                ))
            }
            Ok(Some(Ok(chunk))) => buf.extend_from_slice(&chunk),
            // The body ended or failed: s3s answers what it makes of it.
            Ok(Some(Err(_)) | None) => break Scan::NotAForm,
        }
    };
    if let Scan::Fields { fields, filename } = scan {
        let field = |name: &str| {
            fields
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(name))
                .map(|f| &buf[f.value.clone()])
        };
        if let Some(refusal) = field("policy").and_then(expiration_refusal) {
            return Err(refusal);
        }
        if field("x-amz-tagging").is_none() {
            if let Some(tagging) = field("tagging") {
                let tagging = String::from_utf8_lossy(tagging).into_owned();
                parts.extensions.insert(FormTagging(tagging));
            }
        }
        let key = fields.iter().find(|f| f.name.eq_ignore_ascii_case("key"));
        if let (Some(key), Some(filename)) = (key, filename) {
            let value = &buf[key.value.clone()];
            if let Some(named) = with_filename(value, &filename) {
                let mut spliced = BytesMut::with_capacity(buf.len() + named.len());
                spliced.extend_from_slice(&buf[..key.value.start]);
                spliced.extend_from_slice(named.as_bytes());
                spliced.extend_from_slice(&buf[key.value.end..]);
                adjust_length(&mut parts.headers, buf.len(), spliced.len());
                buf = spliced;
            }
        }
    }
    let head = futures::stream::once(async move { Ok::<Bytes, axum::Error>(buf.freeze()) });
    let body = Body::from_stream(head.chain(stream));
    Ok(Request::from_parts(parts, body))
}

/// S3 takes a POST policy's expiration only as an ISO 8601 date and time
/// (`2030-01-01T12:00:00.000Z`); s3s also takes other spellings. A policy
/// that does not decode is left to s3s.
fn expiration_refusal(policy: &[u8]) -> Option<Response> {
    use base64::Engine;
    let json = base64::engine::general_purpose::STANDARD
        .decode(policy)
        .ok()?;
    let document: serde_json::Value = serde_json::from_slice(&json).ok()?;
    let expiration = document.get("expiration")?;
    // RFC 3339 also allows a space between date and time; ISO 8601 not.
    let valid = expiration.as_str().is_some_and(|text| {
        text.as_bytes().get(10) == Some(&b'T')
            && time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .is_ok()
    });
    (!valid).then(|| {
        crate::http::early_error(
            StatusCode::BAD_REQUEST,
            "InvalidPolicyDocument",
            &format!("Invalid Policy: Invalid 'expiration' value: {expiration}"),
        )
    })
}

/// The boundary of a `multipart/form-data` POST.
fn form_boundary(req: &Request) -> Option<String> {
    if req.method() != Method::POST {
        return None;
    }
    let value = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    let (kind, params) = value.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (name, value) = p.trim().split_once('=')?;
        name.eq_ignore_ascii_case("boundary")
            .then(|| value.trim_matches('"').to_string())
            .filter(|b| !b.is_empty())
    })
}

fn adjust_length(headers: &mut axum::http::HeaderMap, old: usize, new: usize) {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if let Some(declared) = declared {
        let length = (declared + new).saturating_sub(old);
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
}

/// The key with `${filename}` replaced, when it holds the variable.
fn with_filename(key: &[u8], filename: &str) -> Option<String> {
    let key = std::str::from_utf8(key).ok()?;
    key.contains("${filename}")
        .then(|| key.replace("${filename}", filename))
}

#[derive(Debug)]
struct Field {
    name: String,
    value: Range<usize>,
}

#[derive(Debug)]
enum Scan {
    /// The fields before the file part, and the file's name.
    Fields {
        fields: Vec<Field>,
        filename: Option<String>,
    },
    NeedMore,
    /// Not a form this reads (no file part, or malformed): passed on as
    /// it came, for s3s to answer.
    NotAForm,
}

/// The form's fields up to its file part, if `buf` holds them all.
fn scan_fields(buf: &[u8], boundary: &str) -> Scan {
    let delimiter = format!("--{boundary}");
    let Some(first) = find(buf, delimiter.as_bytes()) else {
        return Scan::NeedMore;
    };
    let next_part = format!("\r\n--{boundary}");
    let mut pos = first + delimiter.len();
    let mut fields = Vec::new();
    loop {
        let Some(after) = buf.get(pos..pos + 2) else {
            return Scan::NeedMore;
        };
        if after != b"\r\n" {
            // `--`: the form ended without a file.
            return Scan::NotAForm;
        }
        pos += 2;
        let Some(headers_len) = find(&buf[pos..], b"\r\n\r\n") else {
            return Scan::NeedMore;
        };
        let Some((name, filename)) = disposition(&buf[pos..pos + headers_len]) else {
            return Scan::NotAForm;
        };
        pos += headers_len + 4;
        if name.eq_ignore_ascii_case("file") {
            return Scan::Fields { fields, filename };
        }
        let Some(value_len) = find(&buf[pos..], next_part.as_bytes()) else {
            return Scan::NeedMore;
        };
        fields.push(Field {
            name,
            value: pos..pos + value_len,
        });
        pos += value_len + next_part.len();
    }
}

/// A part's field name and file name, from its Content-Disposition.
fn disposition(headers: &[u8]) -> Option<(String, Option<String>)> {
    let headers = std::str::from_utf8(headers).ok()?;
    let line = headers.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-disposition")
            .then_some(value)
    })?;
    let mut name = None;
    let mut filename = None;
    for param in line.split(';').skip(1) {
        let Some((key, value)) = param.trim().split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"').to_string();
        match key.trim().to_ascii_lowercase().as_str() {
            "name" => name = Some(value),
            "filename" => filename = Some(value),
            _ => {}
        }
    }
    Some((name?, filename))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: &str = "--XyZ\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nup/${filename}\r\n\
        --XyZ\r\nContent-Disposition: form-data; name=\"Tagging\"\r\n\r\n<Tagging/>\r\n\
        --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a b.txt\"\r\nContent-Type: text/plain\r\n\r\nbody\r\n--XyZ--\r\n";

    #[test]
    fn reads_the_fields_before_the_file_and_its_name() {
        let Scan::Fields { fields, filename } = scan_fields(FORM.as_bytes(), "XyZ") else {
            panic!("the whole form is there");
        };
        let values: Vec<(&str, &str)> = fields
            .iter()
            .map(|f| (f.name.as_str(), &FORM[f.value.clone()]))
            .collect();
        assert_eq!(
            values,
            [("key", "up/${filename}"), ("Tagging", "<Tagging/>")]
        );
        assert_eq!(filename.as_deref(), Some("a b.txt"));
    }

    #[test]
    fn asks_for_more_until_the_file_part_begins() {
        let file_part = FORM.find("name=\"file\"").unwrap();
        for cut in 0..file_part {
            assert!(
                matches!(scan_fields(&FORM.as_bytes()[..cut], "XyZ"), Scan::NeedMore),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_form_without_a_file_is_left_to_s3s() {
        let form = "--b\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n--b--\r\n";
        assert!(matches!(scan_fields(form.as_bytes(), "b"), Scan::NotAForm));
    }

    #[test]
    fn an_expiration_that_is_not_iso_8601_is_refused() {
        use base64::Engine;
        let policy = |expiration: &str| {
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{{\"expiration\": \"{expiration}\", \"conditions\": []}}"
            ))
        };
        assert!(expiration_refusal(policy("2030-01-01T12:00:00.000Z").as_bytes()).is_none());
        let refusal = expiration_refusal(policy("2030-01-01 12:00:00.123+00:00").as_bytes());
        assert_eq!(refusal.map(|r| r.status()), Some(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn filename_replaces_the_variable_only() {
        assert_eq!(
            with_filename(b"up/${filename}", "x.txt").as_deref(),
            Some("up/x.txt")
        );
        assert_eq!(with_filename(b"plain", "x.txt"), None);
    }
}
