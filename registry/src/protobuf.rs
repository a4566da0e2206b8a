//! Protobuf schemas: `.proto` text compiled with `protox`, or the base64
//! serialized `FileDescriptorProto` Confluent's serializers send; the
//! compatibility rules between two of them; and decoding a payload.
//!
//! No crate checks Protobuf compatibility. The rules follow Confluent's
//! `ProtobufSchema` diff, which reasons about the wire format: messages are
//! matched by name (without the package), fields by number. A change is
//! incompatible when data written with one schema would be misread or
//! refused by the other:
//!
//! | change (writer -> reader) | verdict | why |
//! |---|---|---|
//! | message removed | incompatible | `MESSAGE_REMOVED` |
//! | field kind changed (scalar, message, map) | incompatible | `FIELD_KIND_CHANGED` |
//! | scalar changed across wire groups | incompatible | `FIELD_SCALAR_KIND_CHANGED` |
//! | scalar changed within a group (int32/int64/uint32/uint64/bool/enum; sint32/sint64; string/bytes; fixed32/sfixed32; fixed64/sfixed64) | compatible | same encoding |
//! | message field's type renamed | incompatible | `FIELD_NAMED_TYPE_CHANGED` |
//! | numeric field made repeated or not | incompatible | `FIELD_NUMERIC_LABEL_CHANGED` (packed encoding) |
//! | a field the reader requires is optional in the writer | incompatible | ringlog: the reader refuses data without it |
//! | required field added or removed | incompatible | `REQUIRED_FIELD_ADDED` / `_REMOVED` |
//! | field removed from a oneof that stays | incompatible | `ONEOF_FIELD_REMOVED` |
//! | several fields moved into one oneof | incompatible | `MULTIPLE_FIELDS_MOVED_TO_ONEOF` |
//! | a field moved into an existing oneof | incompatible | `FIELD_MOVED_TO_EXISTING_ONEOF` |
//! | field number reused with another kind | incompatible | one of the above |
//! | field, message, enum, enum value or oneof added; field renamed; package changed; one field moved into a new oneof; a oneof removed whole; a field moved out of a oneof | compatible | the wire carries numbers |

use crate::formats::Resolved;
use crate::records::SchemaType;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use prost::Message as _;
use prost_reflect::{
    Cardinality, DescriptorPool, DynamicMessage, FieldDescriptor, FileDescriptor, Kind,
    MessageDescriptor, OneofDescriptor,
};
use prost_types::FileDescriptorProto;
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};
use std::collections::{HashMap, HashSet};

/// A compiled Protobuf schema: its file, in a pool with everything it imports.
#[derive(Debug, Clone)]
pub struct Proto {
    file: FileDescriptor,
}

/// A file as registered: `.proto` text or a serialized descriptor.
enum Source {
    Text(String),
    Descriptor(Box<FileDescriptorProto>),
}

/// Which form `text` is in. `.proto` text never decodes as base64 (it has
/// spaces, quotes and semicolons), and a descriptor a client serialized
/// always has a name.
fn source(text: &str) -> Source {
    let descriptor = STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| FileDescriptorProto::decode(bytes.as_slice()).ok())
        .filter(|fd| !fd.name().is_empty());
    match descriptor {
        Some(fd) => Source::Descriptor(Box::new(fd)),
        None => Source::Text(text.to_string()),
    }
}

/// The schema and its references, by the name an `import` uses.
struct Sources(HashMap<String, Source>);

