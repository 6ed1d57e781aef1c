//! Strata's implementation of s3s's S3 trait: each operation delegates to
//! the module that owns it. Also the credentials check.

use std::sync::{Arc, OnceLock};

use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};

use crate::{
    acl, bucket_access, bucket_config, bucket_encryption, buckets, listings, multipart,
    object_config, objects, post_object, reads,
};

/// The S3 service. The store is set once recovery has finished; until then
/// every request answers 503 (and readiness is false).
#[derive(Clone)]
pub struct Strata {
    store: Arc<OnceLock<lsm::Store>>,
    region: String,
    body_deadline: BodyDeadline,
    access: Arc<crate::authz::Access>,
    aws_bucket_defaults: bool,
    sse: Arc<crate::encryption::SseSettings>,
}

/// How long a request body may send nothing, and where its timeouts are
/// counted.
#[derive(Clone)]
pub(crate) struct BodyDeadline {
    pub stall: std::time::Duration,
    pub metrics: Arc<crate::Metrics>,
}

impl Strata {
    pub fn new(
        state: &crate::AppState,
        body_timeout: std::time::Duration,
        access: Arc<crate::authz::Access>,
    ) -> Self {
        Strata {
            store: state.store.clone(),
            region: state.region.clone(),
            body_deadline: BodyDeadline {
                stall: body_timeout,
                metrics: state.metrics.clone(),
            },
            access,
            aws_bucket_defaults: state.aws_bucket_defaults,
            sse: state.encryption.clone(),
        }
    }

    /// Encryption settings and master keys.
    pub(crate) fn sse(&self) -> &crate::encryption::SseSettings {
        &self.sse
    }

    /// Whether new buckets start with AWS's 2023 defaults.
    pub(crate) fn aws_bucket_defaults(&self) -> bool {
        self.aws_bucket_defaults
    }

    pub(crate) fn access(&self) -> &crate::authz::Access {
        &self.access
    }

    pub(crate) fn region(&self) -> &str {
        &self.region
    }

    /// How long a request body may send nothing.
    pub(crate) fn body_timeout(&self) -> BodyDeadline {
        self.body_deadline.clone()
    }

    pub(crate) fn store(&self) -> S3Result<lsm::Store> {
        self.store
            .get()
            .cloned()
            .ok_or_else(|| s3_error!(ServiceUnavailable, "recovery is still running"))
    }
}

/// The S3 operations Strata serves, each delegated to the module that
/// owns its resource; s3s answers every other one NotImplemented.
macro_rules! s3_operations {
    ($($op:ident($input:ident) -> $output:ident => $handler:path;)*) => {
        #[async_trait::async_trait]
        impl S3 for Strata {
            $(
                async fn $op(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    $handler(self, req).await
                }
            )*

        }
    };
}

