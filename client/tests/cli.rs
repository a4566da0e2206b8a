//! The `ringlog` CLI end to end against the real broker binary.

mod common;

use common::broker;

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn ringlog(broker: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringlog"))
        .args(["--broker", broker])
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        // The CLI may fail and exit before it reads its input (an unknown
        // topic): a broken pipe here is its business, judged by its output.
        let _ = pipe.write_all(input);
    }
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "ringlog failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// One line on stderr, starting `ringlog:`, a non-zero exit, no panic.
fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("ringlog: "), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    err
}

#[test]
fn seq_through_produce_and_consume_comes_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), 2);
    let addr = b.addr.to_string();
    let created = ok(&ringlog(
        &addr,
        &[
            "topic",
            "create",
            "t",
            "--partitions",
            "1",
            "--fsync",
            "never",
        ],
        None,
    ));
    assert!(created.contains("created topic t"), "{created}");
    let lines: String = (1..=100_000).map(|i| format!("{i}\n")).collect();
    ok(&ringlog(&addr, &["produce", "t"], Some(lines.as_bytes())));
    let out = ok(&ringlog(
        &addr,
        &[
            "consume",
            "t",
            "--from",
            "beginning",
            "--max-messages",
            "100000",
        ],
        None,
    ));
    assert!(out == lines, "consumed lines differ from produced ones");

    // Keys, partitions, offsets and headers through the format template.
    ok(&ringlog(
        &addr,
        &["topic", "create", "kv", "--partitions", "3"],
        None,
    ));
    ok(&ringlog(
        &addr,
        &["produce", "kv", "--key-separator", ":", "--partition", "2"],
        Some(b"a:1\nb:2\nplain\n"),
    ));
    let out = ok(&ringlog(
        &addr,
        &[
            "consume",
            "kv",
            "--partition",
            "2",
            "--from",
            "0",
            "--max-messages",
            "3",
            "--format",
            "%t %p %o [%k] %s|",
        ],
        None,
    ));
    assert_eq!(out, "kv 2 0 [a] 1|kv 2 1 [b] 2|kv 2 2 [] plain|");
    let out = ok(&ringlog(
        &addr,
        &[
            "consume",
            "kv",
            "--from",
            "@0",
            "--max-messages",
            "1",
            "--format",
            "%s",
        ],
        None,
    ));
    assert_eq!(out, "1");

    // A group resumes where it committed.
    let first = ok(&ringlog(
        &addr,
        &[
            "consume",
            "t",
            "--group",
            "g",
            "--from",
            "beginning",
            "--max-messages",
            "3",
        ],
        None,
    ));
    assert_eq!(first, "1\n2\n3\n");
    let next = ok(&ringlog(
        &addr,
        &[
            "consume",
            "t",
            "--group",
            "g",
            "--from",
            "beginning",
            "--max-messages",
            "2",
        ],
        None,
    ));
    assert_eq!(next, "4\n5\n");

    let list = ok(&ringlog(&addr, &["topic", "list"], None));
    assert!(
        list.contains("t\t1\n") && list.contains("kv\t3\n"),
        "{list}"
    );
    let describe = ok(&ringlog(&addr, &["topic", "describe", "kv"], None));
    assert!(
        describe.contains("2\t0\t") && describe.contains("\t3\n"),
        "{describe}"
    );
    let info = ok(&ringlog(&addr, &["cluster", "info"], None));
    assert!(info.contains(&format!("broker 0 at {addr}")), "{info}");
    assert!(info.contains("2 topics, 4 partitions"), "{info}");
    ok(&ringlog(&addr, &["topic", "delete", "kv"], None));
    assert!(!ok(&ringlog(&addr, &["topic", "list"], None)).contains("kv"));
}

