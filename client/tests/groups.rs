//! Consumer groups against the real broker: members split a topic's
//! partitions, rebalance when one joins, and take over from one that dies.

mod common;

use common::{broker, runtime};

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringlog_client::{
    Admin, Client, Consumer, ConsumerConfig, NewTopic, OffsetReset, Producer, ProducerConfig,
    RebalanceEvent, Record,
};

type Assignments = Arc<Mutex<Vec<BTreeSet<(String, u32)>>>>;

/// A subscribed consumer polling in its own task, publishing its assignment.
fn member(rt: &tokio::runtime::Runtime, addr: String, slot: usize, seen: Assignments) {
    rt.spawn(async move {
        let client = Client::connect(&addr).await.unwrap();
        let config = ConsumerConfig {
            group: Some("readers".into()),
            session_timeout: Duration::from_secs(3),
            assignor: "range".into(),
            ..ConsumerConfig::default()
        };
        let mut consumer = Consumer::new(client, config);
        consumer.subscribe(&["shared"]).await.unwrap();
        loop {
            consumer.poll(Duration::from_millis(50)).await.unwrap();
            let events = consumer.rebalance_events();
            for e in &events {
                let (RebalanceEvent::Assigned(tps) | RebalanceEvent::Revoked(tps)) = e;
                assert!(!tps.is_empty());
            }
            let mine: BTreeSet<(String, u32)> = consumer.assignment().into_iter().collect();
            seen.lock().unwrap()[slot] = mine;
        }
    });
}

