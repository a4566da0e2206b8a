//! The invariants, checked after every simulated step and at the end.

use std::collections::BTreeMap;

use ringlog_cluster::{BrokerId, TopicPartition};

use crate::world::{Batch, World};

/// What happened so far, as the checks need it.
#[derive(Default)]
pub struct History {
    /// The log below every high watermark any leader reached: append-only.
    pub committed: BTreeMap<TopicPartition, Vec<Batch>>,
    /// Every acknowledged batch, in order, per partition.
    pub acks: BTreeMap<TopicPartition, Vec<Batch>>,
    /// Acknowledgements not yet compared with the committed log.
    unchecked: Vec<(TopicPartition, Batch)>,
    /// The newest high watermark exposed to consumers, per partition.
    pub exposed: BTreeMap<TopicPartition, u64>,
    /// Which incarnation wrote under each leader epoch.
    writers: BTreeMap<(TopicPartition, i32), (BrokerId, u64)>,
    /// How many batches of each replica's log were already found equal to
    /// the committed log, and the disk generation that finding holds for.
    verified: BTreeMap<(BrokerId, TopicPartition), (u64, usize)>,
    /// Acknowledgements per broker.
    pub acks_by: BTreeMap<BrokerId, usize>,
    /// Acknowledgements the producers received.
    pub client_acks: usize,
    /// Errors the producers received, by name.
    pub client_errors: BTreeMap<String, usize>,
    /// ISR admissions the controller refused for a stale or fenced broker.
    pub ineligible: usize,
}

impl History {
    /// A leader appended under `epoch`.
    pub fn wrote(&mut self, tp: &TopicPartition, epoch: i32, broker: BrokerId, incarnation: u64) {
        let writer = self
            .writers
            .entry((tp.clone(), epoch))
            .or_insert((broker, incarnation));
        assert_eq!(
            *writer,
            (broker, incarnation),
            "two leaders wrote {tp} under epoch {epoch}"
        );
    }

    /// A broker acknowledged `batch` as committed.
    pub fn acked(&mut self, tp: &TopicPartition, batch: Batch, broker: BrokerId) {
        *self.acks_by.entry(broker).or_default() += 1;
        self.unchecked.push((tp.clone(), batch.clone()));
        let acks = self.acks.entry(tp.clone()).or_default();
        if !acks.contains(&batch) {
            acks.push(batch);
        }
    }

    /// Acknowledgements of `tp` so far.
    pub fn acks_of(&self, tp: &TopicPartition) -> usize {
        self.acks.get(tp).map_or(0, Vec::len)
    }

    fn max_acked_end(&self, tp: &TopicPartition) -> u64 {
        self.acks
            .get(tp)
            .map_or(0, |a| a.iter().map(Batch::end).max().unwrap_or(0))
    }
}

/// Compares replica `b`'s log below `bound` with the committed log, adding
/// to the committed log where `extend` (a leader's high watermark).
fn verify_prefix(w: &mut World, b: BrokerId, tp: &TopicPartition, bound: u64, extend: bool) {
    let disk = &w.brokers[&b].disks[tp];
    let key = (b, tp.clone());
    let (generation, mut i) = w.history.verified.get(&key).copied().unwrap_or((0, 0));
    if generation != disk.generation {
        i = 0;
    }
    let committed = w.history.committed.entry(tp.clone()).or_default();
    while let Some(batch) = disk.batches.get(i).filter(|x| x.end() <= bound) {
        if let Some(c) = committed.get(i) {
            assert_eq!(
                batch, c,
                "broker {b}: {tp} batch {i} differs from the committed log below high watermark {bound}"
            );
        } else {
            assert!(
                extend,
                "broker {b}: {tp} high watermark {bound} is above every leader's ({})",
                committed.last().map_or(0, Batch::end)
            );
            committed.push(batch.clone());
        }
        i += 1;
    }
    w.history.verified.insert(key, (disk.generation, i));
}

