//! The registry's state: what the `_schemas` topic says, applied record by
//! record, and the decisions of every operation over it. No I/O: an
//! operation that changes something answers with the records to append,
//! which become state once they are read back from the topic.

use crate::formats::{self, Parsed, Resolved};
use crate::records::{
    ConfigValue, DeleteSubjectValue, Key, ModeValue, Reference, SchemaType, SchemaValue,
};
use std::collections::{BTreeMap, HashMap, HashSet};

/// A failed request, as Confluent answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Confluent's error code (`40401`, ...).
    pub code: u32,
    /// What went wrong.
    pub message: String,
}

impl ApiError {
    /// An error with its status, code and message.
    pub fn new(status: u16, code: u32, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

/// Confluent's error codes.
pub mod code {
    /// Subject not found.
    pub const SUBJECT_NOT_FOUND: u32 = 40401;
    /// Version not found.
    pub const VERSION_NOT_FOUND: u32 = 40402;
    /// Schema not found.
    pub const SCHEMA_NOT_FOUND: u32 = 40403;
    /// The subject was soft-deleted.
    pub const SUBJECT_SOFT_DELETED: u32 = 40404;
    /// A permanent delete of a subject not soft-deleted first.
    pub const SUBJECT_NOT_SOFT_DELETED: u32 = 40405;
    /// The version was soft-deleted.
    pub const VERSION_SOFT_DELETED: u32 = 40406;
    /// A permanent delete of a version not soft-deleted first.
    pub const VERSION_NOT_SOFT_DELETED: u32 = 40407;
    /// No subject-level compatibility configured.
    pub const SUBJECT_LEVEL_COMPATIBILITY_NOT_CONFIGURED: u32 = 40408;
    /// No subject-level mode configured.
    pub const SUBJECT_LEVEL_MODE_NOT_CONFIGURED: u32 = 40409;
    /// Incompatible schema (Confluent answers 409 with code 409).
    pub const INCOMPATIBLE_SCHEMA: u32 = 409;
    /// Invalid schema.
    pub const INVALID_SCHEMA: u32 = 42201;
    /// Invalid version.
    pub const INVALID_VERSION: u32 = 42202;
    /// Invalid compatibility level.
    pub const INVALID_COMPATIBILITY_LEVEL: u32 = 42203;
    /// Invalid mode.
    pub const INVALID_MODE: u32 = 42204;
    /// Operation not permitted (the mode forbids it).
    pub const OPERATION_NOT_PERMITTED: u32 = 42205;
    /// A version another schema still references.
    pub const REFERENCE_EXISTS: u32 = 42206;
    /// Invalid subject name.
    pub const INVALID_SUBJECT: u32 = 42208;
    /// The backing store failed.
    pub const STORE_ERROR: u32 = 50001;
}

/// Compatibility levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// No check.
    None,
    /// The new schema reads data written with the latest.
    Backward,
    /// ... with every earlier one.
    BackwardTransitive,
    /// The latest reads data written with the new schema.
    Forward,
    /// ... every earlier one does.
    ForwardTransitive,
    /// Backward and forward with the latest.
    Full,
    /// Backward and forward with every earlier one.
    FullTransitive,
}

impl Level {
    /// The REST name.
    pub fn name(self) -> &'static str {
        match self {
            Level::None => "NONE",
            Level::Backward => "BACKWARD",
            Level::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Level::Forward => "FORWARD",
            Level::ForwardTransitive => "FORWARD_TRANSITIVE",
            Level::Full => "FULL",
            Level::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// A level from its REST name.
    pub fn parse(name: &str) -> Option<Level> {
        Some(match name {
            "NONE" => Level::None,
            "BACKWARD" => Level::Backward,
            "BACKWARD_TRANSITIVE" => Level::BackwardTransitive,
            "FORWARD" => Level::Forward,
            "FORWARD_TRANSITIVE" => Level::ForwardTransitive,
            "FULL" => Level::Full,
            "FULL_TRANSITIVE" => Level::FullTransitive,
            _ => return None,
        })
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive
        )
    }

    fn backward(self) -> bool {
        matches!(
            self,
            Level::Backward | Level::BackwardTransitive | Level::Full | Level::FullTransitive
        )
    }

    fn forward(self) -> bool {
        matches!(
            self,
            Level::Forward | Level::ForwardTransitive | Level::Full | Level::FullTransitive
        )
    }
}

/// The registry's default level, Confluent's.
pub const DEFAULT_LEVEL: Level = Level::Backward;

/// Modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Reads and writes.
    ReadWrite,
    /// Reads only.
    ReadOnly,
    /// Writes that keep their ids and versions (migrations).
    Import,
}