#[test]
fn errors_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), 1);
    let addr = b.addr.to_string();

    let err = one_line_error(&ringlog("127.0.0.1:1", &["topic", "list"], None));
    assert!(err.contains("connecting to 127.0.0.1:1"), "{err}");
    let err = one_line_error(&ringlog(
        &addr,
        &["consume", "nope", "--max-messages", "1"],
        None,
    ));
    assert!(err.contains("unknown topic"), "{err}");
    let err = one_line_error(&ringlog(&addr, &["produce", "nope"], Some(b"x\n")));
    assert!(err.contains("unknown topic"), "{err}");
    let err = one_line_error(&ringlog(
        &addr,
        &["topic", "create", "x", "--partitions", "many"],
        None,
    ));
    assert!(err.contains("--partitions"), "{err}");
    let err = one_line_error(&ringlog(&addr, &["topic", "create", "bad/name"], None));
    assert!(err.contains("topic name"), "{err}");
    let err = one_line_error(&ringlog(
        &addr,
        &["consume", "x", "--from", "yesterday"],
        None,
    ));
    assert!(err.contains("--from yesterday"), "{err}");
    ok(&ringlog(&addr, &["topic", "create", "t"], None));
    // Alone, the broker is every replica: acks=all is acks=1.
    ok(&ringlog(
        &addr,
        &["produce", "t", "--acks", "all"],
        Some(b"x\n"),
    ));
    let err = one_line_error(&ringlog(
        &addr,
        &["produce", "t", "--acks", "2"],
        Some(b"x\n"),
    ));
    assert!(err.contains("acks"), "{err}");
    let err = one_line_error(&ringlog(&addr, &["topic", "create", "t"], None));
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn topic_create_takes_what_was_typed() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), 1);
    let addr = b.addr.to_string();

    // 0 partitions is refused, never turned into the broker's default.
    let err = one_line_error(&ringlog(
        &addr,
        &["topic", "create", "zero", "--partitions", "0"],
        None,
    ));
    assert!(err.contains("--partitions"), "{err}");
    assert!(!ok(&ringlog(&addr, &["topic", "list"], None)).contains("zero"));

    // No count: the broker's default (1 here), said in the singular.
    let created = ok(&ringlog(&addr, &["topic", "create", "dflt"], None));
    assert!(created.contains("with 1 partition "), "{created}");

    // -1 is Kafka's "no limit", as `topic describe` prints it.
    let created = ok(&ringlog(
        &addr,
        &[
            "topic",
            "create",
            "forever",
            "--partitions",
            "2",
            "--retention-ms",
            "-1",
            "--retention-bytes",
            "-1",
        ],
        None,
    ));
    assert!(created.contains("with 2 partitions "), "{created}");
    let described = ok(&ringlog(&addr, &["topic", "describe", "forever"], None));
    assert!(described.contains("retention-ms -1"), "{described}");
    assert!(described.contains("retention-bytes -1"), "{described}");

    for flag in ["--retention-ms", "--retention-bytes"] {
        let err = one_line_error(&ringlog(
            &addr,
            &["topic", "create", "below", flag, "-2"],
            None,
        ));
        assert!(err.contains(flag) && err.contains("-2"), "{err}");
    }
    assert!(!ok(&ringlog(&addr, &["topic", "list"], None)).contains("below"));

    // Settings changed afterwards, and back to the broker's defaults.
    let altered = ok(&ringlog(
        &addr,
        &[
            "topic",
            "alter",
            "forever",
            "--set",
            "retention.ms=5000",
            "--set",
            "cleanup.policy=compact,delete",
        ],
        None,
    ));
    assert!(
        altered.contains("retention-ms 5000") && altered.contains("cleanup-policy compact,delete"),
        "{altered}"
    );
    let reset = ok(&ringlog(
        &addr,
        &["topic", "alter", "forever", "--reset", "cleanup.policy"],
        None,
    ));
    assert!(reset.contains("cleanup-policy delete"), "{reset}");
    for (args, needle) in [
        (&["--set", "retention.ms"][..], "KEY=VALUE"),
        (
            &["--set", "segment.bytes=4096"][..],
            "when a topic is created",
        ),
        (&[][..], "nothing to change"),
    ] {
        let mut all = vec!["topic", "alter", "forever"];
        all.extend_from_slice(args);
        let err = one_line_error(&ringlog(&addr, &all, None));
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn partitions_are_added_and_used_and_never_removed() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), 2);
    let addr = b.addr.to_string();
    ok(&ringlog(
        &addr,
        &["topic", "create", "grows", "--partitions", "2"],
        None,
    ));
    let added = ok(&ringlog(
        &addr,
        &["topic", "add-partitions", "grows", "--partitions", "4"],
        None,
    ));
    assert!(added.contains("now has 4 partitions"), "{added}");
    let err = one_line_error(&ringlog(
        &addr,
        &["topic", "add-partitions", "grows", "--partitions", "3"],
        None,
    ));
    assert!(err.contains("has 4 partitions"), "{err}");
    // A new partition takes records and gives them back.
    ok(&ringlog(
        &addr,
        &[
            "produce",
            "grows",
            "--partition",
            "3",
            "--key-separator",
            ":",
        ],
        Some(b"k:in the new partition\n"),
    ));
    let read = ok(&ringlog(
        &addr,
        &[
            "consume",
            "grows",
            "--partition",
            "3",
            "--from",
            "beginning",
            "--max-messages",
            "1",
        ],
        None,
    ));
    assert_eq!(read.trim(), "in the new partition");
    // The count is on disk: a restart after a kill keeps it.
    let b = b.restart_after_kill().unwrap();
    let listed = ok(&ringlog(&b.addr.to_string(), &["topic", "list"], None));
    assert!(listed.contains("grows\t4"), "{listed}");
}

