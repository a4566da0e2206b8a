//! What the broker needs to validate produced records against the registry
//! (`--schema-validation id|payload` on a topic): which schema ids each
//! subject holds, and the schemas. The registry publishes it after every
//! read of `_schemas`; the broker's shards read it without waiting on the
//! registry, and ask it to read again only when a record names an id they
//! do not know (it may have just been registered).

use crate::formats::Parsed;
use crate::records::SchemaType;
use crate::state::State;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::{mpsc, oneshot};

/// Confluent's wire format: magic byte 0, then the schema id (big-endian
/// i32), then the encoded data.
pub const WIRE_HEADER_BYTES: usize = 5;

/// How a topic checks its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// Not at all.
    None,
    /// The value (and the key, if the topic's key subject exists) starts
    /// with the wire format and an id registered under the subject.
    Id,
    /// As `Id`, and the data decodes with that schema.
    Payload,
}

impl Validation {
    /// The setting's name.
    pub fn name(self) -> &'static str {
        match self {
            Validation::None => "none",
            Validation::Id => "id",
            Validation::Payload => "payload",
        }
    }

    /// A setting from its name.
    pub fn parse(name: &str) -> Option<Validation> {
        Some(match name {
            "none" => Validation::None,
            "id" => Validation::Id,
            "payload" => Validation::Payload,
            _ => return None,
        })
    }
}

#[derive(Default)]
struct Snapshot {
    /// Subject -> ids of its live versions.
    subjects: HashMap<String, HashSet<i32>>,
    /// Id -> the schema, when it parses and needs nothing else to decode.
    schemas: HashMap<i32, Arc<Parsed>>,
}

/// The registry's knowledge, shared with the broker's shards.
#[derive(Default)]
pub struct Known {
    snapshot: RwLock<Snapshot>,
    /// The registry's ear for "read `_schemas` again now".
    refresh: Mutex<Option<mpsc::UnboundedSender<oneshot::Sender<()>>>>,
}

/// Why a record was refused, or that its id is not known (yet).
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not known now: may be known after a refresh.
    UnknownId {
        /// The subject.
        subject: String,
        /// The id the record names.
        id: i32,
    },
    /// Wrong for good.
    Invalid(String),
}

impl Known {
    /// Rebuilds the snapshot from the registry's state.
    pub(crate) fn publish(&self, state: &State) {
        let mut snapshot = Snapshot::default();
        for (subject, ids) in state.live_ids() {
            snapshot.subjects.insert(subject.to_string(), ids);
        }
        for id in snapshot.subjects.values().flatten() {
            if let Ok(schema) = state.schema(*id) {
                // An Avro schema with references would need them again to
                // decode; a compiled Protobuf file holds its imports.
                if schema.schema_type == SchemaType::Avro && !schema.references.is_empty() {
                    continue;
                }
                if let Ok(parsed) = state.parse_stored(schema) {
                    snapshot.schemas.insert(*id, Arc::new(parsed));
                }
            }
        }
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = snapshot;
    }

