//! The action names a policy may grant: S3's own (from the Service
//! Authorization Reference, "Actions, resources, and condition keys for
//! Amazon S3"), MinIO-style admin actions used by Strata's admin API, and the
//! few KMS actions Strata implements.

use crate::matching::Pattern;
use crate::{malformed, PolicyError};

/// Every S3 action a policy may name without wildcards.
pub const S3_ACTIONS: &[&str] = &[
    "s3:AbortMultipartUpload",
    "s3:BypassGovernanceRetention",
    "s3:CreateAccessPoint",
    "s3:CreateAccessPointForObjectLambda",
    "s3:CreateBucket",
    "s3:CreateJob",
    "s3:CreateMultiRegionAccessPoint",
    "s3:CreateSession",
    "s3:CreateStorageLensGroup",
    "s3:DeleteAccessPoint",
    "s3:DeleteAccessPointForObjectLambda",
    "s3:DeleteAccessPointPolicy",
    "s3:DeleteAccessPointPolicyForObjectLambda",
    "s3:DeleteBucket",
    "s3:DeleteBucketMetadataTableConfiguration",
    "s3:DeleteBucketOwnershipControls",
    "s3:DeleteBucketPolicy",
    "s3:DeleteBucketWebsite",
    "s3:DeleteJobTagging",
    "s3:DeleteMultiRegionAccessPoint",
    "s3:DeleteObject",
    "s3:DeleteObjectTagging",
    "s3:DeleteObjectVersion",
    "s3:DeleteObjectVersionTagging",
    "s3:DeleteStorageLensConfiguration",
    "s3:DeleteStorageLensConfigurationTagging",
    "s3:DeleteStorageLensGroup",
    "s3:DescribeJob",
    "s3:DescribeMultiRegionAccessPointOperation",
    "s3:GetAccelerateConfiguration",
    "s3:GetAccessPoint",
    "s3:GetAccessPointConfigurationForObjectLambda",
    "s3:GetAccessPointForObjectLambda",
    "s3:GetAccessPointPolicy",
    "s3:GetAccessPointPolicyForObjectLambda",
    "s3:GetAccessPointPolicyStatus",
    "s3:GetAccessPointPolicyStatusForObjectLambda",
    "s3:GetAccountPublicAccessBlock",
    "s3:GetAnalyticsConfiguration",
    "s3:GetBucketAcl",
    "s3:GetBucketCORS",
    "s3:GetBucketLocation",
    "s3:GetBucketLogging",
    "s3:GetBucketMetadataTableConfiguration",
    "s3:GetBucketNotification",
    "s3:GetBucketObjectLockConfiguration",
    "s3:GetBucketOwnershipControls",
    "s3:GetBucketPolicy",
    "s3:GetBucketPolicyStatus",
    "s3:GetBucketPublicAccessBlock",
    "s3:GetBucketRequestPayment",
    "s3:GetBucketTagging",
    "s3:GetBucketVersioning",
    "s3:GetBucketWebsite",
    "s3:GetEncryptionConfiguration",
    "s3:GetIntelligentTieringConfiguration",
    "s3:GetInventoryConfiguration",
    "s3:GetJobTagging",
    "s3:GetLifecycleConfiguration",
    "s3:GetMetricsConfiguration",
    "s3:GetMultiRegionAccessPoint",
    "s3:GetMultiRegionAccessPointPolicy",
    "s3:GetMultiRegionAccessPointPolicyStatus",
    "s3:GetObject",
    "s3:GetObjectAcl",
    "s3:GetObjectAttributes",
    "s3:GetObjectLegalHold",
    "s3:GetObjectRetention",
    "s3:GetObjectTagging",
    "s3:GetObjectTorrent",
    "s3:GetObjectVersion",
    "s3:GetObjectVersionAcl",
    "s3:GetObjectVersionAttributes",
    "s3:GetObjectVersionForReplication",
    "s3:GetObjectVersionTagging",
    "s3:GetObjectVersionTorrent",
    "s3:GetReplicationConfiguration",
    "s3:GetStorageLensConfiguration",
    "s3:GetStorageLensConfigurationTagging",
    "s3:GetStorageLensDashboard",
    "s3:GetStorageLensGroup",
    "s3:InitiateReplication",
    "s3:ListAccessPoints",
    "s3:ListAccessPointsForObjectLambda",
    "s3:ListAllMyBuckets",
    "s3:ListBucket",
    "s3:ListBucketMultipartUploads",
    "s3:ListBucketVersions",
    "s3:ListJobs",
    "s3:ListMultiRegionAccessPoints",
    "s3:ListMultipartUploadParts",
    "s3:ListStorageLensConfigurations",
    "s3:ListStorageLensGroups",
    "s3:ListTagsForResource",
    "s3:ObjectOwnerOverrideToBucketOwner",
    "s3:PutAccelerateConfiguration",
    "s3:PutAccessPointConfigurationForObjectLambda",
    "s3:PutAccessPointPolicy",
    "s3:PutAccessPointPolicyForObjectLambda",
    "s3:PutAccessPointPublicAccessBlock",
    "s3:PutAccountPublicAccessBlock",
    "s3:PutAnalyticsConfiguration",
    "s3:PutBucketAcl",
    "s3:PutBucketCORS",
    "s3:PutBucketLogging",
    "s3:PutBucketMetadataTableConfiguration",
    "s3:PutBucketNotification",
    "s3:PutBucketObjectLockConfiguration",
    "s3:PutBucketOwnershipControls",
    "s3:PutBucketPolicy",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketRequestPayment",
    "s3:PutBucketTagging",
    "s3:PutBucketVersioning",
    "s3:PutBucketWebsite",
    "s3:PutEncryptionConfiguration",
    "s3:PutIntelligentTieringConfiguration",
    "s3:PutInventoryConfiguration",
    "s3:PutJobTagging",
    "s3:PutLifecycleConfiguration",
    "s3:PutMetricsConfiguration",
    "s3:PutMultiRegionAccessPointPolicy",
    "s3:PutObject",
    "s3:PutObjectAcl",
    "s3:PutObjectLegalHold",
    "s3:PutObjectRetention",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionAcl",
    "s3:PutObjectVersionTagging",
    "s3:PutReplicationConfiguration",
    "s3:PutStorageLensConfiguration",
    "s3:PutStorageLensConfigurationTagging",
    "s3:ReplicateDelete",
    "s3:ReplicateObject",
    "s3:ReplicateTags",
    "s3:RestoreObject",
    "s3:SubmitMultiRegionAccessPointRoutes",
    "s3:TagResource",
    "s3:UntagResource",
    "s3:UpdateJobPriority",
    "s3:UpdateJobStatus",
    "s3:UpdateStorageLensGroup",
];