impl Mode {
    /// The REST name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::ReadWrite => "READWRITE",
            Mode::ReadOnly => "READONLY",
            Mode::Import => "IMPORT",
        }
    }

    /// A mode from its REST name.
    pub fn parse(name: &str) -> Option<Mode> {
        Some(match name {
            "READWRITE" => Mode::ReadWrite,
            "READONLY" => Mode::ReadOnly,
            "IMPORT" => Mode::Import,
            _ => return None,
        })
    }
}

/// One version of a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The schema's global id.
    pub id: i32,
    /// Soft-deleted.
    pub deleted: bool,
}

/// A schema by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    /// Format.
    pub schema_type: SchemaType,
    /// Text as first registered.
    pub schema: String,
    /// References.
    pub references: Vec<Reference>,
}

/// A schema to register, look up or check, as the REST body gives it.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Format.
    pub schema_type: SchemaType,
    /// Text.
    pub schema: String,
    /// References.
    pub references: Vec<Reference>,
}

/// A record to append to `_schemas`.
pub type Record = (Key, Option<Vec<u8>>);

/// Everything `_schemas` says.
#[derive(Debug, Default)]
pub struct State {
    subjects: BTreeMap<String, BTreeMap<i32, Version>>,
    schemas: BTreeMap<i32, Schema>,
    /// (type, canonical form, references) -> id.
    identities: HashMap<(SchemaType, String, Vec<Reference>), i32>,
    config: Option<Level>,
    subject_config: BTreeMap<String, Level>,
    mode: Option<Mode>,
    subject_mode: BTreeMap<String, Mode>,
    /// Records applied, for tests and logs.
    pub applied: u64,
}

/// What a register request comes to.
#[derive(Debug)]
pub enum Registration {
    /// Already registered under the subject: its id.
    Exists(i32),
    /// Append these; the schema gets this id.
    Append(i32, Vec<Record>),
}

fn to_json<T: serde::Serialize>(v: &T) -> Option<Vec<u8>> {
    serde_json::to_vec(v).ok()
}

impl State {
    /// Applies one record of the topic. Records this registry cannot read
    /// are skipped (logged), as Confluent skips them.
    pub fn apply(&mut self, key: &[u8], value: Option<&[u8]>) {
        self.applied += 1;
        let key = match Key::decode(key) {
            Ok(k) => k,
            Err(why) => {
                tracing::warn!("skipping a _schemas record: {why}");
                return;
            }
        };
        let skip = |what: &str, e: serde_json::Error| {
            tracing::warn!("skipping a _schemas {what} record: {e}");
        };
        match (key, value) {
            (Key::Schema { subject, version }, None) => {
                if let Some(versions) = self.subjects.get_mut(&subject) {
                    versions.remove(&version);
                    if versions.is_empty() {
                        self.subjects.remove(&subject);
                    }
                }
            }
            (Key::Schema { .. }, Some(v)) => match serde_json::from_slice::<SchemaValue>(v) {
                Ok(v) => self.apply_schema(v),
                Err(e) => skip("schema", e),
            },
            (Key::Config(subject), v) => {
                let level = match v.map(serde_json::from_slice::<ConfigValue>) {
                    None => None,
                    Some(Ok(c)) => Level::parse(&c.compatibility_level),
                    Some(Err(e)) => return skip("config", e),
                };
                set_setting(&mut self.config, &mut self.subject_config, subject, level);
            }
            (Key::Mode(subject), v) => {
                let mode = match v.map(serde_json::from_slice::<ModeValue>) {
                    None => None,
                    Some(Ok(m)) => Mode::parse(&m.mode),
                    Some(Err(e)) => return skip("mode", e),
                };
                set_setting(&mut self.mode, &mut self.subject_mode, subject, mode);
            }
            (Key::DeleteSubject(subject), Some(v)) => {
                match serde_json::from_slice::<DeleteSubjectValue>(v) {
                    Ok(d) => {
                        if let Some(versions) = self.subjects.get_mut(&subject) {
                            for (_, version) in versions.range_mut(..=d.version) {
                                version.deleted = true;
                            }
                        }
                    }
                    Err(e) => skip("delete-subject", e),
                }
            }
            (Key::ClearSubject(subject), Some(_)) => {
                if let Some(versions) = self.subjects.get_mut(&subject) {
                    versions.retain(|_, v| !v.deleted);
                    if versions.is_empty() {
                        self.subjects.remove(&subject);
                    }
                }
            }
            (Key::DeleteSubject(_) | Key::ClearSubject(_) | Key::Noop, _) => {}
        }
    }