    /// Called by the registry: where refresh requests go.
    pub(crate) fn listen(&self) -> mpsc::UnboundedReceiver<oneshot::Sender<()>> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.refresh.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        rx
    }

    /// Whether a registry publishes here.
    pub fn has_registry(&self) -> bool {
        self.refresh
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Asks the registry to read `_schemas` again and waits until it has.
    pub async fn refresh(&self) {
        let sender = self
            .refresh
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(sender) = sender {
            let (done, wait) = oneshot::channel();
            if sender.send(done).is_ok() {
                let _ = wait.await;
            }
        }
    }

    /// Whether the subject has a live version (a topic's key subject is
    /// checked only if it exists).
    pub fn has_subject(&self, subject: &str) -> bool {
        self.snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .subjects
            .contains_key(subject)
    }

    /// Checks one key or value against `subject`. A null passes (a
    /// tombstone carries no data to check).
    pub fn check(
        &self,
        subject: &str,
        data: Option<&[u8]>,
        how: Validation,
    ) -> Result<(), Refusal> {
        let Some(data) = data else { return Ok(()) };
        if how == Validation::None {
            return Ok(());
        }
        let (Some(&0), Some(id)) = (data.first(), data.get(1..WIRE_HEADER_BYTES)) else {
            return Err(Refusal::Invalid(format!(
                "it does not start with the schema registry's wire format (magic byte 0, then a 4-byte schema id) for subject {subject}"
            )));
        };
        let id = i32::from_be_bytes([id[0], id[1], id[2], id[3]]);
        let snapshot = self.snapshot.read().unwrap_or_else(|e| e.into_inner());
        if !snapshot
            .subjects
            .get(subject)
            .is_some_and(|ids| ids.contains(&id))
        {
            return Err(Refusal::UnknownId {
                subject: subject.to_string(),
                id,
            });
        }
        if how == Validation::Payload {
            let body = &data[WIRE_HEADER_BYTES..];
            match snapshot.schemas.get(&id).map(|p| &**p) {
                Some(Parsed::Avro(schema)) => {
                    let mut rest = body;
                    let value =
                        apache_avro::from_avro_datum(schema, &mut rest, None).map_err(|e| {
                            Refusal::Invalid(format!("it does not decode with schema {id}: {e}"))
                        })?;
                    // apache-avro reads a string cut short as a null rather
                    // than failing: what it read must also be a value of
                    // the schema.
                    if !value.validate(schema) {
                        return Err(Refusal::Invalid(format!(
                            "it ends before a value of schema {id} does"
                        )));
                    }
                    if !rest.is_empty() {
                        return Err(Refusal::Invalid(format!(
                            "{} bytes follow the data schema {id} decodes",
                            rest.len()
                        )));
                    }
                }
                Some(Parsed::Json(_)) => {
                    serde_json::from_slice::<serde_json::Value>(body).map_err(|e| {
                        Refusal::Invalid(format!("it is not JSON (schema {id}): {e}"))
                    })?;
                }
                Some(Parsed::Protobuf(proto)) => {
                    proto
                        .check_payload(body)
                        .map_err(|e| Refusal::Invalid(format!("{e} (schema {id})")))?;
                }
                // An Avro schema with references: its id was checked.
                None => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Candidate, Registration};

    #[test]
    fn records_are_checked_by_id_then_by_payload() {
        let mut state = State::default();
        let c = Candidate {
            schema_type: SchemaType::Avro,
            schema: r#"{"type":"record","name":"U","fields":[{"name":"n","type":"string"}]}"#
                .into(),
            references: Vec::new(),
        };
        let Registration::Append(id, records) = state.register("t-value", &c).unwrap() else {
            panic!("new")
        };
        for (k, v) in records {
            state.apply(&k.encode(), v.as_deref());
        }
        let known = Known::default();
        known.publish(&state);
        let mut good = vec![0];
        good.extend_from_slice(&id.to_be_bytes());
        good.extend_from_slice(&[6, b'a', b'd', b'a']); // "ada": zig-zag length 3
        assert_eq!(
            known.check("t-value", Some(&good), Validation::Payload),
            Ok(())
        );
        assert_eq!(known.check("t-value", None, Validation::Payload), Ok(()));
        let mut truncated = good.clone();
        truncated.pop();
        let verdict = known.check("t-value", Some(&truncated), Validation::Payload);
        assert!(matches!(verdict, Err(Refusal::Invalid(_))), "{verdict:?}");
        assert_eq!(
            known.check("t-value", Some(&truncated), Validation::Id),
            Ok(()),
            "id mode looks no further"
        );
        let mut extra = good.clone();
        extra.push(0);
        assert!(matches!(
            known.check("t-value", Some(&extra), Validation::Payload),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            known.check("t-value", Some(b"plain"), Validation::Id),
            Err(Refusal::Invalid(_))
        ));
        let mut other = vec![0, 0, 0, 0, 99];
        other.extend_from_slice(&good[5..]);
        assert_eq!(
            known.check("t-value", Some(&other), Validation::Id),
            Err(Refusal::UnknownId {
                subject: "t-value".into(),
                id: 99
            })
        );
        assert!(matches!(
            known.check("u-value", Some(&good), Validation::Id),
            Err(Refusal::UnknownId { .. })
        ));
    }
}
