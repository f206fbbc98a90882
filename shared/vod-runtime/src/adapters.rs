//! The AWS adapters behind the domain's ports, each made once per cold start: DynamoDB stores on the one table,
//! S3 behind the storage-encryption stack (storage-encrypted assets decrypt as they are read and encrypt as they
//! are written), KMS, and the task queue. Every function's context takes what it needs from here.
use std::sync::Arc;

use vod_aws::{
    DynamoAssetStore, DynamoDeliveryStore, DynamoJobStore, DynamoKeyStore, DynamoSearchStore, KmsKeyService,
    S3BlobStore, SqsTaskQueue,
};
use vod_domain::delivery::DeliveryStore;
use vod_domain::protection::{KeyService, KeyStore};
use vod_domain::{AssetStore, BlobStore, JobStore, SearchStore, TaskQueue};

/// The adapters of one function instance.
#[derive(Clone)]
pub struct Adapters {
    pub assets: Arc<dyn AssetStore>,
    pub jobs: Arc<dyn JobStore>,
    pub delivery: Arc<dyn DeliveryStore>,
    pub keys: Arc<dyn KeyStore>,
    pub search: Arc<dyn SearchStore>,
    pub kms: Arc<dyn KeyService>,
    /// S3 through the storage-encryption stack.
    pub blobs: Arc<dyn BlobStore>,
    sqs: aws_sdk_sqs::Client,
}

impl Adapters {
    /// Adapters on the table `table`, with content and storage keys wrapped by the KMS key `kms_key_id`.
    pub fn new(sdk: &aws_config::SdkConfig, table: &str, kms_key_id: &str) -> Self {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let assets: Arc<dyn AssetStore> = Arc::new(DynamoAssetStore::new(dynamo.clone(), table.to_string()));
        let kms: Arc<dyn KeyService> = Arc::new(KmsKeyService::new(
            aws_sdk_kms::Client::new(sdk),
            kms_key_id.to_string(),
        ));
        Adapters {
            blobs: Arc::new(vod_domain::storage::EncryptedBlobStore::new(
                Arc::new(S3BlobStore::new(S3BlobStore::client_from(sdk))),
                assets.clone(),
                kms.clone(),
            )),
            jobs: Arc::new(DynamoJobStore::new(dynamo.clone(), table.to_string())),
            delivery: Arc::new(DynamoDeliveryStore::new(dynamo.clone(), table.to_string())),
            keys: Arc::new(DynamoKeyStore::new(dynamo.clone(), table.to_string())),
            search: Arc::new(DynamoSearchStore::new(dynamo, table.to_string())),
            sqs: aws_sdk_sqs::Client::new(sdk),
            assets,
            kms,
        }
    }

    /// The CDN whose cached paths are invalidated: the stack's CloudFront distribution (deferred invalidations
    /// waiting on `deferral_queue`), or none.
    pub fn cdn(
        sdk: &aws_config::SdkConfig,
        distribution_id: Option<&str>,
        deferral_queue: Option<&str>,
    ) -> Arc<dyn vod_domain::CdnCache> {
        match (distribution_id, deferral_queue) {
            (Some(id), Some(url)) => {
                Arc::new(vod_aws::CloudFrontCdn::from_sdk(sdk, id).with_deferral(aws_sdk_sqs::Client::new(sdk), url))
            }
            (Some(id), None) => Arc::new(vod_aws::CloudFrontCdn::from_sdk(sdk, id)),
            (None, _) => Arc::new(vod_domain::NoCdn),
        }
    }

    /// The task queue at `url`.
    pub fn queue(&self, url: &str) -> Arc<dyn TaskQueue> {
        Arc::new(SqsTaskQueue::new(self.sqs.clone(), url.to_string()))
    }
}
