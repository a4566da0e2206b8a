//! The simulated cluster: brokers driving the real replica machines over
//! in-memory disks, a controller node applying the real cluster state
//! machine, producers, and a network with seeded faults, all in one thread
//! on virtual time.
//!
//! The controller quorum is one node here: openraft makes the replicated
//! state machine linearizable, and its own safety is openraft's to test. What
//! the simulator can get wrong about it is timing, so a controller failover
//! (every broker's session restarting) is one of its faults, and the
//! controller can be cut off like any node.

use std::collections::{BTreeMap, BTreeSet};

use ringlog_cluster::controller::{
    Applied, ClusterState, Command, CommandError, HeartbeatReply, Liveness,
};
use ringlog_cluster::lease::BrokerLease;
use ringlog_cluster::replica::{
    BatchMeta, FetchAnswer, FetchReply, FetchRequest, FollowerStep, LogState, Output, Replica,
    ReplicaConfig,
};
use ringlog_cluster::{BrokerId, Millis, PartitionState, ReplicaError, TopicPartition};
use ringlog_engine::epochs::EpochCache;

use crate::check::History;
use crate::rng::Rng;

/// The controller's node id.
pub const CONTROLLER: u32 = 0;
/// Producer `i` has node id `PRODUCERS + i`.
pub const PRODUCERS: u32 = 1000;
const TOPIC: &str = "t";

/// A stored batch: what the bytes of a RecordBatch would say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub base: u64,
    pub count: u64,
    pub epoch: i32,
    pub pid: u32,
    pub seq: u32,
    pub payload: u64,
}

impl Batch {
    pub fn end(&self) -> u64 {
        self.base + self.count
    }

    fn meta(&self) -> BatchMeta {
        BatchMeta {
            base_offset: self.base,
            end_offset: self.end(),
            leader_epoch: self.epoch,
        }
    }
}

/// One partition's files on one broker: they survive a crash, cut to what
/// was synced.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    pub batches: Vec<Batch>,
    pub durable: u64,
    pub hw_checkpoint: u64,
    pub epochs: EpochCache,
    /// Raised by every truncation, so checks know to look again.
    pub generation: u64,
}

impl Disk {
    pub fn end(&self) -> u64 {
        self.batches.last().map_or(0, Batch::end)
    }

    fn truncate(&mut self, to: u64) {
        assert!(
            to == 0 || self.batches.iter().any(|b| b.end() == to) || to >= self.end(),
            "truncation to {to} falls inside a batch"
        );
        self.batches.retain(|b| b.end() <= to);
        self.durable = self.durable.min(to);
        self.hw_checkpoint = self.hw_checkpoint.min(to);
        self.epochs.truncate_from_end(self.end());
        self.generation += 1;
    }

    fn append(&mut self, batch: Batch) {
        assert_eq!(batch.base, self.end(), "append leaves a gap");
        assert!(
            !self
                .batches
                .iter()
                .any(|b| b.pid == batch.pid && b.seq == batch.seq),
            "duplicate: producer {} sequence {} stored twice",
            batch.pid,
            batch.seq
        );
        self.batches.push(batch);
    }

    fn from(&self, offset: u64, max: usize) -> Vec<Batch> {
        let i = self.batches.partition_point(|b| b.base < offset);
        self.batches[i..].iter().take(max).cloned().collect()
    }

    fn log_state(&self) -> LogState {
        LogState {
            log_start: 0,
            log_end: self.end(),
            durable: self.durable,
            high_watermark: self.hw_checkpoint.min(self.end()),
            epochs: self.epochs.clone(),
        }
    }
}

/// The fault-free timing and shape of a run.
#[derive(Clone, Debug)]
pub struct Config {
    pub brokers: u32,
    pub partitions: u32,
    pub min_insync: usize,
    pub producers: u32,
    pub session_timeout: Millis,
    pub heartbeat_every: Millis,
    pub replica: ReplicaConfig,
    pub drop: f64,
    pub duplicate: f64,
    pub delay: (Millis, Millis),
    /// The chance that a message is held for up to 3 s.
    pub stall: f64,
    /// Random faults (crashes, pauses, partitions, failovers) while on.
    pub chaos: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            brokers: 3,
            partitions: 2,
            min_insync: 2,
            producers: 2,
            session_timeout: 2_000,
            heartbeat_every: 400,
            replica: ReplicaConfig {
                lag_max: 1_500,
                fetch_backoff: 20,
                fetch_timeout: 500,
                alter_retry: 500,
            },
            drop: 0.0,
            duplicate: 0.0,
            delay: (1, 5),
            stall: 0.0,
            chaos: false,
        }
    }
}

