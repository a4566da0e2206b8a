//! The cluster metadata as a deterministic state machine, and the
//! controller's view of which brokers are alive.
//!
//! [`ClusterState::apply`] is the state machine the controller quorum
//! replicates: every broker applies the same commands in the same order and
//! gets the same state, so it must depend on nothing but its input. Timing
//! (heartbeats, session expiry) lives in [`Liveness`], on the active
//! controller only; it turns silence into [`Command::FenceBroker`] commands,
//! which go through the quorum like any other.

use std::collections::BTreeMap;

use crate::{BrokerId, Millis, PartitionState, TopicPartition};

/// A broker as the cluster metadata knows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BrokerState {
    /// Raised at every registration (each start of the broker process) and
    /// at every fencing: requests carrying an older one are refused.
    pub epoch: u64,
    /// Fenced brokers lead nothing and are in no ISR they could leave.
    pub fenced: bool,
    /// The process that registered (random per start): a registration
    /// retried or delivered twice gets the epoch it already got.
    pub incarnation: u64,
    /// Where clients reach it.
    pub address: String,
    /// Where Kafka clients reach it (`host:port`; empty: no Kafka
    /// listener). Absent from logs written before it existed.
    #[serde(default)]
    pub kafka_address: String,
}

/// A change to the cluster metadata.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Command {
    /// A broker process started: it gets a new broker epoch, which fences
    /// its previous incarnation (its replicas may have lost unsynced data).
    RegisterBroker {
        /// The broker.
        broker: BrokerId,
        /// Chosen at random by each start of the process.
        incarnation: u64,
        /// Where clients reach it (`host:port`).
        address: String,
        /// Where Kafka clients reach it (`host:port`; empty: nowhere).
        #[serde(default)]
        kafka_address: String,
    },
    /// The broker's session expired at `epoch`: fence it unless it has
    /// registered again since.
    FenceBroker {
        /// The broker.
        broker: BrokerId,
        /// The broker epoch the controller saw expire.
        epoch: u64,
    },
    /// Create a topic with these replica assignments.
    CreateTopic {
        /// The topic's name.
        topic: String,
        /// One replica list per partition, preferred leader first.
        assignments: Vec<Vec<BrokerId>>,
        /// `min.insync.replicas`.
        min_insync: usize,
        /// The topic's settings, opaque here: every broker holding a
        /// replica creates the topic locally from them.
        #[serde(default)]
        config: String,
    },
    /// A leader asks to change its partition's ISR (Kafka's AlterPartition).
    AlterIsr {
        /// The partition.
        partition: TopicPartition,
        /// The leader asking.
        leader: BrokerId,
        /// The leader epoch it leads under.
        leader_epoch: i32,
        /// The partition epoch of the state it changes.
        partition_epoch: i32,
        /// The ISR it asks for, each member with the broker epoch the leader
        /// saw it fetch with (`None` for members already in the ISR).
        isr: Vec<(BrokerId, Option<u64>)>,
    },
}

/// Why a command was refused.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CommandError {
    /// The topic exists already.
    TopicExists,
    /// A partition or broker named is unknown.
    Unknown(String),
    /// The command is malformed (empty assignment, duplicate replicas...).
    Invalid(String),
    /// The leader or partition epoch named is not the current one.
    Stale,
    /// A broker named for the ISR is fenced, registered again since the
    /// leader saw it fetch, or holds no replica.
    IneligibleReplica(BrokerId),
}

/// What a command changed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Applied {
    /// A broker's new epoch.
    Registered(u64),
    /// Whether the fencing took effect (false if it came too late).
    Fenced(bool),
    /// The topic was created.
    TopicCreated,
    /// The partition's new state.
    IsrChanged(PartitionState),
}

/// The replicated cluster metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterState {
    /// Raised by every applied command: a broker compares it to know whether
    /// its copy is current.
    pub version: u64,
    /// Every broker that ever registered.
    pub brokers: BTreeMap<BrokerId, BrokerState>,
    /// Every partition's replication state.
    pub partitions: BTreeMap<TopicPartition, PartitionState>,
    /// Every topic's settings, as its creation gave them.
    #[serde(default)]
    pub topics: BTreeMap<String, String>,
    /// Source of broker epochs: never reused, so an epoch names one
    /// incarnation for the cluster's lifetime.
    next_broker_epoch: u64,
}