impl FileResolver for Sources {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.0.get(name) {
            Some(Source::Text(text)) => File::from_source(name, text),
            Some(Source::Descriptor(fd)) => {
                // Imported by the reference's name, whatever the client
                // called the file.
                let mut fd = (**fd).clone();
                fd.name = Some(name.to_string());
                Ok(File::from_file_descriptor_proto(fd))
            }
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// Compiles `text` with its references (dependencies first, each imported
/// by its reference name); `google/protobuf/*.proto` are built in.
pub fn parse(text: &str, references: &[Resolved]) -> Result<Proto, String> {
    if text.trim().is_empty() {
        return Err("Invalid schema: it is empty".into());
    }
    let mut files = HashMap::new();
    for r in references {
        if r.schema_type != SchemaType::Protobuf {
            return Err(format!(
                "Invalid schema: reference {:?} is a {} schema, not Protobuf",
                r.name,
                r.schema_type.name()
            ));
        }
        files.insert(r.name.clone(), source(&r.schema));
    }
    let root = source(text);
    let mut name = match &root {
        Source::Descriptor(fd) => fd.name().to_string(),
        Source::Text(_) => "schema.proto".to_string(),
    };
    while files.contains_key(&name) {
        name.insert(0, '_');
    }
    files.insert(name.clone(), root);
    let mut resolver = ChainFileResolver::new();
    resolver.add(Sources(files));
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true).include_source_info(false);
    compiler
        .open_file(&name)
        .map_err(|e| format!("Invalid schema: {e}"))?;
    let pool: DescriptorPool = compiler.descriptor_pool();
    let file = pool
        .get_file_by_name(&name)
        .ok_or_else(|| format!("Invalid schema: {name} did not compile"))?;
    Ok(Proto { file })
}

/// Every message of the file, nested ones too, by name without the package;
/// map entries are part of their field, not messages of their own.
fn messages(file: &FileDescriptor) -> Vec<(String, MessageDescriptor)> {
    fn walk(m: MessageDescriptor, out: &mut Vec<(String, MessageDescriptor)>) {
        if m.is_map_entry() {
            return;
        }
        for child in m.child_messages() {
            walk(child, out);
        }
        out.push((local(&m), m));
    }
    let mut out = Vec::new();
    for m in file.messages() {
        walk(m, &mut out);
    }
    out
}

/// A message's name without its package (a package change is compatible:
/// the wire does not carry it).
fn local(m: &MessageDescriptor) -> String {
    let package = m.package_name();
    match m.full_name().strip_prefix(package) {
        Some(rest) if !package.is_empty() => rest.trim_start_matches('.').to_string(),
        _ => m.full_name().to_string(),
    }
}

/// A field's oneof, unless it is proto3 `optional`'s synthetic one.
fn real_oneof(f: &FieldDescriptor) -> Option<OneofDescriptor> {
    f.containing_oneof().filter(|o| !o.is_synthetic())
}

/// Scalars that share an encoding: a reader can take one for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Varint,
    ZigZag,
    Bytes,
    Fixed32,
    Fixed64,
    Float,
    Double,
}

/// What a field holds, as far as the wire is concerned.
enum Shape {
    Scalar(Group),
    Message(MessageDescriptor),
    Map(FieldDescriptor, FieldDescriptor),
}

fn shape(f: &FieldDescriptor) -> Shape {
    match f.kind() {
        Kind::Message(m) if m.is_map_entry() => {
            Shape::Map(m.map_entry_key_field(), m.map_entry_value_field())
        }
        Kind::Message(m) => Shape::Message(m),
        kind => Shape::Scalar(group(&kind)),
    }
}

fn group(kind: &Kind) -> Group {
    match kind {
        Kind::Int32 | Kind::Int64 | Kind::Uint32 | Kind::Uint64 | Kind::Bool | Kind::Enum(_) => {
            Group::Varint
        }
        Kind::Sint32 | Kind::Sint64 => Group::ZigZag,
        Kind::String | Kind::Bytes | Kind::Message(_) => Group::Bytes,
        Kind::Fixed32 | Kind::Sfixed32 => Group::Fixed32,
        Kind::Fixed64 | Kind::Sfixed64 => Group::Fixed64,
        Kind::Float => Group::Float,
        Kind::Double => Group::Double,
    }
}

/// The walk of one check: the problems found and the message pairs done
/// (recursive types end).
struct Diff {
    problems: Vec<String>,
    seen: HashSet<(String, String)>,
}

impl Diff {
    fn problem(&mut self, kind: &str, at: &str, why: String) {
        self.problems.push(format!("{kind} at {at}: {why}"));
    }

