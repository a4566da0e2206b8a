//! The records of the `_schemas` topic, in Confluent Schema Registry's own
//! key and value JSON, so that a `_schemas` topic copied from Confluent (or
//! Karapace) reads here as it is, and one written here reads there.
//!
//! Keys (their field order is Confluent's: compaction compares key bytes):
//!
//! ```text
//! {"keytype":"SCHEMA","subject":S,"version":V,"magic":1}   -> a schema version
//! {"keytype":"CONFIG","subject":S|null,"magic":0}           -> {"compatibilityLevel":L}
//! {"keytype":"MODE","subject":S|null,"magic":0}             -> {"mode":M}
//! {"keytype":"DELETE_SUBJECT","subject":S,"magic":0}        -> {"subject":S,"version":V}
//! {"keytype":"CLEAR_SUBJECT","subject":S,"magic":0}         -> {"subject":S}
//! {"keytype":"NOOP","magic":0}                              -> anything
//! ```
//!
//! A null value deletes: a SCHEMA tombstone removes that version for good,
//! a CONFIG or MODE tombstone removes the setting.

use serde::{Deserialize, Serialize};

/// A schema's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchemaType {
    /// Apache Avro.
    Avro,
    /// JSON Schema.
    Json,
    /// Protocol Buffers.
    Protobuf,
}

impl SchemaType {
    /// The name in the REST API (`AVRO`, `JSON`, `PROTOBUF`).
    pub fn name(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }

    /// The type for a REST name; `None` for an unknown one.
    pub fn parse(name: &str) -> Option<SchemaType> {
        match name {
            "AVRO" => Some(SchemaType::Avro),
            "JSON" => Some(SchemaType::Json),
            "PROTOBUF" => Some(SchemaType::Protobuf),
            _ => None,
        }
    }

    fn is_avro(&self) -> bool {
        *self == SchemaType::Avro
    }
}

/// A reference from a schema to another subject's version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Reference {
    /// The name the referring schema uses (an Avro type name, a JSON `$ref`,
    /// a `.proto` import path).
    pub name: String,
    /// The subject holding it.
    pub subject: String,
    /// Its version there.
    pub version: i32,
}

/// A decoded `_schemas` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A subject's version.
    Schema {
        /// Subject.
        subject: String,
        /// Version.
        version: i32,
    },
    /// Compatibility level, global (`None`) or of a subject.
    Config(Option<String>),
    /// Mode, global (`None`) or of a subject.
    Mode(Option<String>),
    /// Every version of a subject up to one is soft-deleted.
    DeleteSubject(String),
    /// Every soft-deleted version of a subject is gone for good.
    ClearSubject(String),
    /// Nothing (a marker other registries write).
    Noop,
}

#[derive(Serialize, Deserialize)]
struct RawKey {
    keytype: String,
    #[serde(default, skip_serializing_if = "Absent::is_absent")]
    subject: Absent<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<i32>,
    magic: i32,
}

/// A field that may be missing, null or set, serialized only when present.
#[derive(Default, Serialize, Deserialize)]
#[serde(transparent)]
struct Absent<T>(Option<T>);

impl<T> Absent<T> {
    fn is_absent(&self) -> bool {
        self.0.is_none()
    }
}

impl Key {
    /// The key's bytes as Confluent writes them.
    pub fn encode(&self) -> Vec<u8> {
        let (keytype, subject, version, magic) = match self {
            Key::Schema { subject, version } => {
                ("SCHEMA", Some(Some(subject.clone())), Some(*version), 1)
            }
            Key::Config(s) => ("CONFIG", Some(s.clone()), None, 0),
            Key::Mode(s) => ("MODE", Some(s.clone()), None, 0),
            Key::DeleteSubject(s) => ("DELETE_SUBJECT", Some(Some(s.clone())), None, 0),
            Key::ClearSubject(s) => ("CLEAR_SUBJECT", Some(Some(s.clone())), None, 0),
            Key::Noop => ("NOOP", None, None, 0),
        };
        let raw = RawKey {
            keytype: keytype.into(),
            subject: Absent(subject),
            version,
            magic,
        };
        serde_json::to_vec(&raw).unwrap_or_default()
    }