#[derive(Clone, Debug)]
pub enum Msg {
    Register {
        sent_at: Millis,
        incarnation: u64,
    },
    RegisterReply {
        epoch: u64,
        state: ClusterState,
        sent_at: Millis,
    },
    Heartbeat {
        epoch: u64,
        sent_at: Millis,
        version: u64,
    },
    HeartbeatReply {
        epoch: u64,
        alive: bool,
        sent_at: Millis,
        state: Option<ClusterState>,
    },
    Metadata(ClusterState),
    AlterIsr {
        command: Command,
        base: i32,
    },
    AlterIsrReply {
        partition: TopicPartition,
        base: i32,
        result: Result<PartitionState, CommandError>,
    },
    Fetch {
        partition: TopicPartition,
        request: FetchRequest,
    },
    FetchReply {
        partition: TopicPartition,
        seq: u64,
        reply: SimFetchReply,
    },
    Produce {
        partition: TopicPartition,
        req: u64,
        pid: u32,
        seq: u32,
    },
    ProduceReply {
        partition: TopicPartition,
        req: u64,
        result: Result<u64, ReplicaError>,
    },
    MetadataRequest,
    MetadataReply(BTreeMap<TopicPartition, Option<BrokerId>>),
}

#[derive(Clone, Debug)]
pub enum SimFetchReply {
    Records {
        high_watermark: u64,
        batches: Vec<Batch>,
    },
    Diverging {
        epoch: i32,
        end_offset: u64,
    },
    Error(ReplicaError),
}

#[derive(Clone, Debug)]
enum Event {
    Deliver {
        from: u32,
        to: u32,
        msg: Msg,
    },
    Tick(u32),
    /// A broker's tick, for the process started `generation`-th.
    BrokerTick(BrokerId, u64),
    Chaos,
}

/// A running broker process.
pub struct Life {
    pub epoch: Option<u64>,
    registered_version: u64,
    version: u64,
    lease: BrokerLease,
    pub replicas: BTreeMap<TopicPartition, Replica>,
    last_heartbeat: Millis,
    register_sent: Option<Millis>,
    waiters: BTreeMap<u64, (u32, u64, TopicPartition, Batch)>,
    next_token: u64,
}

pub struct BrokerNode {
    pub disks: BTreeMap<TopicPartition, Disk>,
    pub life: Option<Life>,
    pub paused_until: Millis,
    pub sync: bool,
    /// Raised by every start, so the ticks of a dead process stop.
    generation: u64,
}

struct ControllerNode {
    state: ClusterState,
    liveness: Liveness,
}

struct Part {
    seq: u32,
    in_flight: Option<(u64, Millis)>,
    backoff_until: Millis,
    last_base: Option<u64>,
}

struct Producer {
    pid: u32,
    leaders: BTreeMap<TopicPartition, Option<BrokerId>>,
    parts: BTreeMap<TopicPartition, Part>,
    next_req: u64,
    asked_metadata: Option<Millis>,
}

/// The whole simulated cluster.
pub struct World {
    pub now: Millis,
    pub rng: Rng,
    pub cfg: Config,
    events: BTreeMap<(Millis, u64), Event>,
    event_seq: u64,
    pub brokers: BTreeMap<BrokerId, BrokerNode>,
    controller: ControllerNode,
    producers: Vec<Producer>,
    /// Directed links that drop everything: `(from, to)`.
    pub blocked: BTreeSet<(u32, u32)>,
    /// Directed links that hold every message this much longer.
    pub slow: BTreeMap<(u32, u32), Millis>,
    /// Producers send new batches only while on.
    pub producing: bool,
    pub history: History,
    pub steps: u64,
    trace: Vec<String>,
}

/// Whether batches of producer `pid` with sequence `seq` hold this many
/// records: fixed per batch, so a retry is the same batch.
fn batch_len(pid: u32, seq: u32) -> u64 {
    1 + u64::from(pid.wrapping_mul(7).wrapping_add(seq) % 3)
}