    fn message(&mut self, reader: &MessageDescriptor, writer: &MessageDescriptor, at: &str) {
        if !self
            .seen
            .insert((writer.full_name().into(), reader.full_name().into()))
        {
            return;
        }
        // Fields that were independent in the writer and are mutually
        // exclusive in the reader: data setting both is misread.
        for oneof in reader.oneofs().filter(|o| !o.is_synthetic()) {
            let mut origins = HashSet::new();
            let mut moved = 0;
            for f in oneof.fields() {
                if let Some(w) = writer.get_field(f.number()) {
                    match real_oneof(&w) {
                        Some(o) => origins.insert(format!("oneof {}", o.name())),
                        None => {
                            moved += 1;
                            origins.insert(format!("field {}", w.number()))
                        }
                    };
                }
            }
            if origins.len() > 1 {
                let (kind, why) = if moved > 1 {
                    (
                        "MULTIPLE_FIELDS_MOVED_TO_ONEOF",
                        "several fields moved into it",
                    )
                } else {
                    ("FIELD_MOVED_TO_EXISTING_ONEOF", "a field moved into it")
                };
                self.problem(kind, &format!("{at}/{}", oneof.name()), why.into());
            }
        }
        // A oneof removed with all its members is a plain removal.
        let reader_oneofs: HashSet<String> = reader
            .oneofs()
            .filter(|o| !o.is_synthetic())
            .map(|o| o.name().to_string())
            .collect();
        let gone: HashSet<String> = writer
            .oneofs()
            .filter(|o| !o.is_synthetic() && !reader_oneofs.contains(o.name()))
            .filter(|o| o.fields().all(|f| reader.get_field(f.number()).is_none()))
            .map(|o| o.name().to_string())
            .collect();
        for w in writer.fields() {
            let here = format!("{at}/{}", w.number());
            match reader.get_field(w.number()) {
                None => match real_oneof(&w) {
                    Some(o) if !gone.contains(o.name()) => self.problem(
                        "ONEOF_FIELD_REMOVED",
                        &here,
                        format!(
                            "field {} of oneof {} is missing in the reader",
                            w.name(),
                            o.name()
                        ),
                    ),
                    Some(_) => {}
                    None if w.cardinality() == Cardinality::Required => self.problem(
                        "REQUIRED_FIELD_REMOVED",
                        &here,
                        format!("required field {} is missing in the reader", w.name()),
                    ),
                    None => {}
                },
                Some(r) => self.field(&r, &w, &here),
            }
        }
        for r in reader.fields() {
            if writer.get_field(r.number()).is_none() && r.cardinality() == Cardinality::Required {
                self.problem(
                    "REQUIRED_FIELD_ADDED",
                    &format!("{at}/{}", r.number()),
                    format!(
                        "the reader requires field {}, which the writer does not have",
                        r.name()
                    ),
                );
            }
        }
    }

    fn field(&mut self, reader: &FieldDescriptor, writer: &FieldDescriptor, at: &str) {
        self.shapes(shape(reader), shape(writer), at);
        if let Shape::Scalar(g) = shape(writer) {
            if g != Group::Bytes && reader.is_list() != writer.is_list() {
                self.problem(
                    "FIELD_NUMERIC_LABEL_CHANGED",
                    at,
                    format!(
                        "numeric field {} is repeated in one schema only",
                        reader.name()
                    ),
                );
            }
        }
        if reader.cardinality() == Cardinality::Required
            && writer.cardinality() != Cardinality::Required
        {
            self.problem(
                "REQUIRED_FIELD_ADDED",
                at,
                format!(
                    "the reader requires field {}, which the writer may leave out",
                    reader.name()
                ),
            );
        }
    }

