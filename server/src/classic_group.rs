//! Kafka's classic consumer-group protocol (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup), kept like the native groups by the task of the
//! group's `__consumer_offsets` partition. The broker only gathers members
//! and hands out what the leader member assigned: assignment happens in the
//! client, as in Kafka.
//!
//! A rebalance: every member (re)joins; the join phase ends when all known
//! members have joined or the rebalance timeout passes (the silent ones are
//! dropped); each gets the new generation, the leader also every member's
//! subscription; the leader's SyncGroup carries the assignments, which the
//! other members' SyncGroups receive. Heartbeats tell members a rebalance
//! started (REBALANCE_IN_PROGRESS) so they rejoin.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

/// Kafka error codes the protocol answers with.
pub mod code {
    /// No error.
    pub const NONE: i16 = 0;
    /// This broker does not coordinate the group (now): the client looks
    /// for its coordinator again.
    pub const NOT_COORDINATOR: i16 = 16;
    /// The generation is not the group's.
    pub const ILLEGAL_GENERATION: i16 = 22;
    /// The member's protocols share none with the group's.
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    /// The member is not in the group.
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    /// The session timeout is out of range.
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    /// A rebalance is under way: join again.
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    /// Join again with the member id this answer carries (v4+).
    pub const MEMBER_ID_REQUIRED: i16 = 79;
}

/// Shortest and longest session timeouts accepted (Kafka's broker
/// defaults: `group.min.session.timeout.ms`, `group.max.session.timeout.ms`).
const SESSION_MIN: Duration = Duration::from_millis(6_000);
const SESSION_MAX: Duration = Duration::from_millis(1_800_000);
/// How long the first join of an empty group waits for others (Kafka's
/// `group.initial.rebalance.delay.ms` is 3 s; a short one keeps a lone
/// consumer's start quick).
const INITIAL_DELAY: Duration = Duration::from_millis(300);

/// A JoinGroup.
pub struct Join {
    /// Empty on a first join.
    pub member_id: String,
    /// The client's id, to name new members after.
    pub client_id: String,
    /// Silence after which the member is dropped.
    pub session_timeout: Duration,
    /// How long a rebalance waits for the member to rejoin.
    pub rebalance_timeout: Duration,
    /// `consumer` for consumers.
    pub protocol_type: String,
    /// Assignors the member supports, in preference order, with its
    /// subscription for each.
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: a first join gets MEMBER_ID_REQUIRED and an id to come back with.
    pub require_known_member_id: bool,
}

/// A JoinGroup's answer.
#[derive(Debug, Clone, Default)]
pub struct Joined {
    /// Kafka error code.
    pub error: i16,
    /// The new generation.
    pub generation: i32,
    /// The protocol type.
    pub protocol_type: String,
    /// The assignor every member supports.
    pub protocol: String,
    /// The leader member.
    pub leader: String,
    /// This member's id.
    pub member_id: String,
    /// For the leader: every member and its subscription.
    pub members: Vec<(String, Bytes)>,
}

impl Joined {
    fn error(error: i16, member_id: String) -> Joined {
        Joined {
            error,
            generation: -1,
            member_id,
            ..Joined::default()
        }
    }
}

struct Member {
    session: Duration,
    rebalance: Duration,
    protocols: Vec<(String, Bytes)>,
    last_seen: Instant,
    joining: Option<oneshot::Sender<Joined>>,
    syncing: Option<oneshot::Sender<(i16, Bytes)>>,
    assignment: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Empty,
    /// Joins are gathered until `until` or every member joined.
    Joining {
        until: Instant,
    },
    /// The leader's SyncGroup is awaited.
    Syncing,
    Stable,
}

struct Group {
    generation: i32,
    phase: Phase,
    protocol_type: String,
    protocol: String,
    leader: String,
    members: BTreeMap<String, Member>,
    /// Ids handed out with MEMBER_ID_REQUIRED, not yet joined.
    pending: BTreeMap<String, Instant>,
}

/// Every classic group of one offsets partition.
#[derive(Default)]
pub struct ClassicGroups {
    groups: HashMap<String, Group>,
    next_id: u64,
}

impl ClassicGroups {
    /// Whether `group` is a classic group here.
    pub fn has(&self, group: &str) -> bool {
        self.groups
            .get(group)
            .is_some_and(|g| !g.members.is_empty() || !g.pending.is_empty())
    }