impl World {
    pub fn new(seed: u64, cfg: Config) -> Self {
        let mut state = ClusterState::new();
        for b in 1..=cfg.brokers {
            state
                .apply(&Command::RegisterBroker {
                    broker: b,
                    incarnation: 0,
                    address: String::new(),
                    kafka_address: String::new(),
                })
                .unwrap();
        }
        let assignments = (0..cfg.partitions)
            .map(|p| {
                (0..cfg.brokers.min(3))
                    .map(|i| (p + i) % cfg.brokers + 1)
                    .collect()
            })
            .collect();
        state
            .apply(&Command::CreateTopic {
                topic: TOPIC.into(),
                assignments,
                min_insync: cfg.min_insync,
                config: String::new(),
            })
            .unwrap();
        let partitions: Vec<TopicPartition> = state.partitions.keys().cloned().collect();
        let mut world = World {
            now: 0,
            rng: Rng::new(seed),
            events: BTreeMap::new(),
            event_seq: 0,
            brokers: BTreeMap::new(),
            controller: ControllerNode {
                state,
                liveness: Liveness::new(cfg.session_timeout),
            },
            producers: (0..cfg.producers)
                .map(|i| Producer {
                    pid: i + 1,
                    leaders: BTreeMap::new(),
                    parts: partitions
                        .iter()
                        .map(|tp| {
                            (
                                tp.clone(),
                                Part {
                                    seq: 0,
                                    in_flight: None,
                                    backoff_until: 0,
                                    last_base: None,
                                },
                            )
                        })
                        .collect(),
                    next_req: 0,
                    asked_metadata: None,
                })
                .collect(),
            blocked: BTreeSet::new(),
            slow: BTreeMap::new(),
            producing: true,
            history: History::default(),
            steps: 0,
            trace: Vec::new(),
            cfg,
        };
        world.controller.liveness.reset(&world.controller.state, 0);
        for b in 1..=world.cfg.brokers {
            let disks = partitions
                .iter()
                .map(|tp| (tp.clone(), Disk::default()))
                .collect();
            world.brokers.insert(
                b,
                BrokerNode {
                    disks,
                    life: None,
                    paused_until: 0,
                    sync: true,
                    generation: 0,
                },
            );
            world.start(b);
        }
        world.schedule(0, Event::Tick(CONTROLLER));
        for i in 0..world.cfg.producers {
            world.schedule(5, Event::Tick(PRODUCERS + i));
        }
        if world.cfg.chaos {
            world.schedule(500, Event::Chaos);
        }
        world
    }

    pub fn partitions(&self) -> Vec<TopicPartition> {
        self.controller.state.partitions.keys().cloned().collect()
    }

    pub fn controller_state(&self) -> &ClusterState {
        &self.controller.state
    }

    pub fn note(&mut self, line: String) {
        if self.trace.len() >= 400 {
            self.trace.drain(..200);
        }
        self.trace.push(format!("{:>7} {line}", self.now));
    }

    pub fn trace(&self) -> &[String] {
        &self.trace
    }

    fn schedule(&mut self, at: Millis, event: Event) {
        self.event_seq += 1;
        self.events.insert((at, self.event_seq), event);
    }

    fn send(&mut self, from: u32, to: u32, msg: Msg) {
        if self.blocked.contains(&(from, to)) || self.rng.chance(self.cfg.drop) {
            return;
        }
        let copies = if self.rng.chance(self.cfg.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            // A long tail: now and then a message is held for seconds (a
            // stalled stream), so requests from before a restart or an
            // election arrive after it.
            let delay = if self.rng.chance(self.cfg.stall) {
                self.rng.range(self.cfg.delay.1, 3_000)
            } else {
                self.rng.range(self.cfg.delay.0, self.cfg.delay.1 + 1)
            };
            let delay = delay + self.slow.get(&(from, to)).copied().unwrap_or(0);
            self.schedule(
                self.now + delay,
                Event::Deliver {
                    from,
                    to,
                    msg: msg.clone(),
                },
            );
        }
    }

    // ---- faults -------------------------------------------------------

    /// Starts a broker process over its disks (after a crash: what was
    /// synced).
    pub fn start(&mut self, b: BrokerId) {
        let node = self.brokers.get_mut(&b).unwrap();
        if node.life.is_some() {
            return;
        }
        node.paused_until = 0;
        node.generation += 1;
        let generation = node.generation;
        node.life = Some(Life {
            epoch: None,
            registered_version: 0,
            version: 0,
            lease: BrokerLease::new(self.cfg.session_timeout),
            replicas: BTreeMap::new(),
            last_heartbeat: 0,
            register_sent: None,
            waiters: BTreeMap::new(),
            next_token: 0,
        });
        self.note(format!("broker {b} starts"));
        let at = self.now + 1;
        self.schedule(at, Event::BrokerTick(b, generation));
    }

    /// SIGKILL: everything not synced is gone.
    pub fn crash(&mut self, b: BrokerId) {
        let node = self.brokers.get_mut(&b).unwrap();
        if node.life.take().is_none() {
            return;
        }
        for disk in node.disks.values_mut() {
            let durable = disk.durable;
            disk.truncate(durable);
        }
        self.note(format!("broker {b} crashes"));
    }

    /// SIGSTOP for `ms`, then SIGCONT.
    pub fn pause(&mut self, b: BrokerId, ms: Millis) {
        let node = self.brokers.get_mut(&b).unwrap();
        if node.life.is_some() {
            node.paused_until = self.now + ms;
            self.note(format!("broker {b} paused for {ms} ms"));
        }
    }

    /// Cuts `a` and `b` apart in both directions.
    pub fn cut(&mut self, a: u32, b: u32) {
        self.blocked.insert((a, b));
        self.blocked.insert((b, a));
        self.note(format!("cut {a} <-> {b}"));
    }

