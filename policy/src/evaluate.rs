//! One policy against one request: which statements apply, and what they
//! say together (an explicit Deny wins over any Allow).

use crate::matching::Pattern;
use crate::parse::{Policy, PrincipalEntry, Statement};
use crate::request::{Principal, Request};

/// What one policy says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// A statement that applies allows it, and none denies it.
    Allow,
    /// A statement that applies denies it.
    ExplicitDeny,
    /// No statement applies.
    NotApplicable,
}

impl Effect {
    /// Several policies taken together: any Deny, else any Allow.
    pub fn combine(self, other: Effect) -> Effect {
        match (self, other) {
            (Effect::ExplicitDeny, _) | (_, Effect::ExplicitDeny) => Effect::ExplicitDeny,
            (Effect::Allow, _) | (_, Effect::Allow) => Effect::Allow,
            _ => Effect::NotApplicable,
        }
    }
}

impl Policy {
    pub fn evaluate(&self, request: &Request<'_>) -> Effect {
        let mut effect = Effect::NotApplicable;
        for statement in &self.statements {
            if statement.applies(request) {
                if !statement.allow {
                    return Effect::ExplicitDeny;
                }
                effect = Effect::Allow;
            }
        }
        effect
    }
}

impl PrincipalEntry {
    fn matches(&self, principal: &Principal) -> bool {
        match (self, principal) {
            (PrincipalEntry::Everyone, _) => true,
            (_, Principal::Anonymous) => false,
            (PrincipalEntry::Account(a), Principal::Authenticated { account, .. }) => a == account,
            (
                PrincipalEntry::User { account: a, name },
                Principal::Authenticated { account, user },
            ) => a == account && user.as_deref() == Some(name.as_str()),
        }
    }
}

fn resource_matches(pattern: &Pattern, resource: &str) -> bool {
    if resource == "*" {
        pattern.matches(resource, false) || pattern.covers_all_s3()
    } else {
        pattern.matches(resource, false)
    }
}

impl Statement {
    // Cheapest tests first: most statements fail on the action.
    fn applies(&self, request: &Request<'_>) -> bool {
        self.actions.matches(|a| a.matches(request.action, true))
            && self
                .principals
                .as_ref()
                .is_none_or(|p| p.matches(|e| e.matches(request.principal)))
            && self.resources.matches(|t| {
                t.resolve(|k| request.variable(k))
                    .is_some_and(|p| resource_matches(&p, request.resource))
            })
            && self.conditions.iter().all(|c| c.holds(request))
    }
}