/// Waits (bounded) until the members' assignments are disjoint, cover the
/// topic and have these sizes. (What each task publishes lags its consumer
/// by up to one poll, so only the settled state is checked for overlap; the
/// coordinator's rule that a partition moves only once released is tested
/// in `server/src/group.rs`.)
fn settle(seen: &Assignments, members: usize, sizes: &[usize]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now: Vec<BTreeSet<(String, u32)>> = seen.lock().unwrap()[..members].to_vec();
        let all: BTreeSet<&(String, u32)> = now.iter().flatten().collect();
        let mut got: Vec<usize> = now.iter().map(BTreeSet::len).collect();
        got.sort_unstable_by(|a, b| b.cmp(a));
        if all.len() == 6 && got == sizes {
            return;
        }
        assert!(Instant::now() < deadline, "never settled: {now:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn members_split_partitions_and_rebalance_when_one_joins() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), 2);
    let addr = b.addr.to_string();
    let rt = runtime();
    rt.block_on(async {
        let client = Client::connect(&addr).await.unwrap();
        Admin::new(client)
            .create_topic(NewTopic::new("shared", 6))
            .await
            .unwrap();
    });
    let seen: Assignments = Arc::new(Mutex::new(vec![BTreeSet::new(); 4]));
    for slot in 0..3 {
        member(&rt, addr.clone(), slot, seen.clone());
    }
    settle(&seen, 3, &[2, 2, 2]);
    member(&rt, addr.clone(), 3, seen.clone());
    settle(&seen, 4, &[2, 2, 1, 1]);
    let desc = rt.block_on(async {
        let client = Client::connect(&addr).await.unwrap();
        Admin::new(client).describe_group("readers").await.unwrap()
    });
    assert_eq!(desc.members.len(), 4);
    assert_eq!(desc.assignor, "range");
    rt.shutdown_background();
}

struct Printer {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

fn printer(addr: &str) -> Printer {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringlog"))
        .args([
            "--broker",
            addr,
            "consume",
            "dying",
            "--group",
            "g",
            "--from",
            "beginning",
        ])
        .args(["--session-timeout-ms", "1000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    Printer { child, lines }
}

#[test]
fn a_killed_member_is_replaced_and_every_record_is_consumed() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), 2);
    let addr = b.addr.to_string();
    let rt = runtime();
    let produce = |from: usize, to: usize| {
        rt.block_on(async {
            let client = Client::connect(&addr).await.unwrap();
            let producer = Producer::new(client, ProducerConfig::default())
                .await
                .unwrap();
            let mut ds = Vec::new();
            for i in from..to {
                ds.push(
                    producer
                        .send(Record::new("dying", format!("r{i:05}")).partition((i % 6) as u32))
                        .await
                        .unwrap(),
                );
            }
            for d in ds {
                d.await.unwrap();
            }
        })
    };
    rt.block_on(async {
        let client = Client::connect(&addr).await.unwrap();
        Admin::new(client)
            .create_topic(NewTopic::new("dying", 6))
            .await
            .unwrap();
    });
    produce(0, 600);
    let mut a = printer(&addr);
    let bb = printer(&addr);
    // Let both run until some records are out, then kill one without a word.
    // On a loaded machine one member may read all there is before the other
    // joins: records keep coming until both have printed some.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut produced = 600;
    let mut last_produced = Instant::now();
    while a.lines.lock().unwrap().len() < 50
        || bb.lines.lock().unwrap().len() + a.lines.lock().unwrap().len() < 200
    {
        assert!(Instant::now() < deadline, "consumers did not start");
        if last_produced.elapsed() > Duration::from_millis(500) {
            produce(produced, produced + 60);
            produced += 60;
            last_produced = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let total = produced + 600;
    produce(produced, total);
    let want: BTreeSet<String> = (0..total).map(|i| format!("r{i:05}")).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: BTreeSet<String> = a
            .lines
            .lock()
            .unwrap()
            .iter()
            .chain(bb.lines.lock().unwrap().iter())
            .cloned()
            .collect();
        if got == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {total} records consumed",
            got.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Duplicates come only from what the killed member printed past its
    // last commit: the survivor never prints a record twice.
    let survivor = bb.lines.lock().unwrap().clone();
    let unique: BTreeSet<&String> = survivor.iter().collect();
    assert_eq!(
        unique.len(),
        survivor.len(),
        "the survivor printed a record twice"
    );
    // The group shows one member and its committed offsets.
    let out = Command::new(env!("CARGO_BIN_EXE_ringlog"))
        .args(["--broker", &addr, "group", "describe", "g"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("members 1"), "{text}");
    assert!(text.contains("dying\t5\t"), "{text}");
    let out = Command::new(env!("CARGO_BIN_EXE_ringlog"))
        .args(["--broker", &addr, "group", "list"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "g\n");
    let mut survivor_process = bb.child;
    survivor_process.kill().unwrap();
    let _ = survivor_process.wait();
}

#[test]
fn a_closed_member_hands_over_at_once_and_resumes_from_commits() {
    let dir = tempfile::tempdir().unwrap();
    let b = broker(dir.path(), 1);
    let addr = b.addr.to_string();
    let rt = runtime();
    rt.block_on(async {
        let client = Client::connect(&addr).await.unwrap();
        Admin::new(client.clone())
            .create_topic(NewTopic::new("handover", 2))
            .await
            .unwrap();
        let producer = Producer::new(client.clone(), ProducerConfig::default())
            .await
            .unwrap();
        let mut ds = Vec::new();
        for i in 0..100u32 {
            ds.push(
                producer
                    .send(Record::new("handover", format!("{i}")).partition(i % 2))
                    .await
                    .unwrap(),
            );
        }
        for d in ds {
            d.await.unwrap();
        }
        let config = ConsumerConfig {
            group: Some("h".into()),
            auto_offset_reset: OffsetReset::Earliest,
            session_timeout: Duration::from_secs(60),
            ..ConsumerConfig::default()
        };
        let mut first = Consumer::new(client.clone(), config.clone());
        first.subscribe(&["handover"]).await.unwrap();
        let mut got = 0;
        while got < 100 {
            got += first.poll(Duration::from_millis(100)).await.unwrap().len();
        }
        // close() commits and leaves: the next member starts after it at once,
        // well before the 60 s session would have expired.
        first.close().await.unwrap();
        let mut second = Consumer::new(client, config);
        second.subscribe(&["handover"]).await.unwrap();
        let started = Instant::now();
        while second.assignment().len() < 2 {
            assert!(second
                .poll(Duration::from_millis(100))
                .await
                .unwrap()
                .is_empty());
            assert!(started.elapsed() < Duration::from_secs(30), "no hand-over");
        }
        assert_eq!(second.position("handover", 0), Some(50));
        assert_eq!(second.position("handover", 1), Some(50));
    });
}