    /// Group names with members.
    pub fn names(&self) -> Vec<String> {
        self.groups
            .iter()
            .filter(|(_, g)| !g.members.is_empty())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Handles a JoinGroup; its answer comes on `reply` when the join
    /// phase ends (or at once, for an error).
    pub fn join(&mut self, group: &str, join: Join, reply: oneshot::Sender<Joined>, now: Instant) {
        if !(SESSION_MIN..=SESSION_MAX).contains(&join.session_timeout) {
            let _ = reply.send(Joined::error(code::INVALID_SESSION_TIMEOUT, join.member_id));
            return;
        }
        let g = self
            .groups
            .entry(group.to_string())
            .or_insert_with(|| Group {
                generation: 0,
                phase: Phase::Empty,
                protocol_type: join.protocol_type.clone(),
                protocol: String::new(),
                leader: String::new(),
                members: BTreeMap::new(),
                pending: BTreeMap::new(),
            });
        if !g.members.is_empty() && g.protocol_type != join.protocol_type {
            let _ = reply.send(Joined::error(
                code::INCONSISTENT_GROUP_PROTOCOL,
                join.member_id,
            ));
            return;
        }
        g.protocol_type = join.protocol_type.clone();
        let mut member_id = join.member_id;
        if member_id.is_empty() {
            self.next_id += 1;
            member_id = format!(
                "{}-{}-{:x}",
                join.client_id,
                self.next_id,
                now.elapsed().as_nanos() & 0xffff
            );
            if join.require_known_member_id {
                g.pending
                    .insert(member_id.clone(), now + join.session_timeout);
                let _ = reply.send(Joined::error(code::MEMBER_ID_REQUIRED, member_id));
                return;
            }
        } else if !g.members.contains_key(&member_id) && g.pending.remove(&member_id).is_none() {
            let _ = reply.send(Joined::error(code::UNKNOWN_MEMBER_ID, member_id));
            return;
        }
        // A protocol every member (this one included) supports.
        let shared = join.protocols.iter().any(|(name, _)| {
            g.members
                .iter()
                .filter(|(id, _)| **id != member_id)
                .all(|(_, m)| m.protocols.iter().any(|(n, _)| n == name))
        });
        if !shared {
            let _ = reply.send(Joined::error(code::INCONSISTENT_GROUP_PROTOCOL, member_id));
            return;
        }
        let member = g
            .members
            .entry(member_id.clone())
            .or_insert_with(|| Member {
                session: join.session_timeout,
                rebalance: join.rebalance_timeout,
                protocols: Vec::new(),
                last_seen: now,
                joining: None,
                syncing: None,
                assignment: Bytes::new(),
            });
        member.session = join.session_timeout;
        member.rebalance = join.rebalance_timeout;
        member.protocols = join.protocols;
        member.last_seen = now;
        // A rejoin replaces an earlier one still waiting.
        member.joining = Some(reply);
        match g.phase {
            Phase::Joining { .. } => {}
            Phase::Empty => {
                g.phase = Phase::Joining {
                    until: now + INITIAL_DELAY,
                }
            }
            // Any join of a settled group starts a rebalance, even an
            // unchanged member's (Kafka answers that one at once with the
            // current generation; here it waits for the new one).
            Phase::Stable | Phase::Syncing => g.start_rebalance(now),
        }
        g.maybe_complete_join(now);
    }

    /// Handles a SyncGroup; its answer (error, assignment) comes on
    /// `reply` once the leader has sent the assignments.
    pub fn sync(
        &mut self,
        group: &str,
        generation: i32,
        member_id: &str,
        assignments: Vec<(String, Bytes)>,
        reply: oneshot::Sender<(i16, Bytes)>,
        now: Instant,
    ) {
        let Some(g) = self.groups.get_mut(group) else {
            let _ = reply.send((code::UNKNOWN_MEMBER_ID, Bytes::new()));
            return;
        };
        let error = g.check(member_id, generation);
        if error != code::NONE {
            let _ = reply.send((error, Bytes::new()));
            return;
        }
        if let Some(m) = g.members.get_mut(member_id) {
            m.last_seen = now;
        }
        match g.phase {
            Phase::Joining { .. } | Phase::Empty => {
                let _ = reply.send((code::REBALANCE_IN_PROGRESS, Bytes::new()));
            }
            Phase::Stable => {
                let assignment = g.members[member_id].assignment.clone();
                let _ = reply.send((code::NONE, assignment));
            }
            Phase::Syncing => {
                if let Some(m) = g.members.get_mut(member_id) {
                    m.syncing = Some(reply);
                }
                if member_id == g.leader {
                    let given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for (id, m) in &mut g.members {
                        m.assignment = given.get(id).cloned().unwrap_or_default();
                    }
                    g.phase = Phase::Stable;
                    for m in g.members.values_mut() {
                        if let Some(waiting) = m.syncing.take() {
                            let _ = waiting.send((code::NONE, m.assignment.clone()));
                        }
                    }
                }
            }
        }
    }

    /// Handles a Heartbeat: NONE, or why the member must rejoin.
    pub fn heartbeat(
        &mut self,
        group: &str,
        generation: i32,
        member_id: &str,
        now: Instant,
    ) -> i16 {
        let Some(g) = self.groups.get_mut(group) else {
            return code::UNKNOWN_MEMBER_ID;
        };
        let error = g.check(member_id, generation);
        if error != code::NONE {
            return error;
        }
        if let Some(m) = g.members.get_mut(member_id) {
            m.last_seen = now;
        }
        match g.phase {
            Phase::Joining { .. } => code::REBALANCE_IN_PROGRESS,
            _ => code::NONE,
        }
    }

    /// Handles a LeaveGroup: one error per member.
    pub fn leave(&mut self, group: &str, member_ids: &[String], now: Instant) -> Vec<i16> {
        let Some(g) = self.groups.get_mut(group) else {
            return vec![code::UNKNOWN_MEMBER_ID; member_ids.len()];
        };
        let mut out = Vec::with_capacity(member_ids.len());
        let mut left = false;
        for id in member_ids {
            if g.members.remove(id).is_some() {
                left = true;
                out.push(code::NONE);
            } else {
                out.push(code::UNKNOWN_MEMBER_ID);
            }
        }
        if left {
            g.start_rebalance(now);
            g.maybe_complete_join(now);
        }
        out
    }

    /// Checks a commit against the group: NONE for a standalone consumer
    /// (generation < 0) or a current member.
    pub fn check_commit(&self, group: &str, member_id: &str, generation: i32) -> i16 {
        if generation < 0 {
            return code::NONE;
        }
        match self.groups.get(group) {
            None => code::UNKNOWN_MEMBER_ID,
            Some(g) => match g.check(member_id, generation) {
                code::NONE if matches!(g.phase, Phase::Joining { .. }) => {
                    code::REBALANCE_IN_PROGRESS
                }
                other => other,
            },
        }
    }

    /// Drops members silent past their session, and ends join phases
    /// whose time is up; returns the members dropped.
    pub fn tick(&mut self, now: Instant) -> Vec<String> {
        let mut dropped = Vec::new();
        for g in self.groups.values_mut() {
            g.pending.retain(|_, until| *until > now);
            let silent: Vec<String> = g
                .members
                .iter()
                .filter(|(_, m)| m.joining.is_none() && now.duration_since(m.last_seen) > m.session)
                .map(|(id, _)| id.clone())
                .collect();
            if !silent.is_empty() {
                for id in &silent {
                    g.members.remove(id);
                }
                dropped.extend(silent);
                g.start_rebalance(now);
            }
            g.maybe_complete_join(now);
        }
        self.groups
            .retain(|_, g| !g.members.is_empty() || !g.pending.is_empty());
        dropped
    }

    /// A group as Kafka's DescribeGroups shows it.
    pub fn describe(&self, group: &str) -> Option<Described> {
        let g = self.groups.get(group)?;
        let state = match g.phase {
            Phase::Empty => "Empty",
            Phase::Joining { .. } => "PreparingRebalance",
            Phase::Syncing => "CompletingRebalance",
            Phase::Stable => "Stable",
        };
        Some(Described {
            state: state.into(),
            protocol_type: g.protocol_type.clone(),
            protocol: g.protocol.clone(),
            members: g
                .members
                .iter()
                .map(|(id, m)| {
                    let metadata = m
                        .protocols
                        .iter()
                        .find(|(n, _)| *n == g.protocol)
                        .map(|(_, b)| b.clone())
                        .unwrap_or_default();
                    (id.clone(), metadata, m.assignment.clone())
                })
                .collect(),
        })
    }
}

/// A classic group's description.
#[derive(Debug, Clone, Default)]
pub struct Described {
    /// Kafka's name of its state (`Stable`, `PreparingRebalance`, ...).
    pub state: String,
    /// Its protocol type.
    pub protocol_type: String,
    /// Its assignor.
    pub protocol: String,
    /// Each member: id, subscription, assignment.
    pub members: Vec<(String, Bytes, Bytes)>,
}

impl Group {
    fn check(&self, member_id: &str, generation: i32) -> i16 {
        if !self.members.contains_key(member_id) {
            code::UNKNOWN_MEMBER_ID
        } else if generation != self.generation {
            code::ILLEGAL_GENERATION
        } else {
            code::NONE
        }
    }

