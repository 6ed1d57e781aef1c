//! The crate's behaviour through its public API, one module per concern.
//! One test binary, so the helpers below are shared without duplication.

mod authorize;
mod aws_examples;
mod conditions;
mod model;
mod parse_errors;
mod statements;

use policy::{Context, Effect, Policy, PolicyKind, Principal, Request};

pub const A: &str = "111122223333";
pub const B: &str = "444455556666";

pub fn identity(json: &str) -> Policy {
    Policy::parse(json, PolicyKind::Identity).unwrap_or_else(|e| panic!("{e}: {json}"))
}

pub fn bucket(json: &str) -> Policy {
    Policy::parse(json, PolicyKind::Resource).unwrap_or_else(|e| panic!("{e}: {json}"))
}

/// A 2012-10-17 policy holding the given statements (JSON objects, comma
/// separated).
pub fn doc(statements: &str) -> String {
    format!(r#"{{"Version": "2012-10-17", "Statement": [{statements}]}}"#)
}

pub fn evaluate(
    policy: &Policy,
    principal: &Principal,
    action: &str,
    resource: &str,
    context: &Context,
) -> Effect {
    policy.evaluate(&Request {
        principal,
        action,
        resource,
        context,
    })
}

pub fn alice() -> Principal {
    Principal::user(A, "alice")
}
