//! `ringlog schema ...`: the schema registry from the command line, over its
//! REST API (ringlog's or any Confluent-compatible one). `check` exits
//! non-zero when a schema is incompatible, for CI pipelines.

use clap::Subcommand;
use serde_json::{json, Value};
use std::io::Write;

/// Confluent's media type.
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Schema registry commands.
#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Register a schema file under a subject; prints its id.
    Register {
        /// Subject (Kafka's convention: TOPIC-value or TOPIC-key).
        subject: String,
        /// File holding the schema.
        file: std::path::PathBuf,
        /// AVRO, JSON or PROTOBUF (.proto text).
        #[arg(long = "type", default_value = "AVRO")]
        schema_type: String,
        /// A reference, NAME=SUBJECT:VERSION (repeatable).
        #[arg(long = "reference", value_name = "NAME=SUBJECT:VERSION")]
        references: Vec<String>,
    },
    /// Print a schema: a subject's version (latest by default) or an id's.
    Get {
        /// Subject.
        #[arg(required_unless_present = "id")]
        subject: Option<String>,
        /// Version number or latest.
        #[arg(long, default_value = "latest")]
        version: String,
        /// A schema id instead of a subject.
        #[arg(long, conflicts_with = "subject")]
        id: Option<i32>,
    },
    /// List subjects, or a subject's versions.
    List {
        /// Subject whose versions to list.
        subject: Option<String>,
        /// Include soft-deleted ones.
        #[arg(long)]
        deleted: bool,
    },
    /// Check a schema file against a subject; exits 1 if incompatible.
    Check {
        /// Subject.
        subject: String,
        /// File holding the schema.
        file: std::path::PathBuf,
        /// AVRO, JSON or PROTOBUF (.proto text).
        #[arg(long = "type", default_value = "AVRO")]
        schema_type: String,
        /// A version (or latest); by default the versions the subject's
        /// compatibility level names.
        #[arg(long)]
        version: Option<String>,
    },
    /// Delete a subject or one version: soft, then with --permanent for good.
    Delete {
        /// Subject.
        subject: String,
        /// Only this version.
        #[arg(long)]
        version: Option<String>,
        /// Delete what was soft-deleted, for good.
        #[arg(long)]
        permanent: bool,
    },
    /// Show or set the compatibility level, global or of a subject.
    Config {
        /// Subject (global without).
        subject: Option<String>,
        /// NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE,
        /// FULL or FULL_TRANSITIVE.
        #[arg(long)]
        set: Option<String>,
    },
}

/// What went wrong: a message, and whether it is the registry's verdict of
/// incompatibility (exit 1 with the reasons) or another failure.
#[derive(Debug)]
pub struct SchemaFailure(pub String);

impl std::fmt::Display for SchemaFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn fail(message: impl Into<String>) -> SchemaFailure {
    SchemaFailure(message.into())
}

/// One request; the JSON answer, or the registry's error as a message.
fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&Value>,
) -> Result<Value, SchemaFailure> {
    let unreachable = |e: ureq::Error| fail(format!("schema registry at {url}: {e}"));
    let mut response = match (method, body) {
        ("GET", _) => agent.get(url).call(),
        ("DELETE", _) => agent.delete(url).call(),
        ("POST", Some(b)) => agent
            .post(url)
            .header("Content-Type", CONTENT_TYPE)
            .send(b.to_string()),
        ("PUT", Some(b)) => agent
            .put(url)
            .header("Content-Type", CONTENT_TYPE)
            .send(b.to_string()),
        _ => return Err(fail(format!("{method} {url} without a body"))),
    }
    .map_err(unreachable)?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().map_err(unreachable)?;
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
    if status >= 300 {
        let message = value["message"].as_str().unwrap_or(&text);
        let code = value["error_code"].as_i64().unwrap_or(i64::from(status));
        return Err(fail(format!("{message} (error {code})")));
    }
    Ok(value)
}

fn schema_body(
    file: &std::path::Path,
    schema_type: &str,
    references: &[String],
) -> Result<Value, SchemaFailure> {
    let schema = std::fs::read_to_string(file)
        .map_err(|e| fail(format!("reading {}: {e}", file.display())))?;
    let references: Vec<Value> = references
        .iter()
        .map(|r| {
            let parsed = r.split_once('=').and_then(|(name, rest)| {
                let (subject, version) = rest.rsplit_once(':')?;
                Some((name, subject, version.parse::<i32>().ok()?))
            });
            match parsed {
                Some((name, subject, version)) => {
                    Ok(json!({"name": name, "subject": subject, "version": version}))
                }
                None => Err(fail(format!("reference {r:?} is not NAME=SUBJECT:VERSION"))),
            }
        })
        .collect::<Result<_, _>>()?;
    let schema_type = schema_type.to_ascii_uppercase();
    let mut body = json!({"schema": schema, "references": references});
    if schema_type != "AVRO" {
        body["schemaType"] = json!(schema_type);
    }
    Ok(body)
}