#[test]
fn schema_commands_register_check_list_configure_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), 1);
    let addr = b.addr.to_string();
    let registry = format!("http://{}", b.registry.unwrap());
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let v1 = file(
        "v1.avsc",
        r#"{"type":"record","name":"U","fields":[{"name":"n","type":"string"}]}"#,
    );
    let v2 = file(
        "v2.avsc",
        r#"{"type":"record","name":"U","fields":[{"name":"n","type":"string"},{"name":"age","type":"int","default":0}]}"#,
    );
    let bad = file(
        "bad.avsc",
        r#"{"type":"record","name":"U","fields":[{"name":"n","type":"int"}]}"#,
    );
    let schema = |args: &[&str]| {
        let mut all = vec!["--registry", registry.as_str(), "schema"];
        all.extend_from_slice(args);
        ringlog(&addr, &all, None)
    };
    assert!(ok(&schema(&["register", "users-value", &v1])).contains("id 1"));
    assert!(ok(&schema(&["check", "users-value", &v2])).contains("compatible with users-value"));
    let refused = schema(&["check", "users-value", &bad]);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "a CI pipeline sees the failure"
    );
    let text = String::from_utf8(refused.stdout).unwrap();
    assert!(text.starts_with("incompatible with users-value"), "{text}");
    assert!(text.lines().count() > 1, "the reasons follow: {text}");
    assert!(ok(&schema(&["register", "users-value", &v2])).contains("id 2"));
    assert_eq!(ok(&schema(&["list"])), "users-value\n");
    assert_eq!(ok(&schema(&["list", "users-value"])), "1\n2\n");
    assert!(ok(&schema(&["get", "users-value"])).contains("\"age\""));
    assert!(!ok(&schema(&["get", "--id", "1"])).contains("age"));
    assert_eq!(
        ok(&schema(&["config", "users-value", "--set", "full"])),
        "FULL\n"
    );
    assert_eq!(ok(&schema(&["config", "users-value"])), "FULL\n");
    assert_eq!(ok(&schema(&["config"])), "BACKWARD\n");
    ok(&schema(&["delete", "users-value", "--version", "1"]));
    assert_eq!(ok(&schema(&["list", "users-value"])), "2\n");
    // Protobuf, as .proto text: a field number reused with another type
    // is incompatible, and the reason names the rule.
    let p1 = file(
        "order.proto",
        "syntax = \"proto3\";\nmessage Order { string id = 1; int64 cents = 2; }\n",
    );
    let p2 = file(
        "order2.proto",
        "syntax = \"proto3\";\nmessage Order { string id = 1; string note = 2; }\n",
    );
    let proto =
        |verb: &str, path: &str| schema(&[verb, "orders-value", path, "--type", "protobuf"]);
    assert!(ok(&proto("register", &p1)).contains("id 3"));
    let refused = proto("check", &p2);
    assert_eq!(refused.status.code(), Some(1));
    let text = String::from_utf8(refused.stdout).unwrap();
    assert!(text.contains("FIELD_SCALAR_KIND_CHANGED"), "{text}");
    assert!(ok(&schema(&["get", "orders-value"])).contains("int64 cents = 2"));
    assert!(one_line_error(&schema(&["get", "nope"])).contains("40401"));
    assert!(one_line_error(&schema(&["register", "x", "/no/such/file"])).contains("reading"));
    let unreachable = ringlog(
        &addr,
        &["--registry", "http://127.0.0.1:1", "schema", "list"],
        None,
    );
    assert!(one_line_error(&unreachable).contains("schema registry"));
}