    fn apply_schema(&mut self, v: SchemaValue) {
        let schema = Schema {
            schema_type: v.schema_type,
            schema: v.schema,
            references: v.references,
        };
        let identity = self.identity(&schema);
        self.identities.entry(identity).or_insert(v.id);
        self.schemas.entry(v.id).or_insert(schema);
        self.subjects.entry(v.subject).or_default().insert(
            v.version,
            Version {
                id: v.id,
                deleted: v.deleted,
            },
        );
    }

    /// What makes two registrations the same schema: the canonical form
    /// when the schema parses (it did when it was registered), its text
    /// otherwise.
    fn identity(&self, s: &Schema) -> (SchemaType, String, Vec<Reference>) {
        let text = self
            .parse_stored(s)
            .map(|p| p.canonical())
            .unwrap_or_else(|_| s.schema.clone());
        (s.schema_type, text, s.references.clone())
    }

    /// Parses a candidate with its references resolved from the registry.
    pub fn parse(&self, c: &Candidate) -> Result<Parsed, ApiError> {
        let mut resolved = Vec::new();
        self.resolve(&c.references, &mut resolved, 0)?;
        formats::parse(c.schema_type, &c.schema, &resolved)
            .map_err(|m| ApiError::new(422, code::INVALID_SCHEMA, m))
    }

    /// Parses a stored schema with its references.
    pub fn parse_stored(&self, s: &Schema) -> Result<Parsed, ApiError> {
        self.parse(&Candidate {
            schema_type: s.schema_type,
            schema: s.schema.clone(),
            references: s.references.clone(),
        })
    }

    /// The referenced schemas, dependencies first.
    fn resolve(
        &self,
        refs: &[Reference],
        out: &mut Vec<Resolved>,
        depth: usize,
    ) -> Result<(), ApiError> {
        if depth > 32 {
            return Err(ApiError::new(
                422,
                code::INVALID_SCHEMA,
                "references nest too deeply",
            ));
        }
        for r in refs {
            let schema = self
                .subjects
                .get(&r.subject)
                .and_then(|v| v.get(&r.version))
                .and_then(|v| self.schemas.get(&v.id))
                .ok_or_else(|| {
                    ApiError::new(
                        422,
                        code::INVALID_SCHEMA,
                        format!(
                            "Invalid schema: reference {:?} to subject {:?} version {} not found",
                            r.name, r.subject, r.version
                        ),
                    )
                })?;
            self.resolve(&schema.references, out, depth + 1)?;
            if !out.iter().any(|o| o.name == r.name) {
                out.push(Resolved {
                    name: r.name.clone(),
                    schema: schema.schema.clone(),
                    schema_type: schema.schema_type,
                });
            }
        }
        Ok(())
    }

