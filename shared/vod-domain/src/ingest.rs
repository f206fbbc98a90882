//! Ingest notifications: turns S3 event notification bodies (as delivered through SQS, by AWS or by emulators that
//! omit optional fields and form-encode keys) into `ObjectCreated` facts.
use serde::Deserialize;

use crate::error::DomainError;

/// An object that appeared in the upload bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectCreated {
    pub bucket: String,
    /// The decoded object key.
    pub key: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
}

// Lenient mirror of the S3 event schema: every field optional, unknown fields ignored.
#[derive(Deserialize)]
struct Notification {
    #[serde(default, rename = "Records")]
    records: Option<Vec<Record>>,
    #[serde(default, rename = "Event")]
    event: Option<String>,
}

#[derive(Deserialize)]
struct Record {
    #[serde(default, rename = "eventName")]
    event_name: Option<String>,
    #[serde(default)]
    s3: Option<S3Entity>,
}

#[derive(Deserialize)]
struct S3Entity {
    #[serde(default)]
    bucket: Option<S3Bucket>,
    #[serde(default)]
    object: Option<S3Object>,
}

#[derive(Deserialize)]
struct S3Bucket {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct S3Object {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default, rename = "eTag")]
    etag: Option<String>,
}

/// Decodes an S3 event key: keys arrive form-encoded (`+` for space, `%XX` escapes).
pub fn decode_key(raw: &str) -> Result<String, DomainError> {
    let plus_decoded = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_decoded)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| DomainError::invalid(format!("object key {raw:?} is not valid UTF-8")))
}

/// Parses one notification body. Test events (`s3:TestEvent`) and non-create events yield nothing; a body that is
/// not an S3 notification at all is an error (it will be retried and end in the dead-letter queue).
pub fn parse_notification(body: &str) -> Result<Vec<ObjectCreated>, DomainError> {
    let n: Notification = serde_json::from_str(body)
        .map_err(|e| DomainError::invalid(format!("message is not an S3 event notification: {e}")))?;
    if n.event.as_deref() == Some("s3:TestEvent") {
        return Ok(Vec::new());
    }
    let records = n
        .records
        .ok_or_else(|| DomainError::invalid("S3 event notification has no Records"))?;
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        if let Some(name) = &r.event_name {
            if !name.starts_with("ObjectCreated") && !name.starts_with("s3:ObjectCreated") {
                continue;
            }
        }
        let s3 =
            r.s3.ok_or_else(|| DomainError::invalid("S3 event record without s3 entity"))?;
        let bucket = s3
            .bucket
            .and_then(|b| b.name)
            .ok_or_else(|| DomainError::invalid("S3 event record without bucket name"))?;
        let object = s3
            .object
            .ok_or_else(|| DomainError::invalid("S3 event record without object"))?;
        let raw_key = object
            .key
            .ok_or_else(|| DomainError::invalid("S3 event record without object key"))?;
        out.push(ObjectCreated {
            bucket,
            key: decode_key(&raw_key)?,
            size: object.size,
            etag: object.etag.map(|e| e.trim_matches('"').to_string()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_form_encoded_keys() {
        assert_eq!(decode_key("my+clip%281%29.mp4").unwrap(), "my clip(1).mp4");
        assert_eq!(decode_key("a%2Bb.mp4").unwrap(), "a+b.mp4");
        assert!(decode_key("%FF%FE").is_err());
    }

    #[test]
    fn parses_aws_and_sparse_records() {
        let aws = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put",
            "s3":{"bucket":{"name":"up","arn":"arn:aws:s3:::up"},"object":{"key":"uploads/x/a+b.mp4","size":12,"eTag":"abc"}}}]}"#;
        let got = parse_notification(aws).unwrap();
        assert_eq!(
            got,
            vec![ObjectCreated {
                bucket: "up".into(),
                key: "uploads/x/a b.mp4".into(),
                size: Some(12),
                etag: Some("abc".into())
            }]
        );
        let sparse = r#"{"Records":[{"s3":{"bucket":{"name":"up"},"object":{"key":"k"}}}]}"#;
        assert_eq!(parse_notification(sparse).unwrap()[0].size, None);
        let removed =
            r#"{"Records":[{"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"up"},"object":{"key":"k"}}}]}"#;
        assert!(parse_notification(removed).unwrap().is_empty());
        let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"up"}"#;
        assert!(parse_notification(test_event).unwrap().is_empty());
        assert!(parse_notification("not json").is_err());
        assert!(parse_notification(r#"{"Records":[{"s3":{}}]}"#).is_err());
    }
}