    /// Drops everything `from` sends to `to` (one direction).
    pub fn cut_one_way(&mut self, from: u32, to: u32) {
        self.blocked.insert((from, to));
        self.note(format!("cut {from} -> {to}"));
    }

    /// Cuts a broker off from every other node, clients included.
    pub fn isolate(&mut self, b: u32) {
        let others: Vec<u32> = self.nodes().into_iter().filter(|n| *n != b).collect();
        for o in others {
            self.cut(b, o);
        }
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
        self.slow.clear();
        self.note("network healed".into());
    }

    /// A new controller takes office: every broker's session restarts.
    pub fn controller_failover(&mut self) {
        self.controller
            .liveness
            .reset(&self.controller.state, self.now);
        self.note("controller failover".into());
    }

    fn nodes(&self) -> Vec<u32> {
        let mut nodes: Vec<u32> = self.brokers.keys().copied().collect();
        nodes.push(CONTROLLER);
        nodes.extend((0..self.cfg.producers).map(|i| PRODUCERS + i));
        nodes
    }

    fn chaos(&mut self) {
        let brokers: Vec<BrokerId> = self.brokers.keys().copied().collect();
        let b = self.rng.pick(&brokers);
        match self.rng.range(0, 12) {
            0 | 1 => self.crash(b),
            2 | 3 => {
                let down: Vec<BrokerId> = brokers
                    .iter()
                    .copied()
                    .filter(|b| self.brokers[b].life.is_none())
                    .collect();
                if !down.is_empty() {
                    let b = self.rng.pick(&down);
                    self.start(b);
                }
            }
            4 => {
                let ms = self.rng.range(100, 2 * self.cfg.session_timeout + 500);
                self.pause(b, ms)
            }
            5 => self.isolate(b),
            6 => self.cut(b, CONTROLLER),
            7 => {
                let other = self.rng.pick(&brokers);
                if other != b {
                    self.cut_one_way(b, other);
                }
            }
            8 => {
                // A bridge: two sides that only `b` connects.
                let rest: Vec<BrokerId> = brokers.iter().copied().filter(|x| *x != b).collect();
                if rest.len() >= 2 {
                    let (left, right) = rest.split_at(rest.len() / 2);
                    for l in left {
                        for r in right {
                            self.cut(*l, *r);
                        }
                    }
                }
            }
            9 | 10 => self.heal(),
            _ => {
                if self.rng.chance(0.5) {
                    self.controller_failover();
                } else {
                    let node = self.brokers.get_mut(&b).unwrap();
                    node.sync = !node.sync;
                }
            }
        }
        let next = self.now + self.rng.range(100, 1_500);
        self.schedule(next, Event::Chaos);
    }

    // ---- the loop -----------------------------------------------------

    /// Processes one event; false when none is left.
    pub fn step(&mut self) -> bool {
        let Some(((at, _), event)) = self.events.pop_first() else {
            return false;
        };
        self.now = at;
        self.steps += 1;
        match event {
            Event::Chaos => {
                if self.cfg.chaos {
                    self.chaos();
                }
            }
            Event::Tick(CONTROLLER) => {
                self.controller_tick();
                self.schedule(at + 50, Event::Tick(CONTROLLER));
            }
            Event::Tick(n) if n >= PRODUCERS => {
                self.producer_tick((n - PRODUCERS) as usize);
                self.schedule(at + 20, Event::Tick(n));
            }
            Event::Tick(n) => unreachable!("tick for node {n}"),
            Event::BrokerTick(b, generation) => {
                let node = &self.brokers[&b];
                if node.life.is_none() || node.generation != generation {
                    // That process is dead.
                } else if node.paused_until > at {
                    let until = node.paused_until;
                    self.schedule(until, Event::BrokerTick(b, generation));
                } else {
                    self.broker_tick(b);
                    self.schedule(at + 10, Event::BrokerTick(b, generation));
                }
            }
            Event::Deliver { from, to, msg } => {
                if self.blocked.contains(&(from, to)) {
                    // Cut while in flight.
                } else if to == CONTROLLER {
                    self.controller_receive(from, msg);
                } else if to >= PRODUCERS {
                    self.producer_receive((to - PRODUCERS) as usize, msg);
                } else {
                    let node = &self.brokers[&to];
                    if node.life.is_none() {
                        // Lost with the process.
                    } else if node.paused_until > at {
                        let until = node.paused_until;
                        self.schedule(until, Event::Deliver { from, to, msg });
                    } else {
                        self.broker_receive(to, from, msg);
                    }
                }
            }
        }
        crate::check::after_step(self);
        true
    }

    pub fn run_for(&mut self, ms: Millis) {
        let until = self.now + ms;
        while self
            .events
            .first_key_value()
            .is_some_and(|((at, _), _)| *at <= until)
        {
            self.step();
        }
        self.now = until;
    }

    // ---- controller ---------------------------------------------------

