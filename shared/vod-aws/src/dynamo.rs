//! The asset store on one DynamoDB table: items keyed `PK`/`SK`, assets listed newest first through the `GSI1`
//! index; every write conditional (insert if absent, update if the version is unchanged).
use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use base64::Engine;
use vod_domain::{Asset, AssetId, AssetStore, Page, StoreError};

use crate::sdk_error;

const ASSET_SK: &str = "ASSET";
const ASSETS_INDEX_PK: &str = "ASSETS";
/// Name of the listing index (declared in template.yaml).
pub const GSI1: &str = "GSI1";
/// Name of the sparse index of records waiting for something (declared in template.yaml).
pub const GSI2: &str = "GSI2";
/// GSI2 partition of assets waiting for their probe.
const UPLOADED_INDEX_PK: &str = "UPLOADED";

pub struct DynamoAssetStore {
    client: Client,
    table: String,
}

fn asset_pk(id: AssetId) -> String {
    format!("ASSET#{id}")
}

fn backend(e: impl std::error::Error + 'static) -> StoreError {
    StoreError::Backend(sdk_error(&e))
}

impl DynamoAssetStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoAssetStore {
            client,
            table: table.into(),
        }
    }

    fn to_item(asset: &Asset, version: u64) -> Result<HashMap<String, AttributeValue>, StoreError> {
        let mut stored = asset.clone();
        stored.version = version;
        let mut item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(&stored).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        item.insert("PK".into(), AttributeValue::S(asset_pk(asset.id)));
        item.insert("SK".into(), AttributeValue::S(ASSET_SK.into()));
        item.insert("GSI1PK".into(), AttributeValue::S(ASSETS_INDEX_PK.into()));
        item.insert(
            "GSI1SK".into(),
            AttributeValue::S(format!("{}#{}", asset.created_at.to_rfc3339(), asset.id)),
        );
        if asset.state == vod_domain::AssetState::Uploaded {
            item.insert("GSI2PK".into(), AttributeValue::S(UPLOADED_INDEX_PK.into()));
            item.insert("GSI2SK".into(), AttributeValue::S(asset.id.to_string()));
        }
        Ok(item)
    }

    fn from_item(mut item: HashMap<String, AttributeValue>) -> Result<Asset, StoreError> {
        for k in ["PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK"] {
            item.remove(k);
        }
        serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

#[async_trait]
impl AssetStore for DynamoAssetStore {
    async fn insert(&self, asset: &Asset) -> Result<bool, StoreError> {
        let item = Self::to_item(asset, asset.version)?;
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn get(&self, id: AssetId) -> Result<Option<Asset>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("PK", AttributeValue::S(asset_pk(id)))
            .key("SK", AttributeValue::S(ASSET_SK.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        out.item.map(Self::from_item).transpose()
    }

    async fn list(&self, limit: usize, cursor: Option<&str>) -> Result<Page<Asset>, StoreError> {
        let start_key = match cursor {
            None => None,
            Some(c) => {
                let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(c)
                    .map_err(|_| StoreError::Corrupt("malformed page cursor".into()))?;
                let map: HashMap<String, String> =
                    serde_json::from_slice(&raw).map_err(|_| StoreError::Corrupt("malformed page cursor".into()))?;
                Some(map.into_iter().map(|(k, v)| (k, AttributeValue::S(v))).collect())
            }
        };
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("GSI1PK = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(ASSETS_INDEX_PK.into()))
            .scan_index_forward(false)
            .limit(limit as i32)
            .set_exclusive_start_key(start_key)
            .send()
            .await
            .map_err(backend)?;
        let items = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(Self::from_item)
            .collect::<Result<Vec<_>, _>>()?;
        let next = match out.last_evaluated_key {
            Some(k) => {
                let map: HashMap<String, String> = k
                    .into_iter()
                    .filter_map(|(k, v)| v.as_s().ok().map(|s| (k, s.clone())))
                    .collect();
                let json = serde_json::to_vec(&map).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
            }
            None => None,
        };
        Ok(Page { items, next })
    }

    async fn uploaded(&self) -> Result<Vec<Asset>, StoreError> {
        crate::table::query_gsi2(&self.client, &self.table, UPLOADED_INDEX_PK)
            .await?
            .into_iter()
            .map(Self::from_item)
            .collect()
    }

    async fn update(&self, asset: &Asset) -> Result<Asset, StoreError> {
        let next_version = asset.version + 1;
        let item = Self::to_item(asset, next_version)?;
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_exists(PK) AND version = :v")
            .expression_attribute_values(":v", AttributeValue::N(asset.version.to_string()))
            .send()
            .await;
        match res {
            Ok(_) => {
                let mut stored = asset.clone();
                stored.version = next_version;
                Ok(stored)
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Conflict(format!("asset {}", asset.id)))
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn delete(&self, id: AssetId) -> Result<(), StoreError> {
        // Every record of an asset shares its partition key: delete them all, the asset item last.
        crate::table::delete_partition(&self.client, &self.table, &asset_pk(id), ASSET_SK).await?;
        Ok(())
    }
}
