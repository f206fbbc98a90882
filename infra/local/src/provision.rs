//! Creates the stack's resources on the emulator from a resolved `StackSpec`: queues (dead-letter queues first,
//! then redrive policies), tables (keys, GSIs, TTL), buckets and their queue notifications. Re-running is a no-op.
use std::collections::HashMap;

use anyhow::{Context, Result};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
use aws_sdk_sqs::types::QueueAttributeName;
use tracing::info;

use crate::template::{KeyElement, StackSpec};

/// Queue URLs by logical id, as the emulator returned them.
pub type QueueUrls = HashMap<String, String>;

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Creates every resource of `spec` that does not exist yet; returns the queue URLs.
/// Creates each CloudFront distribution of the stack on the emulator (a stand-in origin: locally the gateway serves
/// the CDN's paths) and records its emulator id, so that invalidations are recorded there.
pub async fn provision_distributions(sdk: &aws_config::SdkConfig, spec: &mut StackSpec) -> Result<()> {
    use aws_sdk_cloudfront::types::{
        CustomOriginConfig, DefaultCacheBehavior, DistributionConfig, Origin, OriginProtocolPolicy, Origins,
        ViewerProtocolPolicy,
    };
    let cf = aws_sdk_cloudfront::Client::new(sdk);
    let err = |what: &str, e: &dyn std::error::Error| anyhow::anyhow!("{what}: {}", e);
    let existing = cf
        .list_distributions()
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("listing distributions: {}", chain(&e)))?;
    let existing: Vec<(String, String)> = existing
        .distribution_list()
        .map(|l| l.items())
        .unwrap_or_default()
        .iter()
        .map(|d| (d.comment().to_string(), d.id().to_string()))
        .collect();
    for (name, emulator_id) in &mut spec.distributions {
        // A stack started again with the same prefix (a test's second stack) finds its distribution.
        if let Some((_, id)) = existing.iter().find(|(comment, _)| comment == name) {
            *emulator_id = Some(id.clone());
            continue;
        }
        let config = DistributionConfig::builder()
            .caller_reference(name.clone())
            .comment(name.clone())
            .enabled(true)
            .origins(
                Origins::builder()
                    .quantity(1)
                    .items(
                        Origin::builder()
                            .id("packager")
                            .domain_name("packager.local.example.com")
                            .custom_origin_config(
                                CustomOriginConfig::builder()
                                    .http_port(80)
                                    .https_port(443)
                                    .origin_protocol_policy(OriginProtocolPolicy::HttpsOnly)
                                    .build()
                                    .map_err(|e| err("origin", &e))?,
                            )
                            .build()
                            .map_err(|e| err("origin", &e))?,
                    )
                    .build()
                    .map_err(|e| err("origins", &e))?,
            )
            .default_cache_behavior(
                DefaultCacheBehavior::builder()
                    .target_origin_id("packager")
                    .viewer_protocol_policy(ViewerProtocolPolicy::RedirectToHttps)
                    .cache_policy_id("4135ea2d-6df8-44a3-9df3-4b5a84be39ad")
                    .build()
                    .map_err(|e| err("cache behaviour", &e))?,
            )
            .build()
            .map_err(|e| err("distribution", &e))?;
        let out = cf
            .create_distribution()
            .distribution_config(config)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("creating distribution {name}: {}", chain(&e)))?;
        let id = out.distribution().map(|d| d.id().to_string()).unwrap_or_default();
        info!(distribution = %name, id = %id, "CloudFront distribution created on the emulator");
        *emulator_id = Some(id);
    }
    Ok(())
}

pub async fn provision(sdk: &aws_config::SdkConfig, spec: &StackSpec) -> Result<QueueUrls> {
    let urls = provision_queues(&aws_sdk_sqs::Client::new(sdk), spec).await?;
    provision_tables(&aws_sdk_dynamodb::Client::new(sdk), spec).await?;
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(sdk).force_path_style(true).build());
    provision_buckets(&s3, spec).await?;
    let events = aws_sdk_eventbridge::Client::new(sdk);
    for bus in &spec.event_buses {
        if events.describe_event_bus().name(bus).send().await.is_err() {
            events
                .create_event_bus()
                .name(bus)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("creating event bus {bus}: {}", chain(&e)))?;
            info!(bus = %bus, "event bus created");
        }
    }
    let kms = aws_sdk_kms::Client::new(sdk);
    for alias in &spec.kms_aliases {
        let exists = kms.describe_key().key_id(alias).send().await.is_ok();
        if !exists {
            let key = kms
                .create_key()
                .description(format!("content keys ({alias})"))
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("creating KMS key for {alias}: {}", chain(&e)))?;
            let id = key.key_metadata.map(|m| m.key_id).unwrap_or_default();
            kms.create_alias()
                .alias_name(alias)
                .target_key_id(&id)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("creating KMS alias {alias}: {}", chain(&e)))?;
            info!(alias = %alias, "KMS key created");
        }
    }
    Ok(urls)
}