    fn push_metadata(&mut self) {
        let state = self.controller.state.clone();
        let brokers: Vec<BrokerId> = self.brokers.keys().copied().collect();
        for b in brokers {
            self.send(CONTROLLER, b, Msg::Metadata(state.clone()));
        }
    }

    fn controller_tick(&mut self) {
        let expired = self
            .controller
            .liveness
            .expired(&self.controller.state, self.now);
        let mut changed = false;
        for command in expired {
            if let Ok(Applied::Fenced(true)) = self.controller.state.apply(&command) {
                self.note(format!("controller fences {command:?}"));
                changed = true;
            }
        }
        if changed {
            self.push_metadata();
        }
    }

    fn controller_receive(&mut self, from: u32, msg: Msg) {
        match msg {
            Msg::Register {
                sent_at,
                incarnation,
            } => {
                if !self.controller.liveness.may_register(
                    &self.controller.state,
                    from,
                    incarnation,
                    self.now,
                ) {
                    // Refused: the broker asks again later.
                    return;
                }
                let Ok(Applied::Registered(epoch)) =
                    self.controller.state.apply(&Command::RegisterBroker {
                        broker: from,
                        incarnation,
                        address: String::new(),
                        kafka_address: String::new(),
                    })
                else {
                    unreachable!("registration cannot fail")
                };
                self.note(format!("broker {from} registers with epoch {epoch}"));
                self.controller.liveness.registered(from, epoch, self.now);
                let state = self.controller.state.clone();
                self.send(
                    CONTROLLER,
                    from,
                    Msg::RegisterReply {
                        epoch,
                        state,
                        sent_at,
                    },
                );
                self.push_metadata();
            }
            Msg::Heartbeat {
                epoch,
                sent_at,
                version,
            } => {
                let reply = self.controller.liveness.heartbeat(
                    &self.controller.state,
                    from,
                    epoch,
                    self.now,
                );
                let state = (version < self.controller.state.version)
                    .then(|| self.controller.state.clone());
                self.send(
                    CONTROLLER,
                    from,
                    Msg::HeartbeatReply {
                        epoch,
                        alive: reply == HeartbeatReply::Alive,
                        sent_at,
                        state,
                    },
                );
            }
            Msg::AlterIsr { command, base } => {
                let Command::AlterIsr { partition, .. } = &command else {
                    unreachable!()
                };
                let partition = partition.clone();
                let result = match self.controller.state.apply(&command) {
                    Ok(Applied::IsrChanged(state)) => Ok(state),
                    Ok(other) => unreachable!("{other:?}"),
                    Err(e) => Err(e),
                };
                self.note(format!("alter isr {command:?} -> {result:?}"));
                if let Ok(state) = &result {
                    // A broker joins an ISR only on the word of its current
                    // incarnation (KIP-903).
                    let Command::AlterIsr { isr, .. } = &command else {
                        unreachable!()
                    };
                    for (b, epoch) in isr {
                        if let Some(e) = epoch {
                            let current = self.controller.state.brokers[b].epoch;
                            assert_eq!(
                                *e, current,
                                "broker {b} joined the ISR of {partition} on a fetch of its incarnation {e}, not {current}: {state:?}"
                            );
                        }
                    }
                }
                if let Err(CommandError::IneligibleReplica(_)) = &result {
                    self.history.ineligible += 1;
                }
                let ok = result.is_ok();
                self.send(
                    CONTROLLER,
                    from,
                    Msg::AlterIsrReply {
                        partition,
                        base,
                        result,
                    },
                );
                if ok {
                    self.push_metadata();
                }
            }
            Msg::MetadataRequest => {
                let leaders = self
                    .controller
                    .state
                    .partitions
                    .iter()
                    .map(|(tp, s)| (tp.clone(), s.leader))
                    .collect();
                self.send(CONTROLLER, from, Msg::MetadataReply(leaders));
            }
            other => unreachable!("controller got {other:?}"),
        }
    }

    // ---- brokers ------------------------------------------------------

    fn broker_tick(&mut self, b: BrokerId) {
        let now = self.now;
        let hb_every = self.cfg.heartbeat_every;
        let sync_now = self.brokers[&b].sync && self.rng.chance(0.5);
        let node = self.brokers.get_mut(&b).unwrap();
        let life = node.life.as_mut().unwrap();
        let Some(epoch) = life.epoch else {
            if life.register_sent.is_none_or(|t| now - t >= 500) {
                life.register_sent = Some(now);
                let incarnation = node.generation;
                self.send(
                    b,
                    CONTROLLER,
                    Msg::Register {
                        sent_at: now,
                        incarnation,
                    },
                );
            }
            return;
        };
        let mut sends = Vec::new();
        if now - life.last_heartbeat >= hb_every {
            life.last_heartbeat = now;
            sends.push((
                CONTROLLER,
                Msg::Heartbeat {
                    epoch,
                    sent_at: now,
                    version: life.version,
                },
            ));
        }
        for (tp, replica) in life.replicas.iter_mut() {
            replica.tick(now);
            if let Some((leader, request)) = replica.poll_fetch(now) {
                sends.push((
                    leader,
                    Msg::Fetch {
                        partition: tp.clone(),
                        request,
                    },
                ));
            }
            if sync_now {
                let disk = node.disks.get_mut(tp).unwrap();
                disk.durable = disk.end();
                replica.durable_to(disk.durable, now);
                disk.hw_checkpoint = replica.high_watermark();
            }
        }
        for (to, msg) in sends {
            self.send(b, to, msg);
        }
        self.drain(b);
    }

