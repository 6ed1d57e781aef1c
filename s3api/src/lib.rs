//! s3api owns the HTTP face of Strata: axum for our own routes (health,
//! metrics) and the s3s crate for the S3 protocol (routing, SigV4, XML,
//! aws-chunked), with our handlers on top of lsm. It never touches the
//! device; store errors become S3 errors in `errors.rs` only.

mod body;
mod bucket_config;
mod buckets;
mod checksums;
mod convert;
mod errors;
mod http;
mod listings;
mod multipart;
mod object_config;
mod objects;
mod reads;
mod service;

pub use http::{router, AppState, HttpLimits, Metrics};
pub use service::{StaticAuth, Strata};
