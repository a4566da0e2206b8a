//! The schema formats: parsing (with references), the canonical form that
//! decides whether two registrations are the same schema, and whether data
//! written with one schema can be read with another.
//!
//! Avro's rules are the Avro specification's resolution rules, checked by
//! `apache-avro`. Protobuf's are in [`crate::protobuf`]. JSON Schema has no
//! such specification and no crate checks it: [`json_can_read`] holds the
//! rules, one per kind of change, in the spirit of Confluent's `JsonSchema`
//! checker (a reader must accept every document the writer accepts).

use crate::records::SchemaType;
use apache_avro::schema_compatibility::SchemaCompatibility;
use serde_json::Value;

/// A schema that parsed, in the form its checks need.
#[derive(Debug, Clone)]
pub enum Parsed {
    /// An Avro schema.
    Avro(Box<apache_avro::Schema>),
    /// A JSON Schema document.
    Json(Value),
    /// A compiled Protobuf file.
    Protobuf(Box<crate::protobuf::Proto>),
}

/// A referenced schema: its name in the referring schema, its text, its type.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The name the referring schema uses.
    pub name: String,
    /// Its schema text.
    pub schema: String,
    /// Its format.
    pub schema_type: SchemaType,
}

/// Parses `text` as `schema_type`, its references (already resolved, in
/// dependency order) available by name; `Err` says why it is invalid.
pub fn parse(
    schema_type: SchemaType,
    text: &str,
    references: &[Resolved],
) -> Result<Parsed, String> {
    match schema_type {
        SchemaType::Avro => {
            let named: Vec<&str> = references.iter().map(|r| r.schema.as_str()).collect();
            let schema = if named.is_empty() {
                apache_avro::Schema::parse_str(text)
            } else {
                apache_avro::Schema::parse_str_with_list(text, &named).map(|(s, _)| s)
            }
            .map_err(|e| format!("Invalid schema: {e}"))?;
            Ok(Parsed::Avro(Box::new(schema)))
        }
        SchemaType::Json => {
            let value: Value =
                serde_json::from_str(text).map_err(|e| format!("Invalid JSON Schema: {e}"))?;
            match &value {
                Value::Object(_) | Value::Bool(_) => Ok(Parsed::Json(value)),
                _ => Err("Invalid JSON Schema: a schema is an object or a boolean".into()),
            }
        }
        SchemaType::Protobuf => Ok(Parsed::Protobuf(Box::new(crate::protobuf::parse(
            text, references,
        )?))),
    }
}

impl Parsed {
    /// The form two registrations are compared in: Avro's Parsing Canonical
    /// Form, JSON with keys sorted and no whitespace.
    pub fn canonical(&self) -> String {
        match self {
            Parsed::Avro(s) => s.canonical_form(),
            // serde_json's maps are ordered by key.
            Parsed::Json(v) => v.to_string(),
            Parsed::Protobuf(p) => p.canonical(),
        }
    }

    /// Why data written with `writer` cannot be read with `self` (empty:
    /// it can). Schemas of different formats never read each other.
    pub fn can_read(&self, writer: &Parsed) -> Vec<String> {
        match (self, writer) {
            (Parsed::Avro(reader), Parsed::Avro(writer)) => {
                match SchemaCompatibility::can_read(writer, reader) {
                    Ok(_) => Vec::new(),
                    Err(e) => vec![e.to_string()],
                }
            }
            (Parsed::Json(reader), Parsed::Json(writer)) => {
                let mut problems = Vec::new();
                json_can_read(reader, writer, "#", &mut problems);
                problems
            }
            (Parsed::Protobuf(reader), Parsed::Protobuf(writer)) => reader.can_read(writer),
            _ => vec!["the schema types differ".into()],
        }
    }
}

/// The JSON types a schema allows (`None`: any).
fn json_types(schema: &Value) -> Option<Vec<String>> {
    match schema.get("type") {
        Some(Value::String(t)) => Some(vec![t.clone()]),
        Some(Value::Array(ts)) => Some(
            ts.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect(),
        ),
        _ => None,
    }
}

fn number(schema: &Value, key: &str) -> Option<f64> {
    schema.get(key).and_then(Value::as_f64)
}

