//! Avro records in Confluent's wire format, with their schemas in a schema
//! registry (ringlog's or any Confluent-compatible one): what
//! confluent-kafka's `AvroSerializer` and `AvroDeserializer` do, for
//! ringlog-client producers and consumers (feature `avro`).
//!
//! The wire format: magic byte 0, the schema id (big-endian i32), then the
//! Avro binary encoding of the value. A serializer registers its schema under
//! its subject on first use (Kafka's convention: `TOPIC-value`) and caches the
//! id; a deserializer fetches each writer schema by id once and resolves the
//! data to its own reader schema if it has one.

use crate::error::{Error, ErrorKind, Result};
use apache_avro::Schema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Bytes before the Avro data: magic 0 and the schema id.
const HEADER_BYTES: usize = 5;

fn schema_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Schema, message)
}

/// A schema registry's REST API, with the schemas it answered cached.
pub struct SchemaRegistry {
    base: String,
    agent: ureq::Agent,
    by_id: Mutex<HashMap<i32, Arc<Schema>>>,
}

impl SchemaRegistry {
    /// The registry at `url` (`http://HOST:PORT`).
    pub fn new(url: &str) -> Arc<SchemaRegistry> {
        Arc::new(SchemaRegistry {
            base: url.trim_end_matches('/').to_string(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into(),
            by_id: Mutex::new(HashMap::new()),
        })
    }

    /// One blocking request; the JSON answer or the registry's error.
    fn call(&self, path: &str, body: Option<String>) -> Result<serde_json::Value> {
        let url = format!("{}{path}", self.base);
        let unreachable = |e: ureq::Error| {
            Error::new(
                ErrorKind::BrokerUnreachable,
                format!("schema registry {url}: {e}"),
            )
        };
        let mut response = match body {
            Some(b) => self
                .agent
                .post(&url)
                .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                .send(b),
            None => self.agent.get(&url).call(),
        }
        .map_err(unreachable)?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().map_err(unreachable)?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| schema_error(format!("schema registry {url} answered {status}: {e}")))?;
        if status >= 300 {
            return Err(schema_error(format!(
                "schema registry {url}: {} (error {})",
                value["message"].as_str().unwrap_or(&text),
                value["error_code"]
            )));
        }
        Ok(value)
    }

    /// Registers `schema` under `subject` (the same schema again gives the
    /// same id); its id.
    pub async fn register(self: &Arc<Self>, subject: &str, schema: &str) -> Result<i32> {
        let this = self.clone();
        let path = format!("/subjects/{}/versions", crate::url_segment(subject));
        let body = serde_json::json!({ "schema": schema }).to_string();
        let answer = blocking(move || this.call(&path, Some(body))).await?;
        answer["id"]
            .as_i64()
            .and_then(|id| i32::try_from(id).ok())
            .ok_or_else(|| schema_error(format!("registering answered {answer}")))
    }

    /// The schema with id `id` (fetched once).
    pub async fn schema(self: &Arc<Self>, id: i32) -> Result<Arc<Schema>> {
        if let Some(s) = self
            .by_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
        {
            return Ok(s.clone());
        }
        let this = self.clone();
        let answer = blocking(move || this.call(&format!("/schemas/ids/{id}"), None)).await?;
        let text = answer["schema"]
            .as_str()
            .ok_or_else(|| schema_error(format!("schema {id}: answered {answer}")))?;
        let schema = Arc::new(
            Schema::parse_str(text).map_err(|e| schema_error(format!("schema {id}: {e}")))?,
        );
        self.by_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, schema.clone());
        Ok(schema)
    }
}

/// Runs blocking HTTP off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::new(ErrorKind::Other, format!("schema registry call: {e}")))?
}

/// Writes values of one schema under one subject.
pub struct AvroSerializer {
    registry: Arc<SchemaRegistry>,
    subject: String,
    text: String,
    schema: Schema,
    id: OnceLock<i32>,
}

impl AvroSerializer {
    /// A serializer of `schema` (Avro JSON) under `subject`; the schema is
    /// checked here and registered on first use.
    pub fn new(
        registry: Arc<SchemaRegistry>,
        subject: &str,
        schema: &str,
    ) -> Result<AvroSerializer> {
        let parsed = Schema::parse_str(schema)
            .map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("Avro schema: {e}")))?;
        Ok(AvroSerializer {
            registry,
            subject: subject.to_string(),
            text: schema.to_string(),
            schema: parsed,
            id: OnceLock::new(),
        })
    }

    /// `value` in the wire format.
    pub async fn serialize<T: Serialize>(&self, value: &T) -> Result<Vec<u8>> {
        let id = match self.id.get() {
            Some(id) => *id,
            None => {
                let id = self.registry.register(&self.subject, &self.text).await?;
                *self.id.get_or_init(|| id)
            }
        };
        let value = apache_avro::to_value(value)
            .and_then(|v| v.resolve(&self.schema))
            .map_err(|e| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!("not a value of the schema: {e}"),
                )
            })?;
        let mut out = Vec::with_capacity(64);
        out.push(0);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend(
            apache_avro::to_avro_datum(&self.schema, value)
                .map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("encoding: {e}")))?,
        );
        Ok(out)
    }
}

/// Reads values in the wire format, whatever schema wrote them.
pub struct AvroDeserializer {
    registry: Arc<SchemaRegistry>,
    reader: Option<Schema>,
}

impl AvroDeserializer {
    /// A deserializer that reads each value as its writer schema wrote it,
    /// or resolved to `reader_schema` (Avro JSON) when given.
    pub fn new(
        registry: Arc<SchemaRegistry>,
        reader_schema: Option<&str>,
    ) -> Result<AvroDeserializer> {
        let reader = reader_schema
            .map(Schema::parse_str)
            .transpose()
            .map_err(|e| Error::new(ErrorKind::InvalidArgument, format!("Avro schema: {e}")))?;
        Ok(AvroDeserializer { registry, reader })
    }

    /// The value in `bytes`.
    pub async fn deserialize<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        let corrupt = |why: String| Error::new(ErrorKind::CorruptRecord, why);
        let (Some(&0), Some(id)) = (bytes.first(), bytes.get(1..HEADER_BYTES)) else {
            return Err(corrupt(
                "not the schema registry's wire format (magic byte 0, schema id)".into(),
            ));
        };
        let id = i32::from_be_bytes([id[0], id[1], id[2], id[3]]);
        let writer = self.registry.schema(id).await?;
        let mut rest = &bytes[HEADER_BYTES..];
        let value = apache_avro::from_avro_datum(&writer, &mut rest, self.reader.as_ref())
            .map_err(|e| corrupt(format!("decoding with schema {id}: {e}")))?;
        apache_avro::from_value(&value).map_err(|e| corrupt(format!("schema {id}: {e}")))
    }
}