pub fn after_step(w: &mut World) {
    let now = w.now;
    for (tp, batch) in std::mem::take(&mut w.history.unchecked) {
        // Acknowledged means committed: it is in the log the leader's
        // high watermark covered, at its offset.
        let leader_extends: Vec<(BrokerId, u64)> = w
            .brokers
            .keys()
            .filter_map(|b| {
                let r = w.replica(*b, &tp)?;
                r.is_leader().then(|| (*b, r.high_watermark()))
            })
            .collect();
        for (b, hw) in leader_extends {
            verify_prefix(w, b, &tp, hw, true);
        }
        let committed = &w.history.committed[&tp];
        assert!(
            committed.contains(&batch),
            "{tp}: acknowledged batch at {} is not in the committed log",
            batch.base
        );
    }
    let brokers: Vec<BrokerId> = w.brokers.keys().copied().collect();
    for tp in w.partitions() {
        let state = w.controller_state().partitions[&tp].clone();
        // Leaders extend the committed log with what their high watermark
        // covers; everyone else must agree with it below theirs.
        for &b in &brokers {
            if let Some(r) = w.replica(b, &tp) {
                if r.is_leader() {
                    let hw = r.high_watermark();
                    verify_prefix(w, b, &tp, hw, true);
                }
            }
        }
        let acked_end = w.history.max_acked_end(&tp);
        for &b in &brokers {
            if !state.replicas.contains(&b) {
                continue;
            }
            let disk = &w.brokers[&b].disks[&tp];
            let mut bound = match w.replica(b, &tp) {
                Some(r) => r.high_watermark(),
                None => disk.hw_checkpoint.min(disk.end()),
            };
            if state.isr.contains(&b) {
                assert!(
                    disk.durable >= acked_end,
                    "broker {b} is in the ISR of {tp} but has synced only {} of the acknowledged {acked_end}",
                    disk.durable
                );
                bound = bound.max(acked_end);
            }
            verify_prefix(w, b, &tp, bound, false);
        }
        // The high watermark consumers see never goes back, and never
        // passes what the committed ISR has synced.
        for &b in &brokers {
            let Some(hw) = w
                .replica(b, &tp)
                .and_then(|r| r.exposed_high_watermark(now))
            else {
                continue;
            };
            let last = w.history.exposed.entry(tp.clone()).or_default();
            assert!(
                hw >= *last,
                "broker {b} exposes {tp} high watermark {hw} after {last} was exposed"
            );
            *last = hw;
            let synced = state
                .replicas
                .iter()
                .filter(|m| w.brokers[*m].disks[&tp].durable >= hw)
                .count();
            assert!(
                synced >= state.min_insync,
                "{tp}: high watermark {hw} exposed by {b} is synced on {synced} replicas, fewer than min.insync.replicas {}",
                state.min_insync
            );
            for m in &state.isr {
                let durable = w.brokers[m].disks[&tp].durable;
                assert!(
                    durable >= hw,
                    "{tp}: high watermark {hw} exposed by {b} is above ISR member {m}'s synced {durable}"
                );
            }
        }
    }
}

/// After the faults stop and the cluster settles: every partition has a
/// leader, every replica holds the same log, all of it synced and in sync,
/// and every acknowledged batch is in it exactly once.
pub fn converged(w: &World) -> Result<(), String> {
    for tp in w.partitions() {
        let state = &w.controller_state().partitions[&tp];
        let leader = state.leader.ok_or(format!("{tp} has no leader"))?;
        let r = w
            .replica(leader, &tp)
            .ok_or(format!("{tp}: leader {leader} is down"))?;
        if !r.is_leader() {
            return Err(format!("{tp}: broker {leader} does not know it leads"));
        }
        let log = &w.brokers[&leader].disks[&tp].batches;
        if r.high_watermark() != r.log_end() {
            return Err(format!(
                "{tp}: high watermark {} below log end {}",
                r.high_watermark(),
                r.log_end()
            ));
        }
        if state.isr.len() != state.replicas.len() {
            return Err(format!("{tp}: ISR {:?} of {:?}", state.isr, state.replicas));
        }
        for b in &state.replicas {
            let disk = &w.brokers[b].disks[&tp];
            if &disk.batches != log {
                return Err(format!(
                    "{tp}: broker {b}'s log ({} batches, end {}) differs from leader {leader}'s ({} batches)",
                    disk.batches.len(),
                    disk.end(),
                    log.len()
                ));
            }
        }
        for batch in w.history.acks.get(&tp).into_iter().flatten() {
            let n = log
                .iter()
                .filter(|x| x.pid == batch.pid && x.seq == batch.seq)
                .count();
            if n != 1 || !log.contains(batch) {
                return Err(format!(
                    "{tp}: acknowledged batch {batch:?} is stored {n} times"
                ));
            }
        }
    }
    Ok(())
}