    fn new_replica(&self, b: BrokerId, tp: &TopicPartition, epoch: u64) -> Replica {
        let disk = &self.brokers[&b].disks[tp];
        Replica::new(tp.clone(), b, epoch, self.cfg.replica, disk.log_state())
    }

    fn apply_metadata(&mut self, b: BrokerId, state: &ClusterState) {
        let now = self.now;
        let life = self.brokers[&b].life.as_ref().unwrap();
        let Some(epoch) = life.epoch else { return };
        if state.version < life.version.max(life.registered_version) {
            return;
        }
        let mut created = Vec::new();
        for (tp, ps) in &state.partitions {
            if ps.replicas.contains(&b) && !life.replicas.contains_key(tp) {
                created.push((tp.clone(), self.new_replica(b, tp, epoch)));
            }
        }
        let life = self.brokers.get_mut(&b).unwrap().life.as_mut().unwrap();
        let lease = life.lease.expires_at();
        for (tp, mut r) in created {
            r.set_lease(lease, now);
            life.replicas.insert(tp, r);
        }
        life.version = state.version;
        for (tp, ps) in &state.partitions {
            if let Some(r) = life.replicas.get_mut(tp) {
                r.apply_state(ps, now);
            }
        }
    }

    fn broker_receive(&mut self, b: BrokerId, from: u32, msg: Msg) {
        let now = self.now;
        match msg {
            Msg::RegisterReply {
                epoch,
                state,
                sent_at,
            } => {
                let life = self.brokers.get_mut(&b).unwrap().life.as_mut().unwrap();
                if life.epoch.is_some() || life.register_sent != Some(sent_at) {
                    return;
                }
                life.epoch = Some(epoch);
                life.registered_version = state.version;
                life.version = 0;
                life.replicas.clear();
                life.lease.renewed(sent_at);
                life.last_heartbeat = now;
                self.apply_metadata(b, &state);
            }
            Msg::HeartbeatReply {
                epoch,
                alive,
                sent_at,
                state,
            } => {
                let life = self.brokers.get_mut(&b).unwrap().life.as_mut().unwrap();
                if life.epoch != Some(epoch) {
                    return;
                }
                if alive {
                    life.lease.renewed(sent_at);
                    let until = life.lease.expires_at();
                    for r in life.replicas.values_mut() {
                        r.set_lease(until, now);
                    }
                    if let Some(state) = state {
                        self.apply_metadata(b, &state);
                    }
                } else {
                    // Fenced: this incarnation is over; register anew.
                    life.lease.revoke();
                    life.epoch = None;
                    life.register_sent = None;
                    let waiters: Vec<_> = std::mem::take(&mut life.waiters).into_values().collect();
                    life.replicas.clear();
                    self.note(format!("broker {b} learns it is fenced"));
                    for (producer, req, tp, _) in waiters {
                        self.send(
                            b,
                            producer,
                            Msg::ProduceReply {
                                partition: tp,
                                req,
                                result: Err(ReplicaError::NotLeader),
                            },
                        );
                    }
                }
            }
            Msg::Metadata(state) => self.apply_metadata(b, &state),
            Msg::AlterIsrReply {
                partition,
                base,
                result,
            } => {
                let life = self.brokers.get_mut(&b).unwrap().life.as_mut().unwrap();
                if let Some(r) = life.replicas.get_mut(&partition) {
                    r.on_alter_isr_reply(base, result, now);
                }
            }
            Msg::Fetch { partition, request } => {
                let node = self.brokers.get_mut(&b).unwrap();
                let life = node.life.as_mut().unwrap();
                let reply = match life.replicas.get_mut(&partition) {
                    None => SimFetchReply::Error(ReplicaError::NotLeader),
                    Some(r) => match r.on_fetch(&request, now) {
                        FetchAnswer::Records {
                            from,
                            high_watermark,
                        } => {
                            let batches = node.disks[&partition].from(from, 8);
                            assert!(
                                batches.first().is_none_or(|x| x.base == from),
                                "broker {b}: fetch offset {from} of {partition} is not a batch boundary"
                            );
                            SimFetchReply::Records {
                                high_watermark,
                                batches,
                            }
                        }
                        FetchAnswer::Diverging { epoch, end_offset } => {
                            SimFetchReply::Diverging { epoch, end_offset }
                        }
                        FetchAnswer::Error(e) => SimFetchReply::Error(e),
                    },
                };
                self.send(
                    b,
                    from,
                    Msg::FetchReply {
                        partition,
                        seq: request.seq,
                        reply,
                    },
                );
            }
            Msg::FetchReply {
                partition,
                seq,
                reply,
            } => {
                let node = self.brokers.get_mut(&b).unwrap();
                let life = node.life.as_mut().unwrap();
                let Some(r) = life.replicas.get_mut(&partition) else {
                    return;
                };
                let meta = match &reply {
                    SimFetchReply::Records {
                        high_watermark,
                        batches,
                    } => FetchReply::Records {
                        high_watermark: *high_watermark,
                        batches: batches.iter().map(Batch::meta).collect(),
                    },
                    SimFetchReply::Diverging { epoch, end_offset } => FetchReply::Diverging {
                        epoch: *epoch,
                        end_offset: *end_offset,
                    },
                    SimFetchReply::Error(e) => FetchReply::Error(*e),
                };
                let disk = node.disks.get_mut(&partition).unwrap();
                match r.on_fetch_reply(seq, &meta, now) {
                    FollowerStep::Ignore => {}
                    FollowerStep::Truncate(to) => {
                        disk.truncate(to);
                        self.note(format!("broker {b} truncates {partition} to {to}"));
                    }
                    FollowerStep::Append => {
                        let SimFetchReply::Records {
                            high_watermark,
                            batches,
                        } = reply
                        else {
                            unreachable!()
                        };
                        let metas: Vec<BatchMeta> = batches.iter().map(Batch::meta).collect();
                        for batch in batches {
                            disk.append(batch);
                        }
                        r.follower_appended(seq, &metas, high_watermark, now);
                    }
                }
            }
            Msg::Produce {
                partition,
                req,
                pid,
                seq,
            } => self.produce(b, from, partition, req, pid, seq),
            other => unreachable!("broker got {other:?}"),
        }
        self.drain(b);
    }