impl ClusterState {
    /// An empty cluster.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one command. A refused command, or one that changes nothing
    /// (a repeated registration), leaves the version as it was.
    pub fn apply(&mut self, command: &Command) -> Result<Applied, CommandError> {
        let applied = match command {
            Command::RegisterBroker {
                broker,
                incarnation,
                address,
                kafka_address,
            } => {
                if let Some(b) = self.brokers.get(broker) {
                    if b.incarnation == *incarnation && !b.fenced {
                        return Ok(Applied::Registered(b.epoch));
                    }
                }
                self.next_broker_epoch += 1;
                let epoch = self.next_broker_epoch;
                self.brokers.insert(
                    *broker,
                    BrokerState {
                        epoch,
                        fenced: false,
                        incarnation: *incarnation,
                        address: address.clone(),
                        kafka_address: kafka_address.clone(),
                    },
                );
                // The previous incarnation may have lost unsynced writes:
                // it leaves every ISR it shares, and leads nothing it
                // could hand over, until it catches up again.
                self.remove_broker(*broker, true);
                self.elect_offline();
                Applied::Registered(epoch)
            }
            Command::FenceBroker { broker, epoch } => {
                let state = self
                    .brokers
                    .get_mut(broker)
                    .ok_or_else(|| CommandError::Unknown(format!("broker {broker}")))?;
                if state.epoch != *epoch || state.fenced {
                    return Ok(Applied::Fenced(false));
                }
                self.next_broker_epoch += 1;
                state.epoch = self.next_broker_epoch;
                state.fenced = true;
                self.remove_broker(*broker, false);
                Applied::Fenced(true)
            }
            Command::CreateTopic {
                topic,
                assignments,
                min_insync,
                config,
            } => {
                self.create_topic(topic, assignments, *min_insync)?;
                self.topics.insert(topic.clone(), config.clone());
                Applied::TopicCreated
            }
            Command::AlterIsr {
                partition,
                leader,
                leader_epoch,
                partition_epoch,
                isr,
            } => Applied::IsrChanged(self.alter_isr(
                partition,
                *leader,
                *leader_epoch,
                *partition_epoch,
                isr,
            )?),
        };
        self.version += 1;
        Ok(applied)
    }

    /// The alive, unfenced brokers.
    pub fn is_live(&self, broker: BrokerId) -> bool {
        self.brokers.get(&broker).is_some_and(|b| !b.fenced)
    }

    fn create_topic(
        &mut self,
        topic: &str,
        assignments: &[Vec<BrokerId>],
        min_insync: usize,
    ) -> Result<(), CommandError> {
        if self.partitions.keys().any(|tp| tp.topic == topic) {
            return Err(CommandError::TopicExists);
        }
        if assignments.is_empty() {
            return Err(CommandError::Invalid("no partitions".into()));
        }
        for replicas in assignments {
            let mut sorted = replicas.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if replicas.is_empty() || sorted.len() != replicas.len() {
                return Err(CommandError::Invalid(format!(
                    "replica list {replicas:?} is empty or repeats a broker"
                )));
            }
            if let Some(b) = replicas.iter().find(|b| !self.brokers.contains_key(b)) {
                return Err(CommandError::Unknown(format!("broker {b}")));
            }
            if min_insync == 0 || min_insync > replicas.len() {
                return Err(CommandError::Invalid(format!(
                    "min.insync.replicas {min_insync} with {} replicas",
                    replicas.len()
                )));
            }
        }
        for (i, replicas) in assignments.iter().enumerate() {
            let mut state = PartitionState {
                replicas: replicas.clone(),
                leader: None,
                leader_epoch: 0,
                partition_epoch: 0,
                isr: replicas.clone(),
                min_insync,
            };
            state.leader = replicas.iter().copied().find(|b| self.is_live(*b));
            self.partitions
                .insert(TopicPartition::new(topic, i as u32), state);
        }
        Ok(())
    }

