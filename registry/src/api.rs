//! Confluent Schema Registry's REST API (v1) over [`crate::Registry`]:
//! the paths, bodies, status codes and error bodies its clients expect.

use crate::records::{Reference, SchemaType};
use crate::state::{code, ApiError, Candidate, Registration, State};
use crate::Registry;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State as Shared};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Confluent's media type; every answer carries it.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
/// The largest request body taken (a schema with its references).
pub const BODY_BYTES_MAX: usize = 16 << 20;

type Reg = Shared<Arc<Registry>>;
type Params = Query<HashMap<String, String>>;
type Answer = Result<Response, ApiError>;

/// Every route.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/", get(|| async { reply(json!({})) }))
        .route(
            "/schemas/types",
            get(|| async { reply(json!(["AVRO", "JSON", "PROTOBUF"])) }),
        )
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_by_id))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(raw_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility_one),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compatibility_all),
        )
        .route(
            "/config",
            get(get_config).put(put_config).delete(delete_config),
        )
        .route(
            "/config/{subject}",
            get(get_config_subject)
                .put(put_config_subject)
                .delete(delete_config_subject),
        )
        .route("/mode", get(get_mode).put(put_mode))
        .route(
            "/mode/{subject}",
            get(get_mode_subject)
                .put(put_mode_subject)
                .delete(delete_mode_subject),
        )
        .fallback(|| async { error_response(&ApiError::new(404, 404, "HTTP 404 Not Found")) })
        .layer(axum::extract::DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(registry)
}

fn reply(body: Value) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body.to_string()).into_response()
}

fn ok(body: Value) -> Answer {
    Ok(reply(body))
}

/// Confluent's error body: `{"error_code": 40401, "message": "..."}`.
pub fn error_response(e: &ApiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = json!({"error_code": e.code, "message": e.message});
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(&self)
    }
}

fn flag(params: &Params, name: &str) -> bool {
    params.get(name).is_some_and(|v| v == "true")
}

fn id_of(text: &str) -> Result<i32, ApiError> {
    text.parse()
        .map_err(|_| ApiError::new(404, code::SCHEMA_NOT_FOUND, "Schema not found"))
}

/// The fields of a schema in an answer: `schemaType` and `references` only
/// when they are not Avro's and not empty, as Confluent writes them.
fn schema_fields(
    out: &mut serde_json::Map<String, Value>,
    state: &State,
    s: &crate::state::Schema,
    params: &Params,
) {
    if s.schema_type != SchemaType::Avro {
        out.insert("schemaType".into(), json!(s.schema_type.name()));
    }
    if !s.references.is_empty() {
        out.insert("references".into(), json!(s.references));
    }
    out.insert("schema".into(), json!(schema_text(state, s, params)));
}

/// A schema's text in the form asked for: as registered, or with
/// `?format=serialized` a Protobuf schema as a base64 `FileDescriptorProto`
/// (what Confluent's Protobuf deserializers read).
fn schema_text(state: &State, s: &crate::state::Schema, params: &Params) -> String {
    if s.schema_type == SchemaType::Protobuf
        && params.get("format").is_some_and(|f| f == "serialized")
    {
        if let Ok(crate::formats::Parsed::Protobuf(p)) = state.parse_stored(s) {
            return p.serialized();
        }
    }
    s.schema.clone()
}

async fn schema_by_id(reg: Reg, Path(id): Path<String>, params: Params) -> Answer {
    let id = id_of(&id)?;
    reg.read(|s| {
        let mut out = serde_json::Map::new();
        schema_fields(&mut out, s, s.schema(id)?, &params);
        ok(Value::Object(out))
    })
    .await
}

async fn raw_schema_by_id(reg: Reg, Path(id): Path<String>) -> Answer {
    let id = id_of(&id)?;
    reg.read(|s| ok(raw(&s.schema(id)?.schema))).await
}

/// A schema's text as the JSON it is (Confluent answers it unquoted).
fn raw(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| json!(text))
}

async fn subjects_by_id(reg: Reg, Path(id): Path<String>, params: Params) -> Answer {
    let id = id_of(&id)?;
    let deleted = flag(&params, "deleted");
    reg.read(|s| {
        s.schema(id)?;
        let mut subjects: Vec<String> = s.usages(id, deleted).into_iter().map(|(s, _)| s).collect();
        subjects.dedup();
        ok(json!(subjects))
    })
    .await
}

async fn versions_by_id(reg: Reg, Path(id): Path<String>, params: Params) -> Answer {
    let id = id_of(&id)?;
    let deleted = flag(&params, "deleted");
    reg.read(|s| {
        s.schema(id)?;
        let usages: Vec<Value> = s
            .usages(id, deleted)
            .into_iter()
            .map(|(subject, version)| json!({"subject": subject, "version": version}))
            .collect();
        ok(json!(usages))
    })
    .await
}