    fn start_rebalance(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Joining { .. }) {
            return;
        }
        // Members waiting for the leader's assignments rejoin instead.
        for m in self.members.values_mut() {
            if let Some(waiting) = m.syncing.take() {
                let _ = waiting.send((code::REBALANCE_IN_PROGRESS, Bytes::new()));
            }
        }
        let wait = self
            .members
            .values()
            .map(|m| m.rebalance)
            .max()
            .unwrap_or_default();
        self.phase = if self.members.is_empty() {
            Phase::Empty
        } else {
            Phase::Joining { until: now + wait }
        };
    }

    /// Ends the join phase once every member joined, or its time is up
    /// (members that did not rejoin are dropped).
    fn maybe_complete_join(&mut self, now: Instant) {
        let Phase::Joining { until } = self.phase else {
            return;
        };
        let all = self.members.values().all(|m| m.joining.is_some());
        // A new group's first rebalance waits the initial delay for
        // members starting at the same time.
        if now < until && (!all || self.generation == 0) {
            return;
        }
        self.members.retain(|_, m| m.joining.is_some());
        if self.members.is_empty() {
            self.phase = Phase::Empty;
            return;
        }
        self.generation += 1;
        if !self.members.contains_key(&self.leader) {
            self.leader = self.members.keys().next().cloned().unwrap_or_default();
        }
        // The leader's most preferred protocol that every member supports.
        let leader = &self.members[&self.leader];
        self.protocol = leader
            .protocols
            .iter()
            .map(|(n, _)| n)
            .find(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == *n))
            })
            .cloned()
            .unwrap_or_default();
        let subscriptions: Vec<(String, Bytes)> = self
            .members
            .iter()
            .map(|(id, m)| {
                let meta = m
                    .protocols
                    .iter()
                    .find(|(n, _)| *n == self.protocol)
                    .map(|(_, b)| b.clone())
                    .unwrap_or_default();
                (id.clone(), meta)
            })
            .collect();
        for (id, m) in &mut self.members {
            m.last_seen = now;
            if let Some(reply) = m.joining.take() {
                let _ = reply.send(Joined {
                    error: code::NONE,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol: self.protocol.clone(),
                    leader: self.leader.clone(),
                    member_id: id.clone(),
                    members: if *id == self.leader {
                        subscriptions.clone()
                    } else {
                        Vec::new()
                    },
                });
            }
        }
        self.phase = Phase::Syncing;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(member: &str, known: bool) -> Join {
        Join {
            member_id: member.into(),
            client_id: "c".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(5),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"sub"))],
            require_known_member_id: known,
        }
    }

    fn joined(rx: &mut oneshot::Receiver<Joined>) -> Option<Joined> {
        rx.try_recv().ok()
    }

    #[test]
    fn two_members_join_sync_and_a_leave_rebalances() {
        let mut groups = ClassicGroups::default();
        let t0 = Instant::now();
        // v4: a first join gets an id to come back with.
        let (tx, mut rx) = oneshot::channel();
        groups.join("g", join("", true), tx, t0);
        let first = joined(&mut rx).unwrap();
        assert_eq!(first.error, code::MEMBER_ID_REQUIRED);
        let (tx, mut a) = oneshot::channel();
        groups.join("g", join(&first.member_id, true), tx, t0);
        let (tx, mut b) = oneshot::channel();
        groups.join("g", join("", false), tx, t0);
        // Both joined, but a new group waits the initial delay.
        assert!(joined(&mut a).is_none());
        groups.tick(t0 + INITIAL_DELAY + Duration::from_millis(1));
        let (ja, jb) = (joined(&mut a).unwrap(), joined(&mut b).unwrap());
        assert_eq!((ja.generation, jb.generation), (1, 1));
        assert_eq!(ja.leader, jb.leader);
        let (leader, other) = if ja.member_id == ja.leader {
            (ja, jb)
        } else {
            (jb, ja)
        };
        assert_eq!(leader.members.len(), 2);
        assert!(other.members.is_empty());
        assert_eq!(leader.protocol, "range");
        // The follower's sync waits for the leader's.
        let now = t0 + Duration::from_secs(1);
        let (tx, mut fs) = oneshot::channel();
        groups.sync("g", 1, &other.member_id, vec![], tx, now);
        assert!(fs.try_recv().is_err());
        let (tx, mut ls) = oneshot::channel();
        let assignments = vec![
            (leader.member_id.clone(), Bytes::from_static(b"L")),
            (other.member_id.clone(), Bytes::from_static(b"O")),
        ];
        groups.sync("g", 1, &leader.member_id, assignments, tx, now);
        assert_eq!(
            ls.try_recv().unwrap(),
            (code::NONE, Bytes::from_static(b"L"))
        );
        assert_eq!(
            fs.try_recv().unwrap(),
            (code::NONE, Bytes::from_static(b"O"))
        );
        assert_eq!(groups.heartbeat("g", 1, &other.member_id, now), code::NONE);
        assert_eq!(
            groups.heartbeat("g", 0, &other.member_id, now),
            code::ILLEGAL_GENERATION
        );
        assert_eq!(groups.check_commit("g", &other.member_id, 1), code::NONE);
        // The leader leaves: the other is told to rejoin, and alone makes
        // generation 2 as soon as it does.
        assert_eq!(
            groups.leave("g", std::slice::from_ref(&leader.member_id), now),
            vec![code::NONE]
        );
        assert_eq!(
            groups.heartbeat("g", 1, &other.member_id, now),
            code::REBALANCE_IN_PROGRESS
        );
        assert_eq!(
            groups.check_commit("g", &other.member_id, 1),
            code::REBALANCE_IN_PROGRESS
        );
        let (tx, mut again) = oneshot::channel();
        groups.join("g", join(&other.member_id, true), tx, now);
        let j = joined(&mut again).unwrap();
        assert_eq!(
            (j.generation, j.leader.as_str()),
            (2, other.member_id.as_str())
        );
    }

    #[test]
    fn a_silent_member_is_dropped_and_the_rest_rebalance_without_it() {
        let mut groups = ClassicGroups::default();
        let t0 = Instant::now();
        let (tx, mut a) = oneshot::channel();
        groups.join("g", join("", false), tx, t0);
        let (tx, mut b) = oneshot::channel();
        groups.join("g", join("", false), tx, t0);
        groups.tick(t0 + INITIAL_DELAY * 2);
        let (ja, jb) = (joined(&mut a).unwrap(), joined(&mut b).unwrap());
        let (tx, _s) = oneshot::channel();
        let leader = ja.leader.clone();
        groups.sync("g", 1, &leader, vec![], tx, t0 + INITIAL_DELAY * 2);
        // Only a heartbeats; b goes silent past its 10 s session.
        let later = t0 + Duration::from_secs(8);
        assert_eq!(groups.heartbeat("g", 1, &ja.member_id, later), code::NONE);
        let dropped = groups.tick(t0 + Duration::from_secs(11));
        assert_eq!(dropped, vec![jb.member_id.clone()]);
        assert_eq!(
            groups.heartbeat("g", 1, &ja.member_id, t0 + Duration::from_secs(11)),
            code::REBALANCE_IN_PROGRESS
        );
        assert_eq!(
            groups.heartbeat("g", 1, &jb.member_id, t0 + Duration::from_secs(11)),
            code::UNKNOWN_MEMBER_ID
        );
    }

    #[test]
    fn a_member_whose_protocols_share_none_is_refused() {
        let mut groups = ClassicGroups::default();
        let t0 = Instant::now();
        let (tx, _a) = oneshot::channel();
        groups.join("g", join("", false), tx, t0);
        let mut other = join("", false);
        other.protocols = vec![("sticky".into(), Bytes::new())];
        let (tx, mut b) = oneshot::channel();
        groups.join("g", other, tx, t0);
        assert_eq!(
            joined(&mut b).unwrap().error,
            code::INCONSISTENT_GROUP_PROTOCOL
        );
    }
}