    fn alter_isr(
        &mut self,
        partition: &TopicPartition,
        leader: BrokerId,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: &[(BrokerId, Option<u64>)],
    ) -> Result<PartitionState, CommandError> {
        let state = self
            .partitions
            .get(partition)
            .ok_or_else(|| CommandError::Unknown(format!("partition {partition}")))?;
        if state.leader != Some(leader)
            || state.leader_epoch != leader_epoch
            || state.partition_epoch != partition_epoch
        {
            return Err(CommandError::Stale);
        }
        if !isr.iter().any(|(b, _)| *b == leader) {
            return Err(CommandError::Invalid(
                "the leader must stay in the ISR".into(),
            ));
        }
        for (b, epoch) in isr {
            let eligible = state.replicas.contains(b)
                && match epoch {
                    // A member joining must be the incarnation the leader saw
                    // catch up (KIP-903): a fetch sent before a restart
                    // speaks for data the restarted broker may have lost.
                    Some(e) => self
                        .brokers
                        .get(b)
                        .is_some_and(|s| !s.fenced && s.epoch == *e),
                    None => state.isr.contains(b),
                };
            if !eligible {
                return Err(CommandError::IneligibleReplica(*b));
            }
        }
        let state = self.partitions.get_mut(partition).expect("checked above");
        state.isr = state
            .replicas
            .iter()
            .copied()
            .filter(|r| isr.iter().any(|(b, _)| b == r))
            .collect();
        state.partition_epoch += 1;
        Ok(state.clone())
    }

    /// Takes `broker` out of every ISR it shares with others and moves its
    /// leaderships to another ISR member. As the last ISR member it stays
    /// (unclean election is off): when `lead_again`, it leads again under a
    /// new epoch, else the partition has no leader until it returns.
    fn remove_broker(&mut self, broker: BrokerId, lead_again: bool) {
        let live: Vec<BrokerId> = self
            .brokers
            .iter()
            .filter(|(id, s)| !s.fenced && **id != broker)
            .map(|(id, _)| *id)
            .collect();
        for state in self.partitions.values_mut() {
            let mut changed = false;
            if state.isr.contains(&broker) && state.isr.len() > 1 {
                state.isr.retain(|b| *b != broker);
                changed = true;
            }
            if state.leader == Some(broker) {
                let next = if state.isr.contains(&broker) {
                    lead_again.then_some(broker)
                } else {
                    state.isr.iter().copied().find(|b| live.contains(b))
                };
                state.leader = next;
                state.leader_epoch += 1;
                changed = true;
            }
            if changed {
                state.partition_epoch += 1;
            }
        }
    }

    /// Gives a leader to every partition without one whose ISR holds a live
    /// broker.
    fn elect_offline(&mut self) {
        let brokers = &self.brokers;
        for state in self.partitions.values_mut() {
            if state.leader.is_some() {
                continue;
            }
            let next = state
                .isr
                .iter()
                .copied()
                .find(|b| brokers.get(b).is_some_and(|s| !s.fenced));
            if next.is_some() {
                state.leader = next;
                state.leader_epoch += 1;
                state.partition_epoch += 1;
            }
        }
    }
}

/// The active controller's record of heartbeats. Not replicated: a new
/// controller starts every broker's session afresh ([`Liveness::reset`]).
#[derive(Clone, Debug, Default)]
pub struct Liveness {
    session_timeout: Millis,
    last_heard: BTreeMap<BrokerId, (u64, Millis)>,
}

/// The controller's answer to a heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeartbeatReply {
    /// The session is extended; the broker may keep leading.
    Alive,
    /// The epoch is not the broker's current one: it was fenced or
    /// registered again. The broker must stop leading and register.
    Fenced,
}

impl Liveness {
    /// A controller that fences brokers silent for `session_timeout`.
    pub fn new(session_timeout: Millis) -> Self {
        Self {
            session_timeout,
            last_heard: BTreeMap::new(),
        }
    }

    /// A broker heartbeat at `epoch` arrived at `now`.
    pub fn heartbeat(
        &mut self,
        state: &ClusterState,
        broker: BrokerId,
        epoch: u64,
        now: Millis,
    ) -> HeartbeatReply {
        match state.brokers.get(&broker) {
            Some(s) if s.epoch == epoch && !s.fenced => {
                self.last_heard.insert(broker, (epoch, now));
                HeartbeatReply::Alive
            }
            _ => HeartbeatReply::Fenced,
        }
    }