async fn subjects(reg: Reg, params: Params) -> Answer {
    let deleted = flag(&params, "deleted");
    reg.read(|s| ok(json!(s.subjects(deleted)))).await
}

async fn versions(reg: Reg, Path(subject): Path<String>, params: Params) -> Answer {
    let deleted = flag(&params, "deleted");
    reg.read(|s| ok(json!(s.versions(&subject, deleted)?)))
        .await
}

fn version_body(
    state: &State,
    subject: &str,
    (number, id): (i32, i32),
    schema: &crate::state::Schema,
    params: &Params,
) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("subject".into(), json!(subject));
    out.insert("version".into(), json!(number));
    out.insert("id".into(), json!(id));
    schema_fields(&mut out, state, schema, params);
    Value::Object(out)
}

async fn version(reg: Reg, Path((subject, v)): Path<(String, String)>, params: Params) -> Answer {
    let deleted = flag(&params, "deleted");
    reg.read(|s| {
        let (n, id, schema) = s.version(&subject, &v, deleted)?;
        ok(version_body(s, &subject, (n, id), schema, &params))
    })
    .await
}

async fn raw_version(reg: Reg, Path((subject, v)): Path<(String, String)>) -> Answer {
    reg.read(|s| ok(raw(&s.version(&subject, &v, false)?.2.schema)))
        .await
}

async fn referenced_by(reg: Reg, Path((subject, v)): Path<(String, String)>) -> Answer {
    reg.read(|s| {
        let (n, _, _) = s.version(&subject, &v, false)?;
        ok(json!(s.referenced_by(&subject, n)))
    })
    .await
}

/// The request body of register, lookup and compatibility.
#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
    #[serde(rename = "schemaType", default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Reference>,
}

/// A JSON body, with Confluent's answers to a wrong media type (415) and
/// to what is not the JSON expected (422 / 400).
fn body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let accepted = match media.as_deref() {
        None => true,
        Some(m) => matches!(
            m,
            "application/json"
                | "application/vnd.schemaregistry.v1+json"
                | "application/vnd.schemaregistry+json"
                | "application/octet-stream"
        ),
    };
    if !accepted {
        return Err(ApiError::new(415, 415, "HTTP 415 Unsupported Media Type"));
    }
    let bytes = bytes.map_err(|e| {
        let status = e.status().as_u16();
        ApiError::new(status, u32::from(status), e.body_text())
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            422,
            422,
            format!("Unrecognized field or malformed JSON: {e}"),
        )
    })
}

fn candidate(b: SchemaBody) -> Result<Candidate, ApiError> {
    let schema_type = match b.schema_type.as_deref() {
        None => SchemaType::Avro,
        Some(name) => SchemaType::parse(name).ok_or_else(|| {
            ApiError::new(
                422,
                code::INVALID_SCHEMA,
                format!("Invalid schema type {name}"),
            )
        })?,
    };
    Ok(Candidate {
        schema_type,
        schema: b.schema,
        references: b.references,
    })
}