/// Admin API actions, named as MinIO names them so MinIO-style admin
/// policies carry over; `admin:CreateAccount` (tenants) is Strata's own.
pub const ADMIN_ACTIONS: &[&str] = &[
    "admin:CreateUser",
    "admin:DeleteUser",
    "admin:ListUsers",
    "admin:GetUser",
    "admin:EnableUser",
    "admin:DisableUser",
    "admin:CreateServiceAccount",
    "admin:RemoveServiceAccount",
    "admin:ListServiceAccounts",
    "admin:CreatePolicy",
    "admin:DeletePolicy",
    "admin:GetPolicy",
    "admin:ListUserPolicies",
    "admin:AttachUserOrGroupPolicy",
    "admin:CreateAccount",
    "admin:ServerInfo",
    "admin:PauseCompaction",
];

/// The KMS actions of Strata's key service.
pub const KMS_ACTIONS: &[&str] = &[
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:GenerateDataKey",
    "kms:CreateKey",
    "kms:ListKeys",
];

const SERVICES: [(&str, &[&str]); 3] = [
    ("s3", S3_ACTIONS),
    ("admin", ADMIN_ACTIONS),
    ("kms", KMS_ACTIONS),
];

/// One Action/NotAction entry. A name with wildcards may match nothing yet
/// (as in AWS); a name without wildcards must be an action we know, so a
/// typo is caught when the policy is written rather than silently granting
/// or denying nothing.
pub(crate) fn parse_action(text: &str) -> Result<Pattern, PolicyError> {
    let invalid = || malformed(format!("Policy has invalid action: \"{text}\""));
    if text == "*" {
        return Ok(Pattern::wildcard(text));
    }
    let (service, name) = text.split_once(':').ok_or_else(invalid)?;
    let known = SERVICES
        .iter()
        .find(|(s, _)| s.eq_ignore_ascii_case(service))
        .map(|(_, known)| known)
        .ok_or_else(invalid)?;
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?');
    if name.is_empty() || !valid_chars {
        return Err(invalid());
    }
    let wild = name.contains(['*', '?']);
    if !wild && !known.iter().any(|k| k.eq_ignore_ascii_case(text)) {
        return Err(invalid());
    }
    Ok(Pattern::wildcard(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_have_no_duplicates_and_the_right_service() {
        for (service, list) in SERVICES {
            let mut seen = std::collections::HashSet::new();
            for name in list {
                assert!(name.starts_with(&format!("{service}:")), "{name}");
                assert!(seen.insert(name.to_ascii_lowercase()), "{name} twice");
                assert!(parse_action(name).is_ok(), "{name}");
            }
        }
        assert!(S3_ACTIONS.len() >= 100);
    }

    #[test]
    fn names_are_case_insensitive_and_wildcards_are_free() {
        assert!(parse_action("S3:getobject").is_ok());
        assert!(parse_action("s3:Get*").is_ok());
        assert!(parse_action("s3:*Nothing?").is_ok());
        assert!(parse_action("admin:*").is_ok());
        assert!(parse_action("KMS:Decrypt").is_ok());
    }

    #[test]
    fn unknown_names_services_and_shapes_are_refused() {
        for bad in [
            "s3:GetObjects",
            "iam:CreateUser",
            "s3:",
            "s3",
            "GetObject",
            "*:GetObject",
            "s3:Get Object",
            "s3:Get-Object",
            "",
        ] {
            let err = parse_action(bad).unwrap_err().to_string();
            assert!(err.contains("invalid action"), "{bad}: {err}");
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }
}
