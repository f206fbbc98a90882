//! Content keys and key policies in the DynamoDB table: a content key is `CONTENTKEY#<kid>` (only its KMS-wrapped
//! form is stored), listed per asset through GSI1 `ASSETKEYS#<asset>`; key policies live in the partition
//! `KEYPOLICIES` (symmetric verification keys KMS-wrapped).

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use vod_domain::protection::{ContentKey, KeyId, KeyPolicy, KeyStore};
use vod_domain::{AssetId, StoreError};

use crate::table::{corrupt, delete_item, get_item, put_record, query_gsi1, records, s, strip_keys, Item};

pub struct DynamoKeyStore {
    client: Client,
    table: String,
}

fn key_pk(kid: KeyId) -> String {
    format!("CONTENTKEY#{kid}")
}

impl DynamoKeyStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoKeyStore {
            client,
            table: table.into(),
        }
    }

    async fn get(&self, pk: String, sk: String) -> Result<Option<Item>, StoreError> {
        get_item(&self.client, &self.table, pk, sk).await
    }

    async fn delete(&self, pk: String, sk: String) -> Result<(), StoreError> {
        delete_item(&self.client, &self.table, pk, sk).await
    }
}

#[async_trait]
impl KeyStore for DynamoKeyStore {
    async fn put_content_key(&self, key: &ContentKey) -> Result<(), StoreError> {
        let keys = [
            ("PK", s(key_pk(key.kid))),
            ("SK", s("CONTENTKEY")),
            ("GSI1PK", s(format!("ASSETKEYS#{}", key.asset_id))),
            ("GSI1SK", s(format!("{}#{}", key.created_at.to_rfc3339(), key.kid))),
        ];
        put_record(&self.client, &self.table, key, &keys, false).await
    }

    async fn get_content_key(&self, kid: KeyId) -> Result<Option<ContentKey>, StoreError> {
        self.get(key_pk(kid), "CONTENTKEY".into())
            .await?
            .map(|i| serde_dynamo::from_item(strip_keys(i)).map_err(corrupt))
            .transpose()
    }

    async fn list_content_keys(&self, asset: AssetId) -> Result<Vec<ContentKey>, StoreError> {
        records(query_gsi1(&self.client, &self.table, &format!("ASSETKEYS#{asset}")).await?)
    }

    async fn delete_content_key(&self, kid: KeyId) -> Result<(), StoreError> {
        self.delete(key_pk(kid), "CONTENTKEY".into()).await
    }

    async fn put_key_policy(&self, policy: &KeyPolicy) -> Result<(), StoreError> {
        let keys = [
            ("PK", s("KEYPOLICIES")),
            ("SK", s(format!("KEYPOLICY#{}", policy.name))),
        ];
        put_record(&self.client, &self.table, policy, &keys, false).await
    }

    async fn get_key_policy(&self, name: &str) -> Result<Option<KeyPolicy>, StoreError> {
        self.get("KEYPOLICIES".into(), format!("KEYPOLICY#{name}"))
            .await?
            .map(|i| serde_dynamo::from_item(strip_keys(i)).map_err(corrupt))
            .transpose()
    }

    async fn list_key_policies(&self) -> Result<Vec<KeyPolicy>, StoreError> {
        crate::table::query_partition(&self.client, &self.table, "KEYPOLICIES", Some("KEYPOLICY#"))
            .await?
            .into_iter()
            .map(|i| serde_dynamo::from_item(strip_keys(i)).map_err(corrupt))
            .collect()
    }

    async fn delete_key_policy(&self, name: &str) -> Result<(), StoreError> {
        self.delete("KEYPOLICIES".into(), format!("KEYPOLICY#{name}")).await
    }
}
