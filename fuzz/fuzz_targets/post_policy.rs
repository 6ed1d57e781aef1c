//! Browser POST upload policies from arbitrary bytes, as the server meets
//! them: the form's `policy` field is base64 of JSON, decoded and parsed
//! (by s3s) before the form's signature is checked, so anyone can send
//! one. Neither parse may panic, and a policy's content-length-range, when
//! it has one, is a range that can hold something.

#![no_main]

use libfuzzer_sys::fuzz_target;
use s3s::post_policy::PostPolicy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for parsed in [PostPolicy::from_json(text), PostPolicy::from_base64(text)] {
        if let Ok(policy) = parsed {
            if let Some((min, max)) = policy.content_length_range() {
                // A range the parser accepted is ordered (s3s refuses an
                // inverted one); a violation here is a parser bug.
                assert!(min <= max, "content-length-range {min}..{max}");
            }
        }
    }
});