/// Runs one command against the registry at `registry`; `Ok(false)` is a
/// compatibility check that failed.
pub fn run(
    registry: &str,
    command: SchemaCommand,
    out: &mut impl Write,
) -> Result<bool, SchemaFailure> {
    let base = registry.trim_end_matches('/');
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let write = |out: &mut dyn Write, text: &str| {
        writeln!(out, "{text}").map_err(|e| fail(format!("writing output: {e}")))
    };
    match command {
        SchemaCommand::Register {
            subject,
            file,
            schema_type,
            references,
        } => {
            let body = schema_body(&file, &schema_type, &references)?;
            let answer = call(
                &agent,
                "POST",
                &format!(
                    "{base}/subjects/{}/versions",
                    ringlog_client::url_segment(&subject)
                ),
                Some(&body),
            )?;
            write(
                out,
                &format!("registered under {subject}: id {}", answer["id"]),
            )?;
        }
        SchemaCommand::Get {
            subject,
            version,
            id,
        } => {
            let answer = match (id, subject) {
                (Some(id), _) => call(&agent, "GET", &format!("{base}/schemas/ids/{id}"), None)?,
                (None, Some(s)) => call(
                    &agent,
                    "GET",
                    &format!(
                        "{base}/subjects/{}/versions/{}",
                        ringlog_client::url_segment(&s),
                        ringlog_client::url_segment(&version)
                    ),
                    None,
                )?,
                (None, None) => return Err(fail("a subject or --id is needed")),
            };
            if let Some(v) = answer.get("version") {
                write(
                    out,
                    &format!(
                        "# subject {} version {v} id {}",
                        answer["subject"].as_str().unwrap_or(""),
                        answer["id"]
                    ),
                )?;
            }
            write(out, answer["schema"].as_str().unwrap_or(""))?;
        }
        SchemaCommand::List { subject, deleted } => {
            let query = if deleted { "?deleted=true" } else { "" };
            let url = match &subject {
                Some(s) => format!(
                    "{base}/subjects/{}/versions{query}",
                    ringlog_client::url_segment(s)
                ),
                None => format!("{base}/subjects{query}"),
            };
            for item in call(&agent, "GET", &url, None)?
                .as_array()
                .into_iter()
                .flatten()
            {
                match item {
                    Value::String(s) => write(out, s)?,
                    other => write(out, &other.to_string())?,
                }
            }
        }
        SchemaCommand::Check {
            subject,
            file,
            schema_type,
            version,
        } => {
            let body = schema_body(&file, &schema_type, &[])?;
            let path = match &version {
                Some(v) => format!(
                    "{base}/compatibility/subjects/{}/versions/{}?verbose=true",
                    ringlog_client::url_segment(&subject),
                    ringlog_client::url_segment(v)
                ),
                None => format!(
                    "{base}/compatibility/subjects/{}/versions?verbose=true",
                    ringlog_client::url_segment(&subject)
                ),
            };
            let answer = call(&agent, "POST", &path, Some(&body))?;
            if answer["is_compatible"].as_bool() == Some(true) {
                write(out, &format!("compatible with {subject}"))?;
            } else {
                write(out, &format!("incompatible with {subject}"))?;
                for m in answer["messages"].as_array().into_iter().flatten() {
                    write(out, &format!("  {}", m.as_str().unwrap_or("")))?;
                }
                return Ok(false);
            }
        }
        SchemaCommand::Delete {
            subject,
            version,
            permanent,
        } => {
            let query = if permanent { "?permanent=true" } else { "" };
            let url = match &version {
                Some(v) => format!(
                    "{base}/subjects/{}/versions/{}{query}",
                    ringlog_client::url_segment(&subject),
                    ringlog_client::url_segment(v)
                ),
                None => format!(
                    "{base}/subjects/{}{query}",
                    ringlog_client::url_segment(&subject)
                ),
            };
            let answer = call(&agent, "DELETE", &url, None)?;
            let how = if permanent { "permanently" } else { "soft" };
            write(out, &format!("deleted {subject} ({how}): {answer}"))?;
        }
        SchemaCommand::Config { subject, set } => {
            let url = match &subject {
                Some(s) => format!("{base}/config/{}", ringlog_client::url_segment(s)),
                None => format!("{base}/config"),
            };
            let answer = match set {
                Some(level) => {
                    let a = call(
                        &agent,
                        "PUT",
                        &url,
                        Some(&json!({"compatibility": level.to_ascii_uppercase()})),
                    )?;
                    a["compatibility"].clone()
                }
                None => {
                    let query = if subject.is_some() {
                        "?defaultToGlobal=true"
                    } else {
                        ""
                    };
                    call(&agent, "GET", &format!("{url}{query}"), None)?["compatibilityLevel"]
                        .clone()
                }
            };
            write(out, answer.as_str().unwrap_or(""))?;
        }
    }
    Ok(true)
}
