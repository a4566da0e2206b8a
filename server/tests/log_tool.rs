//! `ringlog-log` on real directories: append lines, compact them offline,
//! dump what is left.

use std::io::Write;
use std::process::{Command, Stdio};

fn tool() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringlog-log"))
}

fn run(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn compact_keeps_the_latest_line_of_each_key_at_its_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("table-0");
    let mut append = tool()
        .arg("append")
        .arg(&dir)
        .args([
            "--fsync",
            "never",
            "--batch-records",
            "3",
            "--key-separator",
            "=",
        ])
        .args(["--segment-bytes", "1024"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    {
        let mut stdin = append.stdin.take().unwrap();
        for i in 0..500 {
            writeln!(stdin, "k{}=v{i}", i % 7).unwrap();
        }
    }
    assert!(append.wait().unwrap().success());

    let report = run(tool()
        .arg("compact")
        .arg(&dir)
        .args(["--segment-bytes", "1024"]));
    assert!(report.contains("superseded"), "{report}");
    let dump = run(tool().arg("dump").arg(&dir));
    let lines: Vec<(u64, String, String)> = dump
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].parse().unwrap(), f[2].to_string(), f[3].to_string())
        })
        .collect();
    for (offset, key, value) in &lines {
        assert_eq!(key, &format!("k{}", offset % 7));
        assert_eq!(value, &format!("v{offset}"));
    }
    for k in 0..7 {
        let latest = (0..500u64).rev().find(|i| i % 7 == k).unwrap();
        assert!(lines.iter().any(|(o, _, _)| *o == latest), "k{k}");
    }
    assert!(lines.len() < 100, "{} lines left", lines.len());

    let recovered = run(tool().arg("recover").arg(&dir));
    assert!(recovered.contains("offsets   [0, 500)"), "{recovered}");

    let missing = tool()
        .arg("compact")
        .arg(tmp.path().join("nothing"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not a partition directory"));
}