s3_operations! {
    list_buckets(ListBucketsInput) -> ListBucketsOutput => buckets::list_buckets;
    create_bucket(CreateBucketInput) -> CreateBucketOutput => buckets::create_bucket;
    head_bucket(HeadBucketInput) -> HeadBucketOutput => buckets::head_bucket;
    delete_bucket(DeleteBucketInput) -> DeleteBucketOutput => buckets::delete_bucket;
    get_bucket_location(GetBucketLocationInput) -> GetBucketLocationOutput => buckets::get_location;
    list_objects(ListObjectsInput) -> ListObjectsOutput => listings::list_objects;
    list_objects_v2(ListObjectsV2Input) -> ListObjectsV2Output => listings::list_objects_v2;
    list_object_versions(ListObjectVersionsInput) -> ListObjectVersionsOutput => listings::list_object_versions;
    put_bucket_versioning(PutBucketVersioningInput) -> PutBucketVersioningOutput => bucket_config::put_versioning;
    get_bucket_versioning(GetBucketVersioningInput) -> GetBucketVersioningOutput => bucket_config::get_versioning;
    put_object_lock_configuration(PutObjectLockConfigurationInput) -> PutObjectLockConfigurationOutput => bucket_config::put_object_lock;
    get_object_lock_configuration(GetObjectLockConfigurationInput) -> GetObjectLockConfigurationOutput => bucket_config::get_object_lock;
    put_bucket_tagging(PutBucketTaggingInput) -> PutBucketTaggingOutput => bucket_config::put_tagging;
    get_bucket_tagging(GetBucketTaggingInput) -> GetBucketTaggingOutput => bucket_config::get_tagging;
    delete_bucket_tagging(DeleteBucketTaggingInput) -> DeleteBucketTaggingOutput => bucket_config::delete_tagging;
    put_bucket_lifecycle_configuration(PutBucketLifecycleConfigurationInput) -> PutBucketLifecycleConfigurationOutput => bucket_config::put_lifecycle;
    get_bucket_lifecycle_configuration(GetBucketLifecycleConfigurationInput) -> GetBucketLifecycleConfigurationOutput => bucket_config::get_lifecycle;
    delete_bucket_lifecycle(DeleteBucketLifecycleInput) -> DeleteBucketLifecycleOutput => bucket_config::delete_lifecycle;
    put_object(PutObjectInput) -> PutObjectOutput => objects::put_object;
    get_object(GetObjectInput) -> GetObjectOutput => reads::get_object;
    head_object(HeadObjectInput) -> HeadObjectOutput => reads::head_object;
    get_object_attributes(GetObjectAttributesInput) -> GetObjectAttributesOutput => reads::get_object_attributes;
    delete_object(DeleteObjectInput) -> DeleteObjectOutput => objects::delete_object;
    delete_objects(DeleteObjectsInput) -> DeleteObjectsOutput => objects::delete_objects;
    copy_object(CopyObjectInput) -> CopyObjectOutput => objects::copy_object;
    put_object_tagging(PutObjectTaggingInput) -> PutObjectTaggingOutput => object_config::put_tagging;
    get_object_tagging(GetObjectTaggingInput) -> GetObjectTaggingOutput => object_config::get_tagging;
    delete_object_tagging(DeleteObjectTaggingInput) -> DeleteObjectTaggingOutput => object_config::delete_tagging;
    put_object_retention(PutObjectRetentionInput) -> PutObjectRetentionOutput => object_config::put_retention;
    get_object_retention(GetObjectRetentionInput) -> GetObjectRetentionOutput => object_config::get_retention;
    put_object_legal_hold(PutObjectLegalHoldInput) -> PutObjectLegalHoldOutput => object_config::put_legal_hold;
    get_object_legal_hold(GetObjectLegalHoldInput) -> GetObjectLegalHoldOutput => object_config::get_legal_hold;
    create_multipart_upload(CreateMultipartUploadInput) -> CreateMultipartUploadOutput => multipart::create;
    upload_part(UploadPartInput) -> UploadPartOutput => multipart::upload_part;
    upload_part_copy(UploadPartCopyInput) -> UploadPartCopyOutput => multipart::upload_part_copy;
    complete_multipart_upload(CompleteMultipartUploadInput) -> CompleteMultipartUploadOutput => multipart::complete;
    abort_multipart_upload(AbortMultipartUploadInput) -> AbortMultipartUploadOutput => multipart::abort;
    list_parts(ListPartsInput) -> ListPartsOutput => multipart::list_parts;
    list_multipart_uploads(ListMultipartUploadsInput) -> ListMultipartUploadsOutput => multipart::list_uploads;
    get_bucket_acl(GetBucketAclInput) -> GetBucketAclOutput => acl::get_bucket_acl;
    put_bucket_acl(PutBucketAclInput) -> PutBucketAclOutput => acl::put_bucket_acl;
    get_object_acl(GetObjectAclInput) -> GetObjectAclOutput => acl::get_object_acl;
    put_object_acl(PutObjectAclInput) -> PutObjectAclOutput => acl::put_object_acl;
    put_bucket_policy(PutBucketPolicyInput) -> PutBucketPolicyOutput => bucket_access::put_policy;
    get_bucket_policy(GetBucketPolicyInput) -> GetBucketPolicyOutput => bucket_access::get_policy;
    delete_bucket_policy(DeleteBucketPolicyInput) -> DeleteBucketPolicyOutput => bucket_access::delete_policy;
    get_bucket_policy_status(GetBucketPolicyStatusInput) -> GetBucketPolicyStatusOutput => bucket_access::get_policy_status;
    put_bucket_ownership_controls(PutBucketOwnershipControlsInput) -> PutBucketOwnershipControlsOutput => bucket_access::put_ownership;
    get_bucket_ownership_controls(GetBucketOwnershipControlsInput) -> GetBucketOwnershipControlsOutput => bucket_access::get_ownership;
    delete_bucket_ownership_controls(DeleteBucketOwnershipControlsInput) -> DeleteBucketOwnershipControlsOutput => bucket_access::delete_ownership;
    put_public_access_block(PutPublicAccessBlockInput) -> PutPublicAccessBlockOutput => bucket_access::put_public_access_block;
    get_public_access_block(GetPublicAccessBlockInput) -> GetPublicAccessBlockOutput => bucket_access::get_public_access_block;
    delete_public_access_block(DeletePublicAccessBlockInput) -> DeletePublicAccessBlockOutput => bucket_access::delete_public_access_block;
    put_bucket_cors(PutBucketCorsInput) -> PutBucketCorsOutput => bucket_access::put_cors;
    get_bucket_cors(GetBucketCorsInput) -> GetBucketCorsOutput => bucket_access::get_cors;
    delete_bucket_cors(DeleteBucketCorsInput) -> DeleteBucketCorsOutput => bucket_access::delete_cors;
    post_object(PostObjectInput) -> PostObjectOutput => post_object::post_object;
    put_bucket_encryption(PutBucketEncryptionInput) -> PutBucketEncryptionOutput => bucket_encryption::put_encryption;
    get_bucket_encryption(GetBucketEncryptionInput) -> GetBucketEncryptionOutput => bucket_encryption::get_encryption;
    delete_bucket_encryption(DeleteBucketEncryptionInput) -> DeleteBucketEncryptionOutput => bucket_encryption::delete_encryption;
}