    /// A key from its bytes; `Err` says why it is not one this registry
    /// knows (such records are skipped, as Confluent skips them).
    pub fn decode(bytes: &[u8]) -> Result<Key, String> {
        let raw: RawKey = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let subject = raw.subject.0.flatten();
        let named =
            |s: Option<String>| s.ok_or_else(|| format!("{} key without a subject", raw.keytype));
        Ok(match raw.keytype.as_str() {
            "SCHEMA" => Key::Schema {
                subject: named(subject)?,
                version: raw.version.ok_or("SCHEMA key without a version")?,
            },
            "CONFIG" => Key::Config(subject),
            "MODE" => Key::Mode(subject),
            "DELETE_SUBJECT" => Key::DeleteSubject(named(subject)?),
            "CLEAR_SUBJECT" => Key::ClearSubject(named(subject)?),
            "NOOP" => Key::Noop,
            other => return Err(format!("unknown key type {other:?}")),
        })
    }
}

/// The value of a SCHEMA record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaValue {
    /// Subject.
    pub subject: String,
    /// Version in the subject.
    pub version: i32,
    /// Global id.
    pub id: i32,
    /// Format; absent means Avro.
    #[serde(
        rename = "schemaType",
        default = "avro",
        skip_serializing_if = "SchemaType::is_avro"
    )]
    pub schema_type: SchemaType,
    /// References to other subjects' versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
    /// The schema text as registered.
    pub schema: String,
    /// Soft-deleted.
    #[serde(default)]
    pub deleted: bool,
}

fn avro() -> SchemaType {
    SchemaType::Avro
}

/// The value of a CONFIG record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigValue {
    /// The level's name (`BACKWARD`, ...).
    #[serde(rename = "compatibilityLevel")]
    pub compatibility_level: String,
}

/// The value of a MODE record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeValue {
    /// `READWRITE`, `READONLY` or `IMPORT`.
    pub mode: String,
}

/// The value of a DELETE_SUBJECT record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteSubjectValue {
    /// Subject.
    pub subject: String,
    /// Every version up to this one is soft-deleted.
    pub version: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_written_as_confluent_writes_them() {
        let k = Key::Schema {
            subject: "orders-value".into(),
            version: 3,
        };
        assert_eq!(
            String::from_utf8(k.encode()).unwrap(),
            r#"{"keytype":"SCHEMA","subject":"orders-value","version":3,"magic":1}"#
        );
        assert_eq!(
            String::from_utf8(Key::Config(None).encode()).unwrap(),
            r#"{"keytype":"CONFIG","subject":null,"magic":0}"#
        );
        assert_eq!(
            String::from_utf8(Key::Noop.encode()).unwrap(),
            r#"{"keytype":"NOOP","magic":0}"#
        );
        for k in [
            k,
            Key::Config(Some("s".into())),
            Key::Mode(None),
            Key::DeleteSubject("s".into()),
            Key::ClearSubject("s".into()),
            Key::Noop,
        ] {
            assert_eq!(Key::decode(&k.encode()).unwrap(), k);
        }
        assert!(Key::decode(b"{\"keytype\":\"SCHEMA\",\"magic\":1}").is_err());
        assert!(Key::decode(b"not json").is_err());
    }

    #[test]
    fn a_schema_value_reads_back_and_avro_is_the_default_type() {
        let v: SchemaValue = serde_json::from_str(
            r#"{"subject":"s","version":1,"id":7,"schema":"\"string\"","deleted":false}"#,
        )
        .unwrap();
        assert_eq!(v.schema_type, SchemaType::Avro);
        let text = serde_json::to_string(&v).unwrap();
        assert!(!text.contains("schemaType"), "{text}");
        let json = SchemaValue {
            schema_type: SchemaType::Json,
            ..v
        };
        let back: SchemaValue =
            serde_json::from_slice(&serde_json::to_vec(&json).unwrap()).unwrap();
        assert_eq!(back, json);
    }
}