    fn produce(
        &mut self,
        b: BrokerId,
        producer: u32,
        tp: TopicPartition,
        req: u64,
        pid: u32,
        seq: u32,
    ) {
        let now = self.now;
        let node = self.brokers.get_mut(&b).unwrap();
        let life = node.life.as_mut().unwrap();
        let broker_epoch = life.epoch;
        let reply = |result| Msg::ProduceReply {
            partition: tp.clone(),
            req,
            result,
        };
        let Some(r) = life.replicas.get_mut(&tp) else {
            self.send(b, producer, reply(Err(ReplicaError::NotLeader)));
            return;
        };
        if let Err(e) = r.check_produce(true, now) {
            self.send(b, producer, reply(Err(e)));
            return;
        }
        let disk = node.disks.get_mut(&tp).unwrap();
        let last = disk.batches.iter().rev().find(|x| x.pid == pid).cloned();
        let batch = match last {
            // A retry of the newest batch: answer once it is committed.
            Some(l) if l.seq == seq => l,
            Some(l) if l.seq > seq => {
                self.send(b, producer, reply(Err(ReplicaError::StaleRequest)));
                return;
            }
            Some(l) if l.seq + 1 != seq => panic!(
                "broker {b} {tp}: producer {pid} sent sequence {seq} after {}: an acknowledged batch is missing",
                l.seq
            ),
            None if seq != 0 => panic!(
                "broker {b} {tp}: producer {pid} sent sequence {seq} and no earlier one is stored: an acknowledged batch is missing"
            ),
            _ => {
                let batch = Batch {
                    base: disk.end(),
                    count: batch_len(pid, seq),
                    epoch: r.leader_epoch(),
                    pid,
                    seq,
                    payload: (u64::from(pid) << 32) | u64::from(seq),
                };
                disk.append(batch.clone());
                r.leader_appended(batch.end());
                self.history.wrote(&tp, batch.epoch, b, broker_epoch.unwrap());
                batch
            }
        };
        life.next_token += 1;
        let token = life.next_token;
        life.waiters
            .insert(token, (producer, req, tp.clone(), batch.clone()));
        r.wait_for(batch.end(), token, now);
    }