    fn shapes(&mut self, reader: Shape, writer: Shape, at: &str) {
        match (reader, writer) {
            (Shape::Scalar(r), Shape::Scalar(w)) => {
                if r != w {
                    self.problem(
                        "FIELD_SCALAR_KIND_CHANGED",
                        at,
                        format!("{w:?} data read as {r:?}"),
                    );
                }
            }
            (Shape::Message(r), Shape::Message(w)) => {
                if local(&r) != local(&w) {
                    self.problem(
                        "FIELD_NAMED_TYPE_CHANGED",
                        at,
                        format!("message {} read as {}", local(&w), local(&r)),
                    );
                } else {
                    self.message(&r, &w, &format!("#/{}", local(&r)));
                }
            }
            (Shape::Map(rk, rv), Shape::Map(wk, wv)) => {
                self.shapes(shape(&rk), shape(&wk), &format!("{at}/key"));
                self.shapes(shape(&rv), shape(&wv), &format!("{at}/value"));
            }
            (r, w) => self.problem(
                "FIELD_KIND_CHANGED",
                at,
                format!("{} read as {}", shape_name(&w), shape_name(&r)),
            ),
        }
    }
}

fn shape_name(s: &Shape) -> &'static str {
    match s {
        Shape::Scalar(_) => "a scalar",
        Shape::Message(_) => "a message",
        Shape::Map(..) => "a map",
    }
}

/// Reads Confluent's message-index prefix: a zig-zag varint count, then
/// that many zig-zag varint indexes (a count of 0 means `[0]`, the first
/// message).
fn message_indexes(mut data: &[u8]) -> Result<(Vec<i64>, &[u8]), String> {
    fn next(data: &mut &[u8]) -> Result<i64, String> {
        let n = prost::encoding::decode_varint(data)
            .map_err(|_| "its message indexes are cut short".to_string())?;
        Ok(((n >> 1) as i64) ^ -((n & 1) as i64))
    }
    let count = next(&mut data)?;
    if !(0..=64).contains(&count) {
        return Err(format!("its message index count {count} is out of range"));
    }
    if count == 0 {
        return Ok((vec![0], data));
    }
    let mut indexes = Vec::new();
    for _ in 0..count {
        indexes.push(next(&mut data)?);
    }
    Ok((indexes, data))
}

impl Proto {
    /// The form two registrations are compared in: the file's descriptor
    /// without its file name, source positions or JSON names, so a `.proto`
    /// text and the descriptor a client compiled from it are one schema.
    pub fn canonical(&self) -> String {
        let mut fd = self.file.file_descriptor_proto().clone();
        fd.name = None;
        fd.source_code_info = None;
        fn clear(m: &mut prost_types::DescriptorProto) {
            for f in &mut m.field {
                f.json_name = None;
            }
            m.nested_type.iter_mut().for_each(clear);
        }
        fd.message_type.iter_mut().for_each(clear);
        STANDARD.encode(fd.encode_to_vec())
    }

    /// The file as a base64 serialized `FileDescriptorProto`
    /// (`?format=serialized`, what Confluent's deserializers ask for).
    pub fn serialized(&self) -> String {
        STANDARD.encode(self.file.file_descriptor_proto().encode_to_vec())
    }

    /// Why data written with `writer` cannot be read with `self` (empty:
    /// it can).
    pub fn can_read(&self, writer: &Proto) -> Vec<String> {
        let mut diff = Diff {
            problems: Vec::new(),
            seen: HashSet::new(),
        };
        let readers: HashMap<String, MessageDescriptor> =
            messages(&self.file).into_iter().collect();
        for (name, w) in messages(&writer.file) {
            match readers.get(&name) {
                Some(r) => diff.message(r, &w, &format!("#/{name}")),
                None => diff.problem(
                    "MESSAGE_REMOVED",
                    &format!("#/{name}"),
                    "the reader has no such message".into(),
                ),
            }
        }
        diff.problems
    }