async fn register(
    reg: Reg,
    Path(subject): Path<String>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Answer {
    let c = candidate(body(&headers, bytes)?)?;
    let id = reg
        .write(|s| match s.register(&subject, &c)? {
            Registration::Exists(id) => Ok((id, Vec::new())),
            Registration::Append(id, records) => Ok((id, records)),
        })
        .await?;
    ok(json!({"id": id}))
}

async fn lookup(
    reg: Reg,
    Path(subject): Path<String>,
    params: Params,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Answer {
    let c = candidate(body(&headers, bytes)?)?;
    let deleted = flag(&params, "deleted");
    reg.read(|s| {
        let (n, id) = s.lookup(&subject, &c, deleted)?;
        ok(version_body(s, &subject, (n, id), s.schema(id)?, &params))
    })
    .await
}

async fn delete_subject(reg: Reg, Path(subject): Path<String>, params: Params) -> Answer {
    let permanent = flag(&params, "permanent");
    let versions = reg.write(|s| s.delete_subject(&subject, permanent)).await?;
    ok(json!(versions))
}

async fn delete_version(
    reg: Reg,
    Path((subject, v)): Path<(String, String)>,
    params: Params,
) -> Answer {
    let permanent = flag(&params, "permanent");
    let n = reg
        .write(|s| s.delete_version(&subject, &v, permanent))
        .await?;
    ok(json!(n))
}

async fn compatibility(
    reg: Reg,
    subject: String,
    version: Option<String>,
    params: Params,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Answer {
    let c = candidate(body(&headers, bytes)?)?;
    let verbose = flag(&params, "verbose");
    reg.read(|s: &State| {
        let level = s.level(Some(&subject));
        let problems = s.incompatibilities(&subject, &c, version.as_deref(), level)?;
        let mut out = json!({"is_compatible": problems.is_empty()});
        if verbose {
            out["messages"] = json!(problems);
        }
        ok(out)
    })
    .await
}

async fn compatibility_one(
    reg: Reg,
    Path((subject, v)): Path<(String, String)>,
    params: Params,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Answer {
    compatibility(reg, subject, Some(v), params, headers, bytes).await
}

async fn compatibility_all(
    reg: Reg,
    Path(subject): Path<String>,
    params: Params,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Answer {
    compatibility(reg, subject, None, params, headers, bytes).await
}

#[derive(Deserialize)]
struct ConfigBody {
    compatibility: String,
}

#[derive(Deserialize)]
struct ModeBody {
    mode: String,
}

async fn get_config(reg: Reg) -> Answer {
    reg.read(|s| ok(json!({"compatibilityLevel": s.config(None, true)?.name()})))
        .await
}

async fn get_config_subject(reg: Reg, Path(subject): Path<String>, params: Params) -> Answer {
    let default = flag(&params, "defaultToGlobal");
    reg.read(|s| ok(json!({"compatibilityLevel": s.config(Some(&subject), default)?.name()})))
        .await
}

async fn set_config(reg: Reg, subject: Option<String>, level: Option<String>) -> Answer {
    let set = reg
        .write(|s| s.set_config(subject.as_deref(), level.as_deref()))
        .await?;
    match set {
        Some(l) => ok(json!({"compatibility": l.name()})),
        None => {
            reg.read(|s| ok(json!({"compatibilityLevel": s.level(subject.as_deref()).name()})))
                .await
        }
    }
}

async fn put_config_in(
    reg: Reg,
    subject: Option<String>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Answer {
    let b: ConfigBody = body(&headers, bytes)?;
    set_config(reg, subject, Some(b.compatibility.to_ascii_uppercase())).await
}

async fn put_config(reg: Reg, headers: HeaderMap, bytes: Result<Bytes, BytesRejection>) -> Answer {
    put_config_in(reg, None, headers, bytes).await
}

async fn delete_config(reg: Reg) -> Answer {
    set_config(reg, None, None).await
}

async fn put_config_subject(
    reg: Reg,
    Path(subject): Path<String>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Answer {
    put_config_in(reg, Some(subject), headers, bytes).await
}

async fn delete_config_subject(reg: Reg, Path(subject): Path<String>) -> Answer {
    reg.read(|s| s.config(Some(&subject), false).map(|_| ()))
        .await?;
    set_config(reg, Some(subject), None).await
}

async fn get_mode(reg: Reg) -> Answer {
    reg.read(|s| ok(json!({"mode": s.mode(None).name()}))).await
}

async fn get_mode_subject(reg: Reg, Path(subject): Path<String>, params: Params) -> Answer {
    let default = flag(&params, "defaultToGlobal");
    reg.read(|s| {
        let mode = if default {
            s.mode(Some(&subject))
        } else {
            s.subject_mode(&subject)?
        };
        ok(json!({"mode": mode.name()}))
    })
    .await
}

async fn set_mode(reg: Reg, subject: Option<String>, mode: Option<String>, force: bool) -> Answer {
    let set = reg
        .write(|s| s.set_mode(subject.as_deref(), mode.as_deref(), force))
        .await?;
    match set {
        Some(m) => ok(json!({"mode": m.name()})),
        None => {
            reg.read(|s| ok(json!({"mode": s.mode(subject.as_deref()).name()})))
                .await
        }
    }
}

async fn put_mode_in(
    reg: Reg,
    subject: Option<String>,
    params: Params,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Answer {
    let b: ModeBody = body(&headers, bytes)?;
    let force = flag(&params, "force");
    set_mode(reg, subject, Some(b.mode.to_ascii_uppercase()), force).await
}

async fn put_mode(
    reg: Reg,
    params: Params,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Answer {
    put_mode_in(reg, None, params, headers, bytes).await
}

async fn put_mode_subject(
    reg: Reg,
    Path(subject): Path<String>,
    params: Params,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Answer {
    put_mode_in(reg, Some(subject), params, headers, bytes).await
}

async fn delete_mode_subject(reg: Reg, Path(subject): Path<String>) -> Answer {
    reg.read(|s| s.subject_mode(&subject).map(|_| ())).await?;
    set_mode(reg, Some(subject), None, false).await
}
