//! The cross-asset search index on the single table: one item per (asset, term) in the asset's partition
//! (`PK = ASSET#id`, `SK = TERM#term`, so deleting the asset deletes its terms) and findable by term through GSI1
//! (`GSI1PK = TERM#term`, `GSI1SK = ASSET#id`).
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{DeleteRequest, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use vod_domain::{AssetId, SearchStore, StoreError, TermEntry};

use crate::table::{backend, corrupt, query_partition, s, Item};

const TERM_PREFIX: &str = "TERM#";

pub struct DynamoSearchStore {
    client: Client,
    table: String,
}

impl DynamoSearchStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoSearchStore {
            client,
            table: table.into(),
        }
    }

    /// Writes requests in batches of 25 (DynamoDB's limit), resending unprocessed items with backoff.
    async fn write_all(&self, mut requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        while !requests.is_empty() {
            let rest = requests.split_off(requests.len().min(25));
            let mut batch = std::mem::replace(&mut requests, rest);
            for attempt in 0..8u32 {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, batch)
                    .send()
                    .await
                    .map_err(backend)?;
                batch = out
                    .unprocessed_items
                    .and_then(|mut m| m.remove(&self.table))
                    .unwrap_or_default();
                if batch.is_empty() {
                    break;
                }
                if attempt == 7 {
                    return Err(StoreError::Backend(format!(
                        "{} term writes left unprocessed",
                        batch.len()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl SearchStore for DynamoSearchStore {
    async fn put_terms(&self, asset: AssetId, terms: &[TermEntry]) -> Result<(), StoreError> {
        let pk = format!("ASSET#{asset}");
        let keep: std::collections::HashSet<String> =
            terms.iter().map(|t| format!("{TERM_PREFIX}{}", t.term)).collect();
        // Terms of an earlier index that this one no longer has.
        let mut requests = Vec::new();
        for old in query_partition(&self.client, &self.table, &pk, Some(TERM_PREFIX)).await? {
            let Some(sk) = old.get("SK").and_then(|v| v.as_s().ok()).cloned() else {
                continue;
            };
            if keep.contains(&sk) {
                continue;
            }
            let del = DeleteRequest::builder()
                .key("PK", s(&pk))
                .key("SK", s(sk))
                .build()
                .map_err(backend)?;
            requests.push(WriteRequest::builder().delete_request(del).build());
        }
        for t in terms {
            let mut item: Item = serde_dynamo::to_item(t).map_err(corrupt)?;
            item.insert("PK".into(), s(&pk));
            item.insert("SK".into(), s(format!("{TERM_PREFIX}{}", t.term)));
            item.insert("GSI1PK".into(), s(format!("{TERM_PREFIX}{}", t.term)));
            item.insert("GSI1SK".into(), s(format!("ASSET#{asset}")));
            let put = PutRequest::builder().set_item(Some(item)).build().map_err(backend)?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        self.write_all(requests).await
    }

    async fn find_term(&self, term: &str, limit: usize) -> Result<Vec<(AssetId, TermEntry)>, StoreError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(crate::dynamo::GSI1)
                .key_condition_expression("GSI1PK = :pk")
                .expression_attribute_values(":pk", s(format!("{TERM_PREFIX}{term}")))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(backend)?;
            for item in out.items.unwrap_or_default() {
                let asset = item
                    .get("GSI1SK")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|v| v.strip_prefix("ASSET#"))
                    .and_then(AssetId::parse)
                    .ok_or_else(|| corrupt(format!("term item without an asset: {term}")))?;
                let entry: TermEntry = serde_dynamo::from_item(crate::table::strip_keys(item)).map_err(corrupt)?;
                found.push((asset, entry));
                if found.len() >= limit {
                    return Ok(found);
                }
            }
            match out.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return Ok(found),
            }
        }
    }
}