async fn provision_queues(sqs: &aws_sdk_sqs::Client, spec: &StackSpec) -> Result<QueueUrls> {
    let mut urls = QueueUrls::new();
    // Dead-letter queues (no redrive of their own) first, so redrive policies can name them.
    let mut ordered: Vec<_> = spec.queues.iter().collect();
    ordered.sort_by_key(|q| q.redrive.is_some());
    for q in ordered {
        let mut attrs = HashMap::new();
        attrs.insert(QueueAttributeName::VisibilityTimeout, q.visibility_timeout.to_string());
        if let Some(r) = q.retention {
            attrs.insert(QueueAttributeName::MessageRetentionPeriod, r.to_string());
        }
        if let Some((dlq, max)) = &q.redrive {
            let dlq_name = &spec
                .queue(dlq)
                .with_context(|| format!("dead-letter queue {dlq}"))?
                .name;
            attrs.insert(
                QueueAttributeName::RedrivePolicy,
                serde_json::json!({"deadLetterTargetArn": spec.queue_arn(dlq_name), "maxReceiveCount": max})
                    .to_string(),
            );
        }
        let url = match sqs.get_queue_url().queue_name(&q.name).send().await {
            Ok(out) => {
                let url = out.queue_url.unwrap_or_default();
                sqs.set_queue_attributes()
                    .queue_url(&url)
                    .set_attributes(Some(attrs))
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("updating queue {}: {}", q.name, chain(&e)))?;
                url
            }
            Err(_) => {
                let out = sqs
                    .create_queue()
                    .queue_name(&q.name)
                    .set_attributes(Some(attrs))
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("creating queue {}: {}", q.name, chain(&e)))?;
                info!(queue = %q.name, "queue created");
                out.queue_url.unwrap_or_default()
            }
        };
        urls.insert(q.logical_id.clone(), url);
    }
    Ok(urls)
}

fn key_schema(keys: &[KeyElement]) -> Result<Vec<KeySchemaElement>> {
    keys.iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(&k.name)
                .key_type(if k.hash { KeyType::Hash } else { KeyType::Range })
                .build()
                .context("key schema")
        })
        .collect()
}

async fn provision_tables(ddb: &aws_sdk_dynamodb::Client, spec: &StackSpec) -> Result<()> {
    for t in &spec.tables {
        if ddb.describe_table().table_name(&t.name).send().await.is_ok() {
            continue;
        }
        let mut req = ddb
            .create_table()
            .table_name(&t.name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(key_schema(&t.keys)?));
        for (name, ty) in &t.attributes {
            req = req.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::from(ty.as_str()))
                    .build()
                    .context("attribute definition")?,
            );
        }
        for g in &t.gsis {
            req = req.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(&g.name)
                    .set_key_schema(Some(key_schema(&g.keys)?))
                    .projection(Projection::builder().projection_type(ProjectionType::All).build())
                    .build()
                    .context("global secondary index")?,
            );
        }
        req.send()
            .await
            .map_err(|e| anyhow::anyhow!("creating table {}: {}", t.name, chain(&e)))?;
        if let Some(attr) = &t.ttl_attribute {
            ddb.update_time_to_live()
                .table_name(&t.name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(attr)
                        .enabled(true)
                        .build()
                        .context("ttl")?,
                )
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("enabling TTL on {}: {}", t.name, chain(&e)))?;
        }
        info!(table = %t.name, "table created");
    }
    Ok(())
}

async fn provision_buckets(s3: &aws_sdk_s3::Client, spec: &StackSpec) -> Result<()> {
    for b in &spec.buckets {
        if s3.head_bucket().bucket(&b.name).send().await.is_err() {
            s3.create_bucket()
                .bucket(&b.name)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("creating bucket {}: {}", b.name, chain(&e)))?;
            info!(bucket = %b.name, "bucket created");
        }
        if b.notifications.is_empty() {
            continue;
        }
        let mut conf = NotificationConfiguration::builder();
        for n in &b.notifications {
            let q = spec.queue(&n.queue).with_context(|| format!("queue {}", n.queue))?;
            conf = conf.queue_configurations(
                QueueConfiguration::builder()
                    .queue_arn(spec.queue_arn(&q.name))
                    .set_events(Some(n.events.iter().map(|e| Event::from(e.as_str())).collect()))
                    .build()
                    .context("queue configuration")?,
            );
        }
        s3.put_bucket_notification_configuration()
            .bucket(&b.name)
            .notification_configuration(conf.build())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("configuring notifications of {}: {}", b.name, chain(&e)))?;
    }
    Ok(())
}