    /// This controller just took office: every live broker's session starts
    /// now (KRaft does the same), since heartbeats went to the old one.
    pub fn reset(&mut self, state: &ClusterState, now: Millis) {
        self.last_heard = state
            .brokers
            .iter()
            .filter(|(_, s)| !s.fenced)
            .map(|(id, s)| (*id, (s.epoch, now)))
            .collect();
    }

    /// Whether `broker` may register as `incarnation` at `now`. Not while a
    /// different incarnation holds a live session (KRaft's rule): a restarted
    /// process waits for its predecessor's session to run out, and a stale
    /// registration of a dead process never fences a live one. So a
    /// broker's epoch changes only once its lease ([`crate::lease`]) has run
    /// out, or by its own doing.
    pub fn may_register(
        &self,
        state: &ClusterState,
        broker: BrokerId,
        incarnation: u64,
        now: Millis,
    ) -> bool {
        match state.brokers.get(&broker) {
            Some(s) if s.incarnation != incarnation && !s.fenced => {
                !self.last_heard.get(&broker).is_some_and(|(e, at)| {
                    *e == s.epoch && now.saturating_sub(*at) <= self.session_timeout
                })
            }
            _ => true,
        }
    }

    /// A broker registered at `epoch`: its session starts now.
    pub fn registered(&mut self, broker: BrokerId, epoch: u64, now: Millis) {
        self.last_heard.insert(broker, (epoch, now));
    }