    /// Subjects with a live version (or any version, with `deleted`).
    pub fn subjects(&self, deleted: bool) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(_, v)| deleted || v.values().any(|v| !v.deleted))
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// Every subject with a live version, with the schema ids of its live
    /// versions.
    pub fn live_ids(&self) -> impl Iterator<Item = (&str, HashSet<i32>)> + '_ {
        self.subjects.iter().filter_map(|(subject, versions)| {
            let ids: HashSet<i32> = versions
                .values()
                .filter(|v| !v.deleted)
                .map(|v| v.id)
                .collect();
            (!ids.is_empty()).then_some((subject.as_str(), ids))
        })
    }

    /// A subject's versions, or 40401.
    pub fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<i32>, ApiError> {
        let versions: Vec<i32> = self
            .subjects
            .get(subject)
            .map(|v| {
                v.iter()
                    .filter(|(_, v)| deleted || !v.deleted)
                    .map(|(n, _)| *n)
                    .collect()
            })
            .unwrap_or_default();
        if versions.is_empty() {
            return Err(subject_not_found(subject));
        }
        Ok(versions)
    }

    /// One version of a subject (`-1` or `latest`: the last live one).
    pub fn version(
        &self,
        subject: &str,
        version: &str,
        deleted: bool,
    ) -> Result<(i32, i32, &Schema), ApiError> {
        // Confluent checks the version's form before the subject.
        let wanted = match version {
            "latest" | "-1" => None,
            v => match v.parse::<i32>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    return Err(ApiError::new(
                        422,
                        code::INVALID_VERSION,
                        format!(
                            "The specified version '{v}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
                        ),
                    ))
                }
            },
        };
        let live = self.versions(subject, deleted)?;
        let number = wanted.unwrap_or_else(|| *live.last().unwrap_or(&0));
        if !live.contains(&number) {
            return Err(ApiError::new(
                404,
                code::VERSION_NOT_FOUND,
                format!("Version {number} not found."),
            ));
        }
        let id = self.subjects[subject][&number].id;
        Ok((number, id, &self.schemas[&id]))
    }

    /// A schema by id, or 40403.
    pub fn schema(&self, id: i32) -> Result<&Schema, ApiError> {
        self.schemas
            .get(&id)
            .ok_or_else(|| ApiError::new(404, code::SCHEMA_NOT_FOUND, "Schema not found"))
    }

    /// Every (subject, version) holding schema `id`.
    pub fn usages(&self, id: i32, deleted: bool) -> Vec<(String, i32)> {
        let mut out = Vec::new();
        for (subject, versions) in &self.subjects {
            for (n, v) in versions {
                if v.id == id && (deleted || !v.deleted) {
                    out.push((subject.clone(), *n));
                }
            }
        }
        out
    }

    /// Schema ids whose references name this subject's version.
    pub fn referenced_by(&self, subject: &str, version: i32) -> Vec<i32> {
        let mut ids: Vec<i32> = self
            .schemas
            .iter()
            .filter(|(id, s)| {
                !self.usages(**id, false).is_empty()
                    && s.references
                        .iter()
                        .any(|r| r.subject == subject && r.version == version)
            })
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The level in force for a subject.
    pub fn level(&self, subject: Option<&str>) -> Level {
        subject
            .and_then(|s| self.subject_config.get(s))
            .copied()
            .or(self.config)
            .unwrap_or(DEFAULT_LEVEL)
    }

    /// The configured level: global (with the default) or a subject's own.
    pub fn config(
        &self,
        subject: Option<&str>,
        default_to_global: bool,
    ) -> Result<Level, ApiError> {
        match subject {
            None => Ok(self.config.unwrap_or(DEFAULT_LEVEL)),
            Some(s) => match self.subject_config.get(s) {
                Some(l) => Ok(*l),
                None if default_to_global => Ok(self.level(None)),
                None => Err(ApiError::new(
                    404,
                    code::SUBJECT_LEVEL_COMPATIBILITY_NOT_CONFIGURED,
                    format!("Subject '{s}' does not have subject-level compatibility configured"),
                )),
            },
        }
    }

    /// The mode in force for a subject (or the global one).
    pub fn mode(&self, subject: Option<&str>) -> Mode {
        subject
            .and_then(|s| self.subject_mode.get(s))
            .copied()
            .or(self.mode)
            .unwrap_or(Mode::ReadWrite)
    }

    /// A subject's own mode, or 40409.
    pub fn subject_mode(&self, subject: &str) -> Result<Mode, ApiError> {
        self.subject_mode.get(subject).copied().ok_or_else(|| {
            ApiError::new(
                404,
                code::SUBJECT_LEVEL_MODE_NOT_CONFIGURED,
                format!("Subject '{subject}' does not have subject-level mode configured"),
            )
        })
    }

    fn writable(&self, subject: Option<&str>) -> Result<(), ApiError> {
        match self.mode(subject) {
            Mode::ReadOnly => Err(ApiError::new(
                422,
                code::OPERATION_NOT_PERMITTED,
                format!(
                    "Subject {} is in read-only mode",
                    subject.unwrap_or("(global)")
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The registered version of `c` under `subject`, if it is there.
    pub fn lookup(
        &self,
        subject: &str,
        c: &Candidate,
        deleted: bool,
    ) -> Result<(i32, i32), ApiError> {
        let parsed = self.parse(c)?;
        let identity = (c.schema_type, parsed.canonical(), c.references.clone());
        let versions = self.versions(subject, deleted)?;
        let id = self.identities.get(&identity).copied();
        versions
            .iter()
            .rev()
            .find(|n| Some(self.subjects[subject][n].id) == id)
            .map(|n| (*n, self.subjects[subject][n].id))
            .ok_or_else(|| ApiError::new(404, code::SCHEMA_NOT_FOUND, "Schema not found"))
    }

    /// Why `c` may not follow the subject's versions at `level` (empty:
    /// it may), checked against `against` (a version) or, by the level,
    /// the latest or every live version.
    pub fn incompatibilities(
        &self,
        subject: &str,
        c: &Candidate,
        against: Option<&str>,
        level: Level,
    ) -> Result<Vec<String>, ApiError> {
        let new = self.parse(c)?;
        let live: Vec<i32> = match self.versions(subject, false) {
            Ok(v) => v,
            Err(_) if against.is_none() => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let existing: Vec<i32> = match against {
            Some(v) => vec![self.version(subject, v, false)?.0],
            None if level.transitive() => live,
            None => live.last().copied().into_iter().collect(),
        };
        let mut problems = Vec::new();
        if level == Level::None {
            return Ok(problems);
        }
        for n in existing {
            let id = self.subjects[subject][&n].id;
            let old = self.parse_stored(&self.schemas[&id])?;
            if level.backward() {
                for p in new.can_read(&old) {
                    problems.push(format!(
                        "version {n}: the new schema cannot read its data: {p}"
                    ));
                }
            }
            if level.forward() {
                for p in old.can_read(&new) {
                    problems.push(format!(
                        "version {n}: it cannot read the new schema's data: {p}"
                    ));
                }
            }
        }
        Ok(problems)
    }

    /// Registers `c` under `subject`: its id if it is already there, or
    /// the records that register it (new version, existing or new id).
    pub fn register(&self, subject: &str, c: &Candidate) -> Result<Registration, ApiError> {
        validate_subject(subject)?;
        self.writable(Some(subject))?;
        let parsed = self.parse(c)?;
        let identity = (c.schema_type, parsed.canonical(), c.references.clone());
        let id = self.identities.get(&identity).copied();
        if let Some(id) = id {
            let live = self.versions(subject, false).unwrap_or_default();
            if live.iter().any(|n| self.subjects[subject][n].id == id) {
                return Ok(Registration::Exists(id));
            }
        }
        let level = self.level(Some(subject));
        let problems = self.incompatibilities(subject, c, None, level)?;
        if !problems.is_empty() {
            return Err(ApiError::new(
                409,
                code::INCOMPATIBLE_SCHEMA,
                format!(
                    "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]",
                    problems.join(", ")
                ),
            ));
        }
        let id = id.unwrap_or_else(|| self.schemas.keys().next_back().map_or(1, |m| m + 1));
        let version = self
            .subjects
            .get(subject)
            .and_then(|v| v.keys().next_back())
            .map_or(1, |v| v + 1);
        let value = SchemaValue {
            subject: subject.to_string(),
            version,
            id,
            schema_type: c.schema_type,
            references: c.references.clone(),
            schema: c.schema.clone(),
            deleted: false,
        };
        Ok(Registration::Append(
            id,
            vec![(
                Key::Schema {
                    subject: subject.to_string(),
                    version,
                },
                to_json(&value),
            )],
        ))
    }

    /// Deletes a subject: soft (every version marked) or, after that,
    /// permanent. Answers the versions deleted and the records.
    pub fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<(Vec<i32>, Vec<Record>), ApiError> {
        self.writable(Some(subject))?;
        let all = self.versions(subject, true)?;
        let live = self.versions(subject, false).unwrap_or_default();
        for n in &live {
            if !self.referenced_by(subject, *n).is_empty() {
                return Err(reference_exists(subject, *n));
            }
        }
        if permanent {
            if !live.is_empty() {
                return Err(ApiError::new(
                    404,
                    code::SUBJECT_NOT_SOFT_DELETED,
                    format!("Subject '{subject}' was not deleted first before being permanently deleted"),
                ));
            }
            let records = all
                .iter()
                .map(|n| {
                    (
                        Key::Schema {
                            subject: subject.to_string(),
                            version: *n,
                        },
                        None,
                    )
                })
                .collect();
            return Ok((all, records));
        }
        if live.is_empty() {
            return Err(ApiError::new(
                404,
                code::SUBJECT_SOFT_DELETED,
                format!(
                    "Subject '{subject}' was soft deleted.Set permanent=true to delete permanently"
                ),
            ));
        }
        let last = *all.last().unwrap_or(&0);
        let value = DeleteSubjectValue {
            subject: subject.to_string(),
            version: last,
        };
        Ok((
            live,
            vec![(Key::DeleteSubject(subject.to_string()), to_json(&value))],
        ))
    }

    /// Deletes one version: soft, or permanent after a soft delete.
    pub fn delete_version(
        &self,
        subject: &str,
        version: &str,
        permanent: bool,
    ) -> Result<(i32, Vec<Record>), ApiError> {
        self.writable(Some(subject))?;
        let (n, id, schema) = self.version(subject, version, true)?;
        let deleted = self.subjects[subject][&n].deleted;
        if !self.referenced_by(subject, n).is_empty() {
            return Err(reference_exists(subject, n));
        }
        let key = Key::Schema {
            subject: subject.to_string(),
            version: n,
        };
        if permanent {
            if !deleted {
                return Err(ApiError::new(
                    404,
                    code::VERSION_NOT_SOFT_DELETED,
                    format!("Subject '{subject}' Version {n} was not deleted first before being permanently deleted"),
                ));
            }
            return Ok((n, vec![(key, None)]));
        }
        if deleted {
            return Err(ApiError::new(
                404,
                code::VERSION_SOFT_DELETED,
                format!("Subject '{subject}' Version {n} was soft deleted.Set permanent=true to delete permanently"),
            ));
        }
        let value = SchemaValue {
            subject: subject.to_string(),
            version: n,
            id,
            schema_type: schema.schema_type,
            references: schema.references.clone(),
            schema: schema.schema.clone(),
            deleted: true,
        };
        Ok((n, vec![(key, to_json(&value))]))
    }

    /// Sets (or with `None` removes) a compatibility level.
    pub fn set_config(
        &self,
        subject: Option<&str>,
        level: Option<&str>,
    ) -> Result<(Option<Level>, Vec<Record>), ApiError> {
        self.writable(subject)?;
        let key = Key::Config(subject.map(String::from));
        match level {
            None => Ok((None, vec![(key, None)])),
            Some(name) => {
                let level = Level::parse(name).ok_or_else(|| {
                    ApiError::new(
                        422,
                        code::INVALID_COMPATIBILITY_LEVEL,
                        format!("Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive: {name}"),
                    )
                })?;
                let value = ConfigValue {
                    compatibility_level: level.name().into(),
                };
                Ok((Some(level), vec![(key, to_json(&value))]))
            }
        }
    }

    /// Sets (or with `None` removes) a mode. IMPORT needs an empty
    /// registry (or subject), as Confluent's does, unless forced.
    pub fn set_mode(
        &self,
        subject: Option<&str>,
        mode: Option<&str>,
        force: bool,
    ) -> Result<(Option<Mode>, Vec<Record>), ApiError> {
        let key = Key::Mode(subject.map(String::from));
        match mode {
            None => Ok((None, vec![(key, None)])),
            Some(name) => {
                let mode = Mode::parse(name).ok_or_else(|| {
                    ApiError::new(
                        422,
                        code::INVALID_MODE,
                        format!(
                            "Invalid mode. Valid values are READWRITE, READONLY, IMPORT: {name}"
                        ),
                    )
                })?;
                let empty = match subject {
                    None => self.subjects.is_empty(),
                    Some(s) => !self.subjects.contains_key(s),
                };
                if mode == Mode::Import && !empty && !force {
                    return Err(ApiError::new(
                        422,
                        code::OPERATION_NOT_PERMITTED,
                        "Cannot import since found existing subjects",
                    ));
                }
                let value = ModeValue {
                    mode: mode.name().into(),
                };
                Ok((Some(mode), vec![(key, to_json(&value))]))
            }
        }
    }
}

/// Sets a setting, global (no subject) or a subject's; `None` removes it.
fn set_setting<T>(
    global: &mut Option<T>,
    per_subject: &mut BTreeMap<String, T>,
    subject: Option<String>,
    value: Option<T>,
) {
    match (subject, value) {
        (None, value) => *global = value,
        (Some(s), Some(v)) => {
            per_subject.insert(s, v);
        }
        (Some(s), None) => {
            per_subject.remove(&s);
        }
    }
}

fn subject_not_found(subject: &str) -> ApiError {
    ApiError::new(
        404,
        code::SUBJECT_NOT_FOUND,
        format!("Subject '{subject}' not found."),
    )
}

fn reference_exists(subject: &str, version: i32) -> ApiError {
    ApiError::new(
        422,
        code::REFERENCE_EXISTS,
        format!(
            "One or more references exist to the schema {{subject={subject},version={version}}}"
        ),
    )
}

/// Confluent's rule: a subject is not empty and has no control characters.
fn validate_subject(subject: &str) -> Result<(), ApiError> {
    if subject.is_empty() || subject.chars().any(char::is_control) || subject.len() > 255 {
        return Err(ApiError::new(
            422,
            code::INVALID_SUBJECT,
            format!("Invalid subject {subject:?}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avro(schema: &str) -> Candidate {
        Candidate {
            schema_type: SchemaType::Avro,
            schema: schema.into(),
            references: Vec::new(),
        }
    }

    fn commit(state: &mut State, records: Vec<Record>) {
        for (k, v) in records {
            state.apply(&k.encode(), v.as_deref());
        }
    }

    fn register(state: &mut State, subject: &str, c: &Candidate) -> Result<i32, ApiError> {
        match state.register(subject, c)? {
            Registration::Exists(id) => Ok(id),
            Registration::Append(id, records) => {
                commit(state, records);
                Ok(id)
            }
        }
    }

    const V1: &str = r#"{"type":"record","name":"U","fields":[{"name":"n","type":"string"}]}"#;
    const V2: &str = r#"{"type":"record","name":"U","fields":[{"name":"n","type":"string"},{"name":"a","type":"int","default":0}]}"#;
    const BAD: &str = r#"{"type":"record","name":"U","fields":[{"name":"n","type":"int"}]}"#;

    #[test]
    fn registering_is_idempotent_and_ids_are_global() {
        let mut s = State::default();
        assert_eq!(register(&mut s, "a", &avro(V1)).unwrap(), 1);
        assert_eq!(
            register(&mut s, "a", &avro(V1)).unwrap(),
            1,
            "again: same id, no version"
        );
        assert_eq!(s.versions("a", false).unwrap(), vec![1]);
        assert_eq!(
            register(&mut s, "b", &avro(V1)).unwrap(),
            1,
            "another subject: same id"
        );
        assert_eq!(register(&mut s, "a", &avro(V2)).unwrap(), 2);
        assert_eq!(s.versions("a", false).unwrap(), vec![1, 2]);
        let e = register(&mut s, "a", &avro(BAD)).unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (409, code::INCOMPATIBLE_SCHEMA),
            "{}",
            e.message
        );
        let e = register(&mut s, "a", &avro("{")).unwrap_err();
        assert_eq!(e.code, code::INVALID_SCHEMA);
        assert_eq!(s.lookup("a", &avro(V2), false).unwrap(), (2, 2));
    }

    #[test]
    fn soft_then_hard_delete_and_the_modes() {
        let mut s = State::default();
        register(&mut s, "a", &avro(V1)).unwrap();
        register(&mut s, "a", &avro(V2)).unwrap();
        assert_eq!(
            s.delete_version("a", "1", true).unwrap_err().code,
            code::VERSION_NOT_SOFT_DELETED
        );
        let (n, r) = s.delete_version("a", "1", false).unwrap();
        assert_eq!(n, 1);
        commit(&mut s, r);
        assert_eq!(s.versions("a", false).unwrap(), vec![2]);
        assert_eq!(s.versions("a", true).unwrap(), vec![1, 2]);
        assert_eq!(
            s.delete_subject("a", true).unwrap_err().code,
            code::SUBJECT_NOT_SOFT_DELETED
        );
        let (gone, r) = s.delete_subject("a", false).unwrap();
        assert_eq!(gone, vec![2]);
        commit(&mut s, r);
        assert!(s.subjects(false).is_empty());
        assert_eq!(s.subjects(true), vec!["a".to_string()]);
        assert_eq!(
            s.versions("a", false).unwrap_err().code,
            code::SUBJECT_NOT_FOUND
        );
        let (_, r) = s.delete_subject("a", true).unwrap();
        commit(&mut s, r);
        assert!(s.subjects(true).is_empty());
        // Ids stay with their schema; a new registration finds id 1 again.
        assert_eq!(register(&mut s, "a", &avro(V1)).unwrap(), 1);
        let (_, r) = s.set_mode(None, Some("READONLY"), false).unwrap();
        commit(&mut s, r);
        assert_eq!(
            register(&mut s, "a", &avro(V2)).unwrap_err().code,
            code::OPERATION_NOT_PERMITTED
        );
        assert_eq!(
            s.set_mode(None, Some("SIDEWAYS"), false).unwrap_err().code,
            code::INVALID_MODE
        );
    }

    #[test]
    fn levels_per_subject_and_transitive_checks() {
        let mut s = State::default();
        let (_, r) = s.set_config(Some("a"), Some("NONE")).unwrap();
        commit(&mut s, r);
        register(&mut s, "a", &avro(V1)).unwrap();
        register(&mut s, "a", &avro(BAD)).unwrap();
        assert_eq!(s.config(Some("a"), false).unwrap(), Level::None);
        assert_eq!(
            s.config(Some("b"), false).unwrap_err().code,
            code::SUBJECT_LEVEL_COMPATIBILITY_NOT_CONFIGURED
        );
        assert_eq!(s.config(Some("b"), true).unwrap(), Level::Backward);
        // V2 reads BAD's data? n is int there, string in V2: no. Against
        // the latest only (BACKWARD) it fails; so does transitive.
        let problems = s
            .incompatibilities("a", &avro(V1), None, Level::Backward)
            .unwrap();
        assert!(!problems.is_empty());
        // BAD -> V1 is fine under NONE; V1 against version 1 alone is fine.
        assert!(s
            .incompatibilities("a", &avro(V1), Some("1"), Level::Backward)
            .unwrap()
            .is_empty());
        assert_eq!(
            s.set_config(None, Some("SIDEWAYS")).unwrap_err().code,
            code::INVALID_COMPATIBILITY_LEVEL
        );
    }

    /// Per format, a change that only a FORWARD check allows (the new
    /// schema cannot read the old data, the old one reads the new), checked
    /// under every level both ways round; then, per format with such a
    /// chain, three versions where only the latest is compatible with the
    /// new one (a transitive level refuses it).
    #[test]
    fn each_format_under_each_level() {
        let of = |t: SchemaType, text: &str| Candidate {
            schema_type: t,
            schema: text.into(),
            references: Vec::new(),
        };
        let forward_only = [
            (
                SchemaType::Avro,
                V1,
                r#"{"type":"record","name":"U","fields":[{"name":"n","type":"string"},{"name":"a","type":"int"}]}"#,
            ),
            (
                SchemaType::Json,
                r#"{"type":"object","properties":{"n":{"type":"string"}}}"#,
                r#"{"type":"object","properties":{"n":{"type":"string"}},"required":["n"]}"#,
            ),
            (
                SchemaType::Protobuf,
                "syntax = \"proto3\"; message M { int32 n = 1; oneof x { string a = 2; string b = 3; } }",
                "syntax = \"proto3\"; message M { int32 n = 1; oneof x { string a = 2; } }",
            ),
        ];
        use Level::*;
        let levels = [
            (None, true, true),
            (Backward, false, true),
            (BackwardTransitive, false, true),
            (Forward, true, false),
            (ForwardTransitive, true, false),
            (Full, false, false),
            (FullTransitive, false, false),
        ];
        for (t, old, new) in forward_only {
            for (level, as_is, swapped) in levels {
                for (first, second, expected) in [(old, new, as_is), (new, old, swapped)] {
                    let mut s = State::default();
                    register(&mut s, "s", &of(t, first)).unwrap();
                    let problems = s
                        .incompatibilities("s", &of(t, second), Option::None, level)
                        .unwrap();
                    assert_eq!(
                        problems.is_empty(),
                        expected,
                        "{t:?} {level:?}: {first} -> {second}: {problems:?}"
                    );
                }
            }
        }
        let chains = [
            (
                SchemaType::Avro,
                V1,
                r#"{"type":"record","name":"U","fields":[]}"#,
                r#"{"type":"record","name":"U","fields":[{"name":"n","type":"int","default":0}]}"#,
            ),
            (
                SchemaType::Protobuf,
                "syntax = \"proto3\"; message M { string n = 1; }",
                "syntax = \"proto3\"; message M { reserved 1; }",
                "syntax = \"proto3\"; message M { int32 n = 1; }",
            ),
        ];
        for (t, v1, v2, v3) in chains {
            let mut s = State::default();
            register(&mut s, "s", &of(t, v1)).unwrap();
            register(&mut s, "s", &of(t, v2)).unwrap();
            for (level, ok) in [(Backward, true), (BackwardTransitive, false)] {
                let problems = s
                    .incompatibilities("s", &of(t, v3), Option::None, level)
                    .unwrap();
                assert_eq!(problems.is_empty(), ok, "{t:?} {level:?}: {problems:?}");
            }
        }
    }

    #[test]
    fn references_are_resolved_and_protect_what_they_name() {
        let mut s = State::default();
        let address =
            r#"{"type":"record","name":"Address","fields":[{"name":"city","type":"string"}]}"#;
        register(&mut s, "address", &avro(address)).unwrap();
        let user = Candidate {
            schema_type: SchemaType::Avro,
            schema:
                r#"{"type":"record","name":"User","fields":[{"name":"home","type":"Address"}]}"#
                    .into(),
            references: vec![Reference {
                name: "Address".into(),
                subject: "address".into(),
                version: 1,
            }],
        };
        let id = register(&mut s, "user", &user).unwrap();
        assert_eq!(s.referenced_by("address", 1), vec![id]);
        assert_eq!(
            s.delete_subject("address", false).unwrap_err().code,
            code::REFERENCE_EXISTS
        );
        let dangling = Candidate {
            references: vec![Reference {
                name: "Address".into(),
                subject: "address".into(),
                version: 9,
            }],
            ..user
        };
        assert_eq!(
            register(&mut s, "user", &dangling).unwrap_err().code,
            code::INVALID_SCHEMA
        );
    }
}
