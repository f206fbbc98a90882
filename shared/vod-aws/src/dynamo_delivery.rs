//! Locators and filters in the DynamoDB table: a locator is `LOCATOR#<id>` (listed per asset through GSI1
//! `ASSETLOCATORS#<asset>`, expired by TTL a day after its end); an asset's filters live in the asset's partition
//! (`FILTER#<name>`, deleted with it), global filters in the partition `FILTERS`.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use vod_domain::delivery::{DeliveryStore, Filter, Locator, LocatorId};
use vod_domain::{AssetId, StoreError};

use crate::table::{corrupt, delete_item, get_item, put_record, query_gsi1, records, s, strip_keys, Item};

pub struct DynamoDeliveryStore {
    client: Client,
    table: String,
}

fn locator_pk(id: LocatorId) -> String {
    format!("LOCATOR#{id}")
}
fn filter_pk(asset: Option<AssetId>) -> String {
    match asset {
        Some(a) => format!("ASSET#{a}"),
        None => "FILTERS".into(),
    }
}

impl DynamoDeliveryStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDeliveryStore {
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
impl DeliveryStore for DynamoDeliveryStore {
    async fn put_locator(&self, locator: &Locator) -> Result<(), StoreError> {
        // DynamoDB's TTL removes the record a day after the locator ended (the packager checks `end` itself).
        let keys = [
            ("PK", s(locator_pk(locator.id))),
            ("SK", s("LOCATOR")),
            ("GSI1PK", s(format!("ASSETLOCATORS#{}", locator.asset_id))),
            (
                "GSI1SK",
                s(format!("{}#{}", locator.created_at.to_rfc3339(), locator.id)),
            ),
            (
                "expires_at",
                AttributeValue::N((locator.end.timestamp() + 86_400).to_string()),
            ),
        ];
        put_record(&self.client, &self.table, locator, &keys, true).await
    }

    async fn get_locator(&self, id: LocatorId) -> Result<Option<Locator>, StoreError> {
        self.get(locator_pk(id), "LOCATOR".into())
            .await?
            .map(|i| serde_dynamo::from_item(strip_keys(i)).map_err(corrupt))
            .transpose()
    }

    async fn delete_locator(&self, id: LocatorId) -> Result<(), StoreError> {
        self.delete(locator_pk(id), "LOCATOR".into()).await
    }

    async fn list_locators(&self, asset: AssetId) -> Result<Vec<Locator>, StoreError> {
        records(query_gsi1(&self.client, &self.table, &format!("ASSETLOCATORS#{asset}")).await?)
    }

    async fn put_filter(&self, filter: &Filter) -> Result<(), StoreError> {
        let keys = [
            ("PK", s(filter_pk(filter.asset_id))),
            ("SK", s(format!("FILTER#{}", filter.name))),
        ];
        put_record(&self.client, &self.table, filter, &keys, false).await
    }

    async fn get_filter(&self, asset: Option<AssetId>, name: &str) -> Result<Option<Filter>, StoreError> {
        self.get(filter_pk(asset), format!("FILTER#{name}"))
            .await?
            .map(|i| serde_dynamo::from_item(strip_keys(i)).map_err(corrupt))
            .transpose()
    }

    async fn list_filters(&self, asset: Option<AssetId>) -> Result<Vec<Filter>, StoreError> {
        crate::table::query_partition(&self.client, &self.table, &filter_pk(asset), Some("FILTER#"))
            .await?
            .into_iter()
            .map(|i| serde_dynamo::from_item(strip_keys(i)).map_err(corrupt))
            .collect()
    }

    async fn delete_filter(&self, asset: Option<AssetId>, name: &str) -> Result<(), StoreError> {
        self.delete(filter_pk(asset), format!("FILTER#{name}")).await
    }
}
