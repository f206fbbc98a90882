//! Partition-level helpers of the single table shared by the stores: read every item of a partition (paged), and
//! delete a partition with its head item last (so a half-done delete still leaves a findable record).
use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use vod_domain::StoreError;

use crate::sdk_error;

pub(crate) type Item = HashMap<String, AttributeValue>;

pub(crate) fn backend(e: impl std::error::Error + 'static) -> StoreError {
    StoreError::Backend(sdk_error(&e))
}

/// Every item of partition `pk` (whose sort key starts with `sk_prefix`, if given), consistently read.
pub(crate) async fn query_partition(
    client: &Client,
    table: &str,
    pk: &str,
    sk_prefix: Option<&str>,
) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let mut q = client
            .query()
            .table_name(table)
            .consistent_read(true)
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_string()))
            .set_exclusive_start_key(start.take());
        q = match sk_prefix {
            Some(p) => q
                .key_condition_expression("PK = :pk AND begins_with(SK, :sk)")
                .expression_attribute_values(":sk", AttributeValue::S(p.to_string())),
            None => q.key_condition_expression("PK = :pk"),
        };
        let out = q.send().await.map_err(backend)?;
        items.extend(out.items.unwrap_or_default());
        match out.last_evaluated_key {
            Some(k) => start = Some(k),
            None => return Ok(items),
        }
    }
}

/// Deletes every item of partition `pk`; the item whose sort key is `head_sk` goes last.
pub(crate) async fn delete_partition(client: &Client, table: &str, pk: &str, head_sk: &str) -> Result<(), StoreError> {
    let mut items = query_partition(client, table, pk, None).await?;
    // Sort so that the head item comes last.
    items.sort_by_key(|i| i.get("SK").and_then(|s| s.as_s().ok()).is_some_and(|s| s == head_sk));
    for item in items {
        let (Some(p), Some(s)) = (item.get("PK"), item.get("SK")) else {
            continue;
        };
        client
            .delete_item()
            .table_name(table)
            .key("PK", p.clone())
            .key("SK", s.clone())
            .send()
            .await
            .map_err(backend)?;
    }
    Ok(())
}

/// A string attribute.
pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A record that does not deserialize.
pub(crate) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// An item without the table's key attributes (and TTL), ready to deserialize into a domain record.
pub(crate) fn strip_keys(mut item: Item) -> Item {
    for k in ["PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK", "expires_at"] {
        item.remove(k);
    }
    item
}

/// Consistent read of one item.
pub(crate) async fn get_item(client: &Client, table: &str, pk: String, sk: String) -> Result<Option<Item>, StoreError> {
    let out = client
        .get_item()
        .table_name(table)
        .key("PK", s(pk))
        .key("SK", s(sk))
        .consistent_read(true)
        .send()
        .await
        .map_err(backend)?;
    Ok(out.item)
}

/// Deletes one item (deleting a missing item is not an error).
pub(crate) async fn delete_item(client: &Client, table: &str, pk: String, sk: String) -> Result<(), StoreError> {
    client
        .delete_item()
        .table_name(table)
        .key("PK", s(pk))
        .key("SK", s(sk))
        .send()
        .await
        .map_err(backend)?;
    Ok(())
}

/// Every item of GSI1 partition `pk`, newest first (paged).
pub(crate) async fn query_gsi1(client: &Client, table: &str, pk: &str) -> Result<Vec<Item>, StoreError> {
    query_index(client, table, crate::dynamo::GSI1, pk).await
}

/// Every item of the sparse index GSI2's partition `pk` (paged): items carry `GSI2PK` only while they are in the
/// state it lists (a job not final, an asset waiting for its probe), so reading it costs what is listed.
pub(crate) async fn query_gsi2(client: &Client, table: &str, pk: &str) -> Result<Vec<Item>, StoreError> {
    query_index(client, table, crate::dynamo::GSI2, pk).await
}

async fn query_index(client: &Client, table: &str, index: &str, pk: &str) -> Result<Vec<Item>, StoreError> {
    let mut items = Vec::new();
    let mut start = None;
    let key = format!("{}PK = :pk", index);
    loop {
        let out = client
            .query()
            .table_name(table)
            .index_name(index)
            .key_condition_expression(&key)
            .expression_attribute_values(":pk", s(pk))
            .scan_index_forward(false)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(backend)?;
        items.extend(out.items.unwrap_or_default());
        match out.last_evaluated_key {
            Some(k) => start = Some(k),
            None => return Ok(items),
        }
    }
}

/// Stores a record with its key attributes (`PK`, `SK`, and any of `GSI1PK`, `GSI1SK`, `expires_at` given);
/// `only_new` refuses to overwrite an existing item.
pub(crate) async fn put_record<T: serde::Serialize>(
    client: &Client,
    table: &str,
    record: &T,
    keys: &[(&str, AttributeValue)],
    only_new: bool,
) -> Result<(), StoreError> {
    let mut item: Item = serde_dynamo::to_item(record).map_err(corrupt)?;
    for (k, v) in keys {
        item.insert((*k).to_string(), v.clone());
    }
    let mut put = client.put_item().table_name(table).set_item(Some(item));
    if only_new {
        put = put.condition_expression("attribute_not_exists(PK)");
    }
    put.send().await.map_err(backend)?;
    Ok(())
}

/// Items deserialized into records (key attributes stripped).
pub(crate) fn records<T: serde::de::DeserializeOwned>(items: Vec<Item>) -> Result<Vec<T>, StoreError> {
    items
        .into_iter()
        .map(|i| serde_dynamo::from_item(strip_keys(i)).map_err(corrupt))
        .collect()
}