    /// The commands fencing every broker silent past the session timeout.
    /// A broker epoch this controller has no record of (it applied the
    /// registration before [`Liveness::registered`] ran, or took office
    /// since) gets a full session from now: its lease began earlier, so it
    /// still ends first.
    pub fn expired(&mut self, state: &ClusterState, now: Millis) -> Vec<Command> {
        let mut fence = Vec::new();
        for (id, s) in state.brokers.iter().filter(|(_, s)| !s.fenced) {
            let heard = self.last_heard.entry(*id).or_insert((s.epoch, now));
            if heard.0 != s.epoch {
                *heard = (s.epoch, now);
            }
            if now.saturating_sub(heard.1) > self.session_timeout {
                fence.push(Command::FenceBroker {
                    broker: *id,
                    epoch: s.epoch,
                });
            }
        }
        fence
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(brokers: u32) -> ClusterState {
        let mut c = ClusterState::new();
        for b in 1..=brokers {
            c.apply(&Command::RegisterBroker {
                broker: b,
                incarnation: 1,
                address: String::new(),
                kafka_address: String::new(),
            })
            .unwrap();
        }
        c.apply(&Command::CreateTopic {
            topic: "t".into(),
            assignments: vec![(1..=brokers).collect()],
            min_insync: 2,
            config: String::new(),
        })
        .unwrap();
        c
    }

    fn tp() -> TopicPartition {
        TopicPartition::new("t", 0)
    }

    #[test]
    fn fencing_the_leader_elects_an_isr_member_under_a_higher_epoch() {
        let mut c = cluster(3);
        let before = c.partitions[&tp()].clone();
        assert_eq!(before.leader, Some(1));
        let epoch = c.brokers[&1].epoch;
        assert_eq!(
            c.apply(&Command::FenceBroker { broker: 1, epoch }),
            Ok(Applied::Fenced(true))
        );
        let after = &c.partitions[&tp()];
        assert_eq!(after.leader, Some(2));
        assert_eq!(after.isr, vec![2, 3]);
        assert!(after.leader_epoch > before.leader_epoch);
        assert!(c.brokers[&1].epoch > epoch && c.brokers[&1].fenced);
        // A fencing that names the old epoch again changes nothing.
        let version = c.version;
        assert_eq!(
            c.apply(&Command::FenceBroker { broker: 1, epoch }),
            Ok(Applied::Fenced(false))
        );
        assert_eq!(c.version, version);
    }

    #[test]
    fn the_last_isr_member_is_never_replaced_by_an_out_of_sync_replica() {
        let mut c = cluster(3);
        for b in [2, 3] {
            let epoch = c.brokers[&b].epoch;
            c.apply(&Command::FenceBroker { broker: b, epoch }).unwrap();
        }
        assert_eq!(c.partitions[&tp()].isr, vec![1]);
        let epoch = c.brokers[&1].epoch;
        c.apply(&Command::FenceBroker { broker: 1, epoch }).unwrap();
        assert_eq!(c.partitions[&tp()].leader, None, "unclean election is off");
        // Out-of-sync replicas coming back do not lead.
        c.apply(&Command::RegisterBroker {
            broker: 2,
            incarnation: 2,
            address: String::new(),
            kafka_address: String::new(),
        })
        .unwrap();
        assert_eq!(c.partitions[&tp()].leader, None);
        let epoch_before = c.partitions[&tp()].leader_epoch;
        c.apply(&Command::RegisterBroker {
            broker: 1,
            incarnation: 2,
            address: String::new(),
            kafka_address: String::new(),
        })
        .unwrap();
        assert_eq!(c.partitions[&tp()].leader, Some(1));
        assert!(c.partitions[&tp()].leader_epoch > epoch_before);
    }

    #[test]
    fn an_isr_change_must_name_the_current_epochs_and_incarnations() {
        let mut c = cluster(3);
        let p = c.partitions[&tp()].clone();
        let shrink = Command::AlterIsr {
            partition: tp(),
            leader: 1,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: vec![(1, None), (2, None)],
        };
        let Applied::IsrChanged(now) = c.apply(&shrink).unwrap() else {
            panic!("not an ISR change")
        };
        assert_eq!(now.isr, vec![1, 2]);
        assert_eq!(c.apply(&shrink), Err(CommandError::Stale), "replayed");
        // Broker 3 restarts; a fetch its old incarnation sent cannot
        // bring it back.
        let old = c.brokers[&3].epoch;
        let restart = Command::RegisterBroker {
            broker: 3,
            incarnation: 2,
            address: String::new(),
            kafka_address: String::new(),
        };
        c.apply(&restart).unwrap();
        let version = c.version;
        assert_eq!(
            c.apply(&restart),
            Ok(Applied::Registered(c.brokers[&3].epoch)),
            "a repeated registration gets the same epoch"
        );
        assert_eq!(c.version, version);
        let grow = |epoch| Command::AlterIsr {
            partition: tp(),
            leader: 1,
            leader_epoch: now.leader_epoch,
            partition_epoch: now.partition_epoch,
            isr: vec![(1, None), (2, None), (3, Some(epoch))],
        };
        assert_eq!(c.apply(&grow(old)), Err(CommandError::IneligibleReplica(3)));
        let new = c.brokers[&3].epoch;
        assert!(matches!(c.apply(&grow(new)), Ok(Applied::IsrChanged(_))));
        assert_eq!(c.partitions[&tp()].isr, vec![1, 2, 3]);
    }

    #[test]
    fn a_silent_broker_expires_and_a_new_controller_starts_sessions_afresh() {
        let c = cluster(2);
        let mut live = Liveness::new(1_000);
        live.reset(&c, 0);
        assert_eq!(
            live.heartbeat(&c, 1, c.brokers[&1].epoch, 600),
            HeartbeatReply::Alive
        );
        assert_eq!(live.heartbeat(&c, 2, 999, 600), HeartbeatReply::Fenced);
        assert!(live.expired(&c, 1_000).is_empty());
        let expired = live.expired(&c, 1_001);
        assert_eq!(
            expired,
            vec![Command::FenceBroker {
                broker: 2,
                epoch: c.brokers[&2].epoch
            }]
        );
        live.reset(&c, 1_001);
        assert!(live.expired(&c, 2_001).is_empty());
    }

    #[test]
    fn another_incarnation_registers_only_once_the_live_session_ran_out() {
        let c = cluster(3);
        let mut live = Liveness::new(1_000);
        live.reset(&c, 0);
        assert!(live.may_register(&c, 1, 1, 500), "the same process again");
        assert!(
            !live.may_register(&c, 1, 2, 500),
            "a new process while the old one's session lives"
        );
        assert!(!live.may_register(&c, 1, 2, 1_000));
        assert!(live.may_register(&c, 1, 2, 1_001));
        assert!(live.may_register(&c, 9, 1, 0), "a broker never seen");
    }
}