    /// Checks data in Confluent's Protobuf wire format (after the magic
    /// byte and schema id): message indexes, then a message of the type
    /// they name that decodes.
    pub fn check_payload(&self, data: &[u8]) -> Result<(), String> {
        let (indexes, body) = message_indexes(data)?;
        // Each index picks a message of the file, then of the one before
        // (it runs per produced record: no list is built).
        let mut message: Option<MessageDescriptor> = None;
        for i in indexes {
            let next = usize::try_from(i).ok().and_then(|i| match &message {
                None => self.file.messages().nth(i),
                Some(m) => m.child_messages().nth(i),
            });
            message = Some(next.ok_or_else(|| format!("its message index {i} names no message"))?);
        }
        let message = message.ok_or("it names no message")?;
        DynamicMessage::decode(message.clone(), body)
            .map_err(|e| format!("it does not decode as {}: {e}", message.full_name()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto(text: &str) -> Proto {
        parse(text, &[]).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn p3(body: &str) -> String {
        format!("syntax = \"proto3\";\npackage shop;\n{body}")
    }

    fn p2(body: &str) -> String {
        format!("syntax = \"proto2\";\npackage shop;\n{body}")
    }

    /// One row per rule: (what changes, writer, reader, compatible). The
    /// reader is the new schema of a BACKWARD check.
    #[test]
    fn protobuf_compatibility_rules() {
        let base = "message Order { string id = 1; int64 cents = 2; }";
        let rows: &[(&str, String, String, bool)] = &[
            ("identical", p3(base), p3(base), true),
            (
                "field added",
                p3(base),
                p3("message Order { string id = 1; int64 cents = 2; bool paid = 3; }"),
                true,
            ),
            (
                "field removed",
                p3(base),
                p3("message Order { string id = 1; reserved 2; }"),
                true,
            ),
            (
                "field renamed (the wire carries numbers)",
                p3(base),
                p3("message Order { string id = 1; int64 amount = 2; }"),
                true,
            ),
            (
                "scalar widened within the varint group (int32 -> int64)",
                p3("message Order { int32 n = 1; }"),
                p3("message Order { int64 n = 1; }"),
                true,
            ),
            (
                "bool read as uint32 (varint group)",
                p3("message Order { bool n = 1; }"),
                p3("message Order { uint32 n = 1; }"),
                true,
            ),
            (
                "enum read as int32 (varint group)",
                p3("enum S { A = 0; } message Order { S s = 1; }"),
                p3("enum S { A = 0; } message Order { int32 s = 1; }"),
                true,
            ),
            (
                "string read as bytes",
                p3("message Order { string n = 1; }"),
                p3("message Order { bytes n = 1; }"),
                true,
            ),
            (
                "fixed32 read as sfixed32",
                p3("message Order { fixed32 n = 1; }"),
                p3("message Order { sfixed32 n = 1; }"),
                true,
            ),
            (
                "int32 read as sint32 (zig-zag differs)",
                p3("message Order { int32 n = 1; }"),
                p3("message Order { sint32 n = 1; }"),
                false,
            ),
            (
                "int64 read as double",
                p3("message Order { int64 n = 1; }"),
                p3("message Order { double n = 1; }"),
                false,
            ),
            (
                "string read as int32",
                p3("message Order { string n = 1; }"),
                p3("message Order { int32 n = 1; }"),
                false,
            ),
            (
                "field number reused with another type",
                p3(base),
                p3("message Order { string id = 1; string note = 2; }"),
                false,
            ),
            (
                "scalar field made a message",
                p3("message M { int32 v = 1; } message Order { int32 n = 1; }"),
                p3("message M { int32 v = 1; } message Order { M n = 1; }"),
                false,
            ),
            (
                "scalar field made a map",
                p3("message Order { string n = 1; }"),
                p3("message Order { map<string, string> n = 1; }"),
                false,
            ),
            (
                "map value type changed across groups",
                p3("message Order { map<string, int32> n = 1; }"),
                p3("message Order { map<string, string> n = 1; }"),
                false,
            ),
            (
                "map value widened within its group",
                p3("message Order { map<string, int32> n = 1; }"),
                p3("message Order { map<string, int64> n = 1; }"),
                true,
            ),
            (
                "message field's type renamed",
                p3("message A { int32 v = 1; } message Order { A a = 1; }"),
                p3("message A { int32 v = 1; } message B { int32 v = 1; } message Order { B a = 1; }"),
                false,
            ),
            (
                "incompatible change inside a nested message type",
                p3("message Order { message Line { int32 q = 1; } Line line = 1; }"),
                p3("message Order { message Line { string q = 1; } Line line = 1; }"),
                false,
            ),
            (
                "message removed",
                p3("message Order { int32 n = 1; } message Refund { int32 n = 1; }"),
                p3("message Order { int32 n = 1; }"),
                false,
            ),
            (
                "message added",
                p3("message Order { int32 n = 1; }"),
                p3("message Order { int32 n = 1; } message Refund { int32 n = 1; }"),
                true,
            ),
            (
                "package changed",
                p3(base),
                format!("syntax = \"proto3\";\npackage store;\n{base}"),
                true,
            ),
            (
                "enum value added",
                p3("enum S { A = 0; } message Order { S s = 1; }"),
                p3("enum S { A = 0; B = 1; } message Order { S s = 1; }"),
                true,
            ),
            (
                "enum value removed (unknown values are kept as numbers)",
                p3("enum S { A = 0; B = 1; } message Order { S s = 1; }"),
                p3("enum S { A = 0; } message Order { S s = 1; }"),
                true,
            ),
            (
                "numeric field made repeated (packed encoding)",
                p3("message Order { int32 n = 1; }"),
                p3("message Order { repeated int32 n = 1; }"),
                false,
            ),
            (
                "string field made repeated",
                p3("message Order { string n = 1; }"),
                p3("message Order { repeated string n = 1; }"),
                true,
            ),
            (
                "proto3 optional added (a synthetic oneof, not a real one)",
                p3("message Order { int32 n = 1; }"),
                p3("message Order { optional int32 n = 1; }"),
                true,
            ),
            (
                "required field added",
                p2("message Order { optional int32 n = 1; }"),
                p2("message Order { optional int32 n = 1; required int32 m = 2; }"),
                false,
            ),
            (
                "required field removed",
                p2("message Order { optional int32 n = 1; required int32 m = 2; }"),
                p2("message Order { optional int32 n = 1; }"),
                false,
            ),
            (
                "optional field made required",
                p2("message Order { optional string n = 1; }"),
                p2("message Order { required string n = 1; }"),
                false,
            ),
            (
                "required field made optional",
                p2("message Order { required string n = 1; }"),
                p2("message Order { optional string n = 1; }"),
                true,
            ),
            (
                "one field moved into a new oneof",
                p3("message Order { int32 n = 1; }"),
                p3("message Order { oneof pay { int32 n = 1; } }"),
                true,
            ),
            (
                "several fields moved into one oneof",
                p3("message Order { int32 n = 1; string m = 2; }"),
                p3("message Order { oneof pay { int32 n = 1; string m = 2; } }"),
                false,
            ),
            (
                "a field moved into an existing oneof",
                p3("message Order { int32 n = 1; oneof pay { string m = 2; } }"),
                p3("message Order { oneof pay { int32 n = 1; string m = 2; } }"),
                false,
            ),
            (
                "a oneof gains a new field",
                p3("message Order { oneof pay { string m = 2; } }"),
                p3("message Order { oneof pay { string m = 2; int32 k = 3; } }"),
                true,
            ),
            (
                "a field removed from a oneof that stays",
                p3("message Order { oneof pay { string m = 2; int32 k = 3; } }"),
                p3("message Order { oneof pay { string m = 2; } }"),
                false,
            ),
            (
                "a oneof removed whole",
                p3("message Order { int32 n = 1; oneof pay { string m = 2; int32 k = 3; } }"),
                p3("message Order { int32 n = 1; }"),
                true,
            ),
            (
                "fields moved out of a oneof",
                p3("message Order { oneof pay { string m = 2; int32 k = 3; } }"),
                p3("message Order { string m = 2; int32 k = 3; }"),
                true,
            ),
            (
                "a recursive message compares once",
                p3("message Node { int32 v = 1; Node next = 2; }"),
                p3("message Node { int64 v = 1; Node next = 2; string tag = 3; }"),
                true,
            ),
        ];
        for (what, writer, reader, compatible) in rows {
            let problems = proto(reader).can_read(&proto(writer));
            assert_eq!(
                problems.is_empty(),
                *compatible,
                "{what}: {problems:?}\nwriter: {writer}\nreader: {reader}"
            );
        }
    }

    #[test]
    fn text_and_serialized_descriptor_are_one_schema() {
        let text = p3("import \"google/protobuf/timestamp.proto\";\nmessage Order { string id = 1; google.protobuf.Timestamp at = 2; }");
        let compiled = proto(&text);
        // What a client sends: the descriptor under its own file name.
        let mut fd = compiled.file.file_descriptor_proto().clone();
        fd.name = Some("shop/order.proto".into());
        let sent = STANDARD.encode(fd.encode_to_vec());
        let received = proto(&sent);
        assert_eq!(received.canonical(), compiled.canonical());
        assert!(received.can_read(&compiled).is_empty());
        // Serialized again, it compiles to the same schema.
        assert_eq!(
            proto(&compiled.serialized()).canonical(),
            compiled.canonical()
        );
        assert_ne!(
            proto(&p3("message Order { string id = 1; }")).canonical(),
            compiled.canonical()
        );
    }

    #[test]
    fn references_are_imported_by_name_in_either_form() {
        let money = p3("message Money { int64 cents = 1; string currency = 2; }");
        let order = p3("import \"shop/money.proto\";\nmessage Order { Money total = 1; }");
        for form in [money.clone(), proto(&money).serialized()] {
            let refs = [Resolved {
                name: "shop/money.proto".into(),
                schema: form,
                schema_type: SchemaType::Protobuf,
            }];
            let parsed = parse(&order, &refs).unwrap();
            // A change inside the referenced message is seen through the field.
            let narrowed = p3("message Money { string cents = 1; string currency = 2; }");
            let refs2 = [Resolved {
                name: "shop/money.proto".into(),
                schema: narrowed,
                schema_type: SchemaType::Protobuf,
            }];
            let reader = parse(&order, &refs2).unwrap();
            assert!(!reader.can_read(&parsed).is_empty());
        }
        let missing = parse(&order, &[]).unwrap_err();
        assert!(missing.contains("shop/money.proto"), "{missing}");
    }

    #[test]
    fn invalid_schemas_are_refused_with_the_reason() {
        for bad in [
            "syntax = \"proto3\"; message {",
            "syntax = \"proto3\"; message A { Unknown u = 1; }",
            "syntax = \"proto3\"; message A { int32 a = 1; int32 b = 1; }",
            "not a schema at all",
            "",
        ] {
            let err = parse(bad, &[]).map(|_| ()).unwrap_err();
            assert!(err.starts_with("Invalid schema"), "{bad}: {err}");
        }
    }

    #[test]
    fn payloads_decode_by_message_index() {
        let p = proto(&p3(
            "message A { string s = 1; } message B { int32 n = 1; message C { bool b = 1; } }",
        ));
        // [0]: A with s = "hi".
        assert_eq!(p.check_payload(&[0, 0x0a, 2, b'h', b'i']), Ok(()));
        // Indexes [1, 0] (count 2, zig-zag): B.C with b = true.
        assert_eq!(p.check_payload(&[4, 2, 0, 0x08, 1]), Ok(()));
        // A string field cut short.
        assert!(p.check_payload(&[0, 0x0a, 5, b'h']).is_err());
        // A field with the wrong wire type (s as a varint).
        assert!(p.check_payload(&[0, 0x08, 1]).is_err());
        // Index out of range, count out of range, cut-off indexes.
        assert!(p.check_payload(&[2, 10]).is_err());
        assert!(p.check_payload(&[0x7f]).is_err());
        assert!(p.check_payload(&[4, 2]).is_err());
        assert!(p.check_payload(&[]).is_err());
    }
}