    /// Turns the replicas' outputs into messages.
    fn drain(&mut self, b: BrokerId) {
        let node = self.brokers.get_mut(&b).unwrap();
        let Some(life) = node.life.as_mut() else {
            return;
        };
        let broker_epoch = life.epoch;
        let mut sends = Vec::new();
        let mut acks = Vec::new();
        for (tp, r) in life.replicas.iter_mut() {
            while let Some(out) = r.poll_output() {
                match out {
                    Output::Acked(token) => {
                        let (producer, req, tp, batch) = life.waiters.remove(&token).unwrap();
                        acks.push((tp.clone(), batch.clone()));
                        sends.push((
                            producer,
                            Msg::ProduceReply {
                                partition: tp,
                                req,
                                result: Ok(batch.base),
                            },
                        ));
                    }
                    Output::Failed(token, e) => {
                        let (producer, req, tp, _) = life.waiters.remove(&token).unwrap();
                        sends.push((
                            producer,
                            Msg::ProduceReply {
                                partition: tp,
                                req,
                                result: Err(e),
                            },
                        ));
                    }
                    Output::AlterIsr(command) => {
                        let Command::AlterIsr {
                            partition_epoch, ..
                        } = &command
                        else {
                            unreachable!()
                        };
                        let base = *partition_epoch;
                        sends.push((CONTROLLER, Msg::AlterIsr { command, base }));
                    }
                    Output::EpochsChanged => {
                        node.disks.get_mut(tp).unwrap().epochs = r.epochs().clone();
                    }
                }
            }
        }
        for (tp, batch) in &acks {
            self.note(format!(
                "broker {b} acks {tp} [{}, {}) of producer {} seq {}",
                batch.base,
                batch.end(),
                batch.pid,
                batch.seq
            ));
        }
        for (tp, batch) in acks {
            let fenced = self
                .controller
                .state
                .brokers
                .get(&b)
                .is_none_or(|s| s.fenced || Some(s.epoch) != broker_epoch);
            assert!(
                !fenced,
                "broker {b} acknowledged {tp} offset {} while fenced",
                batch.base
            );
            self.history.acked(&tp, batch, b);
        }
        for (to, msg) in sends {
            self.send(b, to, msg);
        }
    }

    // ---- producers ----------------------------------------------------

    fn producer_tick(&mut self, i: usize) {
        let now = self.now;
        let node = PRODUCERS + i as u32;
        let producing = self.producing;
        let p = &mut self.producers[i];
        let mut sends = Vec::new();
        let mut need_metadata = p.leaders.is_empty();
        for (tp, part) in p.parts.iter_mut() {
            if part.in_flight.is_some_and(|(_, sent)| now - sent < 500) || part.backoff_until > now
            {
                continue;
            }
            // Stopping: only batches already sent are finished.
            if !producing && part.in_flight.is_none() {
                continue;
            }
            let Some(Some(leader)) = p.leaders.get(tp) else {
                need_metadata = true;
                continue;
            };
            if part.in_flight.is_some() {
                // Timed out: the leader may have moved.
                need_metadata = true;
            }
            p.next_req += 1;
            part.in_flight = Some((p.next_req, now));
            sends.push((
                *leader,
                Msg::Produce {
                    partition: tp.clone(),
                    req: p.next_req,
                    pid: p.pid,
                    seq: part.seq,
                },
            ));
        }
        if need_metadata && p.asked_metadata.is_none_or(|t| now - t >= 100) {
            p.asked_metadata = Some(now);
            sends.push((CONTROLLER, Msg::MetadataRequest));
        }
        for (to, msg) in sends {
            self.send(node, to, msg);
        }
    }

    fn producer_receive(&mut self, i: usize, msg: Msg) {
        let now = self.now;
        let p = &mut self.producers[i];
        match msg {
            Msg::MetadataReply(leaders) => p.leaders = leaders,
            Msg::ProduceReply {
                partition,
                req,
                result,
            } => {
                let part = p.parts.get_mut(&partition).unwrap();
                if part.in_flight.is_none_or(|(r, _)| r != req) {
                    return;
                }
                part.in_flight = None;
                match result {
                    Ok(base) => {
                        assert!(
                            part.last_base.is_none_or(|last| last < base),
                            "producer {} saw offset {base} of {partition} after {:?}: a duplicate or a rewind",
                            p.pid,
                            part.last_base
                        );
                        part.last_base = Some(base);
                        part.seq += 1;
                        self.history.client_acks += 1;
                    }
                    Err(e) => {
                        *self.history.client_errors.entry(e.to_string()).or_default() += 1;
                        part.backoff_until = now + 50;
                        p.leaders.clear();
                    }
                }
            }
            other => unreachable!("producer got {other:?}"),
        }
    }

    /// Whether every producer has nothing in flight.
    pub fn producers_idle(&self) -> bool {
        self.producers
            .iter()
            .all(|p| p.parts.values().all(|x| x.in_flight.is_none()))
    }

    /// The broker that leads `tp` according to the controller.
    pub fn leader_of(&self, tp: &TopicPartition) -> Option<BrokerId> {
        self.controller.state.partitions[tp].leader
    }

    pub fn replica(&self, b: BrokerId, tp: &TopicPartition) -> Option<&Replica> {
        self.brokers[&b].life.as_ref()?.replicas.get(tp)
    }

    pub fn is_up(&self, b: BrokerId) -> bool {
        self.brokers[&b].life.is_some()
    }
}