fn strings(schema: &Value, key: &str) -> Vec<String> {
    schema
        .get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether an object schema rejects properties it does not name.
fn closed(schema: &Value) -> bool {
    matches!(schema.get("additionalProperties"), Some(Value::Bool(false)))
}

/// Pushes to `problems` every way a document valid under `writer` could be
/// invalid under `reader`, at JSON pointer `at`. The rules, each a kind of
/// change from writer to reader:
///
/// | change | verdict |
/// |---|---|
/// | `true` / `{}` reader | compatible: it accepts everything |
/// | `false` reader, writer not `false` | incompatible |
/// | type narrowed (a writer type the reader lacks; `integer` -> `number` is a widening) | incompatible |
/// | `enum` value removed, or `enum` added | incompatible |
/// | `const` added or changed | incompatible |
/// | property added to `required` | incompatible |
/// | property removed from a closed object (`additionalProperties: false`) | incompatible |
/// | property added to a closed writer... read by an open reader | compatible |
/// | property added with a schema to an open reader | incompatible (a writer's extra property may not match it), unless the writer is closed |
/// | object opened (`additionalProperties: false` dropped) | compatible |
/// | object closed (`additionalProperties: false` added) with the writer open | incompatible |
/// | `maxLength`, `maximum`, `maxItems`, `maxProperties` lowered or added | incompatible |
/// | `minLength`, `minimum`, `minItems`, `minProperties` raised or added | incompatible |
/// | `pattern` added or changed | incompatible |
/// | `items` changed | checked recursively |
pub fn json_can_read(reader: &Value, writer: &Value, at: &str, problems: &mut Vec<String>) {
    match (reader, writer) {
        (Value::Bool(true), _) => return,
        (Value::Object(r), _) if r.is_empty() => return,
        (Value::Bool(false), Value::Bool(false)) => return,
        (Value::Bool(false), _) => {
            problems.push(format!("{at}: the reader accepts nothing"));
            return;
        }
        (_, Value::Bool(false)) => return,
        _ => {}
    }
    let writer_open_any =
        matches!(writer, Value::Bool(true)) || writer.as_object().is_some_and(|w| w.is_empty());
    if writer_open_any {
        problems.push(format!(
            "{at}: the writer accepted anything, the reader does not"
        ));
        return;
    }
    if let Some(reader_types) = json_types(reader) {
        match json_types(writer) {
            None => problems.push(format!("{at}: type {reader_types:?} added")),
            Some(writer_types) => {
                for t in &writer_types {
                    let widened = t == "integer" && reader_types.iter().any(|r| r == "number");
                    if !reader_types.contains(t) && !widened {
                        problems.push(format!("{at}: type {t:?} is no longer accepted"));
                    }
                }
            }
        }
    }
    match (
        reader.get("enum").and_then(Value::as_array),
        writer.get("enum").and_then(Value::as_array),
    ) {
        (Some(r), Some(w)) => {
            for v in w.iter().filter(|v| !r.contains(v)) {
                problems.push(format!("{at}: enum value {v} removed"));
            }
        }
        (Some(_), None) => problems.push(format!("{at}: enum added")),
        _ => {}
    }
    if let Some(c) = reader.get("const") {
        if writer.get("const") != Some(c) {
            problems.push(format!("{at}: const {c} added or changed"));
        }
    }
    for key in [
        "maxLength",
        "maximum",
        "exclusiveMaximum",
        "maxItems",
        "maxProperties",
    ] {
        if let Some(r) = number(reader, key) {
            if number(writer, key).is_none_or(|w| w > r) {
                problems.push(format!("{at}: {key} lowered or added"));
            }
        }
    }
    for key in [
        "minLength",
        "minimum",
        "exclusiveMinimum",
        "minItems",
        "minProperties",
    ] {
        if let Some(r) = number(reader, key) {
            if number(writer, key).is_none_or(|w| w < r) {
                problems.push(format!("{at}: {key} raised or added"));
            }
        }
    }
    if let Some(p) = reader.get("pattern") {
        if writer.get("pattern") != Some(p) {
            problems.push(format!("{at}: pattern added or changed"));
        }
    }
    let writer_required = strings(writer, "required");
    for name in strings(reader, "required") {
        if !writer_required.contains(&name) {
            problems.push(format!("{at}: property {name:?} is now required"));
        }
    }
    let empty = serde_json::Map::new();
    let reader_props = reader
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let writer_props = writer
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if closed(reader) && !closed(writer) {
        problems.push(format!(
            "{at}: the object no longer accepts other properties"
        ));
    }
    for (name, w) in writer_props {
        match reader_props.get(name) {
            Some(r) => json_can_read(r, w, &format!("{at}/properties/{name}"), problems),
            None if closed(reader) => {
                problems.push(format!(
                    "{at}: property {name:?} removed from a closed object"
                ));
            }
            None => {}
        }
    }
    for (name, r) in reader_props {
        if !writer_props.contains_key(name) && !closed(writer) {
            // The writer let any value through under this name.
            json_can_read(
                r,
                &Value::Bool(true),
                &format!("{at}/properties/{name}"),
                problems,
            );
        }
    }
    if let Some(r) = reader.get("items") {
        let w = writer.get("items").cloned().unwrap_or(Value::Bool(true));
        json_can_read(r, &w, &format!("{at}/items"), problems);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn avro(text: &str) -> Parsed {
        parse(SchemaType::Avro, text, &[]).unwrap()
    }

    fn record(fields: &str) -> String {
        format!(r#"{{"type":"record","name":"User","fields":[{fields}]}}"#)
    }

    /// (writer, reader, can the reader read the writer's data?)
    #[test]
    fn avro_resolution_rules() {
        let name = r#"{"name":"name","type":"string"}"#;
        let age = r#"{"name":"age","type":"int"}"#;
        let age_long = r#"{"name":"age","type":"long"}"#;
        let age_default = r#"{"name":"age","type":"int","default":0}"#;
        let cases = [
            (
                record(name),
                record(&format!("{name},{age_default}")),
                true,
                "field added with a default",
            ),
            (
                record(name),
                record(&format!("{name},{age}")),
                false,
                "field added without a default",
            ),
            (
                record(&format!("{name},{age}")),
                record(name),
                true,
                "field removed",
            ),
            (record(age), record(age_long), true, "int widened to long"),
            (record(age_long), record(age), false, "long narrowed to int"),
            (
                r#"{"type":"enum","name":"E","symbols":["A","B"]}"#.to_string(),
                r#"{"type":"enum","name":"E","symbols":["A","B","C"]}"#.to_string(),
                true,
                "enum symbol added",
            ),
            (
                r#"{"type":"enum","name":"E","symbols":["A","B","C"]}"#.to_string(),
                r#"{"type":"enum","name":"E","symbols":["A","B"]}"#.to_string(),
                false,
                "enum symbol removed",
            ),
            (
                r#""string""#.into(),
                r#""int""#.into(),
                false,
                "type changed",
            ),
        ];
        for (writer, reader, ok, what) in cases {
            let problems = avro(&reader).can_read(&avro(&writer));
            assert_eq!(problems.is_empty(), ok, "{what}: {problems:?}");
        }
    }

    #[test]
    fn avro_canonical_form_ignores_docs_and_whitespace() {
        let a = avro(
            r#"{"type":"record","name":"U","doc":"a user","fields":[{"name":"n","type":"string"}]}"#,
        );
        let b =
            avro(r#"{ "fields" : [ {"type":"string","name":"n"} ], "name":"U", "type":"record" }"#);
        assert_eq!(a.canonical(), b.canonical());
        assert!(parse(SchemaType::Avro, r#"{"type":"record"}"#, &[]).is_err());
        assert!(parse(SchemaType::Avro, "not json", &[]).is_err());
    }

    #[test]
    fn avro_references_resolve_by_name() {
        let address = Resolved {
            name: "Address".into(),
            schema:
                r#"{"type":"record","name":"Address","fields":[{"name":"city","type":"string"}]}"#
                    .into(),
            schema_type: SchemaType::Avro,
        };
        let user = record(r#"{"name":"home","type":"Address"}"#);
        assert!(
            parse(SchemaType::Avro, &user, &[]).is_err(),
            "unknown without its reference"
        );
        assert!(parse(SchemaType::Avro, &user, &[address]).is_ok());
    }

    /// (writer, reader, compatible?, the rule)
    #[test]
    fn json_schema_rules() {
        let obj = |props: Value, required: Value, closed: bool| {
            let mut s = json!({"type": "object", "properties": props, "required": required});
            if closed {
                s["additionalProperties"] = json!(false);
            }
            s
        };
        let cases = [
            (
                json!({"type": "string"}),
                json!({"type": "string"}),
                true,
                "unchanged",
            ),
            (
                json!({"type": "integer"}),
                json!({"type": "number"}),
                true,
                "integer widened to number",
            ),
            (
                json!({"type": "number"}),
                json!({"type": "integer"}),
                false,
                "number narrowed to integer",
            ),
            (
                json!({"type": "string"}),
                json!({"type": ["string", "null"]}),
                true,
                "type made nullable",
            ),
            (
                json!({"type": ["string", "null"]}),
                json!({"type": "string"}),
                false,
                "null no longer accepted",
            ),
            (
                json!({"enum": ["a", "b"]}),
                json!({"enum": ["a", "b", "c"]}),
                true,
                "enum value added",
            ),
            (
                json!({"enum": ["a", "b"]}),
                json!({"enum": ["a"]}),
                false,
                "enum value removed",
            ),
            (
                json!({"type": "string"}),
                json!({"type": "string", "maxLength": 5}),
                false,
                "maxLength added",
            ),
            (
                json!({"type": "string", "maxLength": 5}),
                json!({"type": "string", "maxLength": 9}),
                true,
                "maxLength raised",
            ),
            (
                json!({"type": "integer", "minimum": 0}),
                json!({"type": "integer", "minimum": 5}),
                false,
                "minimum raised",
            ),
            (
                json!({"type": "string"}),
                json!({"type": "string", "pattern": "^a"}),
                false,
                "pattern added",
            ),
            (
                obj(json!({"a": {"type": "string"}}), json!([]), false),
                obj(json!({"a": {"type": "string"}}), json!(["a"]), false),
                false,
                "property made required",
            ),
            (
                obj(json!({"a": {"type": "string"}}), json!(["a"]), false),
                obj(json!({"a": {"type": "string"}}), json!([]), false),
                true,
                "property no longer required",
            ),
            (
                obj(json!({"a": {"type": "string"}}), json!([]), true),
                obj(
                    json!({"a": {"type": "string"}, "b": {"type": "integer"}}),
                    json!([]),
                    false,
                ),
                true,
                "optional property added, the writer closed",
            ),
            (
                obj(json!({"a": {"type": "string"}}), json!([]), false),
                obj(
                    json!({"a": {"type": "string"}, "b": {"type": "integer"}}),
                    json!([]),
                    false,
                ),
                false,
                "optional property added, the writer open (its b could be anything)",
            ),
            (
                obj(json!({"a": {"type": "string"}, "b": {}}), json!([]), false),
                obj(json!({"a": {"type": "string"}}), json!([]), true),
                false,
                "property removed from a closed reader",
            ),
            (
                obj(json!({"a": {"type": "string"}, "b": {}}), json!([]), false),
                obj(json!({"a": {"type": "string"}}), json!([]), false),
                true,
                "property removed, the reader open",
            ),
            (
                obj(json!({"a": {"type": "string"}}), json!([]), true),
                obj(json!({"a": {"type": "string"}}), json!([]), false),
                true,
                "object opened",
            ),
            (
                obj(json!({"a": {"type": "string"}}), json!([]), false),
                obj(json!({"a": {"type": "string"}}), json!([]), true),
                false,
                "object closed",
            ),
            (
                obj(json!({"a": {"type": "integer"}}), json!([]), true),
                obj(json!({"a": {"type": "string"}}), json!([]), true),
                false,
                "a property's type changed",
            ),
            (
                json!({"type": "array", "items": {"type": "integer"}}),
                json!({"type": "array", "items": {"type": "number"}}),
                true,
                "items widened",
            ),
            (
                json!({"type": "array", "items": {"type": "string"}}),
                json!({"type": "array", "items": {"type": "integer"}}),
                false,
                "items changed",
            ),
            (
                json!({"type": "string"}),
                json!(true),
                true,
                "reader accepts anything",
            ),
            (
                json!(true),
                json!({"type": "string"}),
                false,
                "writer accepted anything",
            ),
        ];
        for (writer, reader, ok, what) in cases {
            let mut problems = Vec::new();
            json_can_read(&reader, &writer, "#", &mut problems);
            assert_eq!(problems.is_empty(), ok, "{what}: {problems:?}");
        }
    }
}
