//! s3api owns the HTTP face of Strata: axum for our own routes (health,
//! metrics) and the s3s crate for the S3 protocol (routing, SigV4, XML,
//! aws-chunked), with our handlers on top of lsm. It never touches the
//! device; store errors become S3 errors in `errors.rs` only.

mod acl;
mod admin;
mod authz;
mod body;
mod bucket_access;
mod bucket_config;
mod bucket_encryption;
mod buckets;
mod checksums;
mod convert;
mod cors;
mod encryption;
mod errors;
mod http;
mod identity;
mod listings;
mod multipart;
mod object_config;
mod objects;
mod post_form;
mod post_object;
mod reads;
mod request_conditions;
mod secrets;
mod service;

pub use authz::{ClientInfo, SignedInAs};
pub use encryption::SseSettings;
pub use http::{router, AppState, HttpLimits, Metrics, MetricsSnapshot, LATENCY_BUCKETS_S};
pub use identity::Keyring;
pub use service::Strata;
