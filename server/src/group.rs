//! Consumer group coordination: members, generations, session timeouts and
//! assignments, kept by the task of the group's `__consumer_offsets`
//! partition (so one task owns a group, and its commits sit beside it).
//!
//! The protocol is heartbeat-driven and cooperative, in the spirit of
//! Kafka's KIP-848: each heartbeat reports what the member owns; the broker
//! computes a target assignment with the group's assignor whenever
//! membership, subscriptions or partition counts change (a new generation),
//! and gives a member a partition only once no other member still reports
//! owning it. No partition is ever handed to two live members at once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use ringlog_protocol::{
    ErrorCode, GroupHeartbeatRequest, GroupHeartbeatResponse, GroupMember, TopicPartition,
};

use crate::assignor::{self, Assignment, Tp, ASSIGNORS};
use crate::partition::Failure;

/// Shortest and longest session timeouts accepted.
const SESSION_MIN: Duration = Duration::from_millis(100);
const SESSION_MAX: Duration = Duration::from_secs(300);
/// Heartbeat interval while a member's assignment is still moving.
const MOVING_INTERVAL_MS: u32 = 100;

struct Member {
    topics: BTreeSet<String>,
    session: Duration,
    last_seen: Instant,
    owned: BTreeSet<Tp>,
    given: BTreeSet<Tp>,
}

struct Group {
    generation: i32,
    assignor: String,
    members: BTreeMap<String, Member>,
    target: Assignment,
    partitions: BTreeMap<String, u32>,
}

impl Group {
    fn rebalance(&mut self) {
        self.generation += 1;
        let subscriptions = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.topics.clone()))
            .collect();
        self.target = assignor::assign(
            &self.assignor,
            &subscriptions,
            &self.partitions,
            &self.target,
        );
    }
}

/// Every group of one offsets partition.
#[derive(Default)]
pub struct Groups {
    groups: HashMap<String, Group>,
    joined: u64,
}

fn tps(set: &BTreeSet<Tp>) -> Vec<TopicPartition> {
    set.iter()
        .map(|(topic, partition)| TopicPartition {
            topic: topic.clone(),
            partition: *partition,
        })
        .collect()
}

impl Groups {
    /// Handles one heartbeat; `partitions` holds every topic's partition count.
    pub fn heartbeat(
        &mut self,
        req: GroupHeartbeatRequest,
        partitions: &BTreeMap<String, u32>,
        now: Instant,
    ) -> Result<GroupHeartbeatResponse, Failure> {
        if !ASSIGNORS.contains(&req.assignor.as_str()) {
            return Err(Failure::new(
                ErrorCode::InvalidRequest,
                format!("assignor {:?} is not one of {ASSIGNORS:?}", req.assignor),
            ));
        }
        let session = Duration::from_millis(u64::from(req.session_timeout_ms));
        if !(SESSION_MIN..=SESSION_MAX).contains(&session) {
            return Err(Failure::new(
                ErrorCode::InvalidRequest,
                format!("session timeout {session:?} is outside {SESSION_MIN:?}..={SESSION_MAX:?}"),
            ));
        }
        let group = self
            .groups
            .entry(req.group.clone())
            .or_insert_with(|| Group {
                generation: 0,
                assignor: req.assignor.clone(),
                members: BTreeMap::new(),
                target: Assignment::new(),
                partitions: BTreeMap::new(),
            });
        if req.leave {
            if group.members.remove(&req.member_id).is_some() {
                group.target.remove(&req.member_id);
                group.rebalance();
            }
            return Ok(GroupHeartbeatResponse {
                member_id: req.member_id,
                generation: group.generation,
                assignment: Vec::new(),
                heartbeat_interval_ms: 0,
            });
        }
        let mut changed = false;
        let member_id = if req.member_id.is_empty() {
            self.joined += 1;
            let id = format!(
                "{}-{}-{:x}",
                req.group,
                self.joined,
                crate::catalog::name_hash(&format!("{now:?}")) & 0xffff
            );
            group.members.insert(
                id.clone(),
                Member {
                    topics: BTreeSet::new(),
                    session,
                    last_seen: now,
                    owned: BTreeSet::new(),
                    given: BTreeSet::new(),
                },
            );
            changed = true;
            id
        } else if group.members.contains_key(&req.member_id) {
            req.member_id
        } else {
            return Err(Failure::new(
                ErrorCode::UnknownMember,
                format!(
                    "group {:?} has no member {:?}: join again",
                    req.group, req.member_id
                ),
            ));
        };
        let topics: BTreeSet<String> = req.topics.into_iter().collect();
        let Some(member) = group.members.get_mut(&member_id) else {
            return Err(Failure::new(ErrorCode::UnknownMember, "member vanished"));
        };
        changed |= member.topics != topics;
        member.topics = topics;
        member.session = session;
        member.last_seen = now;
        member.owned = req
            .owned
            .into_iter()
            .map(|tp| (tp.topic, tp.partition))
            .collect();
        if group.assignor != req.assignor {
            group.assignor = req.assignor;
            changed = true;
        }
        let subscribed: BTreeSet<&String> = group
            .members
            .values()
            .flat_map(|m| m.topics.iter())
            .collect();
        let counts: BTreeMap<String, u32> = partitions
            .iter()
            .filter(|(t, _)| subscribed.contains(t))
            .map(|(t, n)| (t.clone(), *n))
            .collect();
        if counts != group.partitions {
            group.partitions = counts;
            changed = true;
        }
        if changed {
            group.rebalance();
        }
        let target = group.target.get(&member_id).cloned().unwrap_or_default();
        // A partition another member holds (reported owning, or was given
        // and has not yet reported on) waits until that member lets go.
        let held_elsewhere: BTreeSet<&Tp> = group
            .members
            .iter()
            .filter(|(id, _)| **id != member_id)
            .flat_map(|(_, m)| m.owned.iter().chain(m.given.iter()))
            .collect();
        let given: BTreeSet<Tp> = target
            .iter()
            .filter(|tp| !held_elsewhere.contains(tp))
            .cloned()
            .collect();
        let interval = if given == target {
            (session.as_millis() / 3) as u32
        } else {
            MOVING_INTERVAL_MS
        };
        let assignment = tps(&given);
        if let Some(member) = group.members.get_mut(&member_id) {
            member.given = given;
        }
        Ok(GroupHeartbeatResponse {
            member_id,
            generation: group.generation,
            assignment,
            heartbeat_interval_ms: interval,
        })
    }

    /// Evicts members silent for longer than their session timeout.
    pub fn expire(&mut self, now: Instant) -> Vec<String> {
        let mut evicted = Vec::new();
        for (name, group) in &mut self.groups {
            let before = group.members.len();
            group.members.retain(|id, m| {
                let alive = now.duration_since(m.last_seen) <= m.session;
                if !alive {
                    evicted.push(format!("{name}/{id}"));
                }
                alive
            });
            if group.members.len() != before {
                let members = &group.members;
                group.target.retain(|id, _| members.contains_key(id));
                group.rebalance();
            }
        }
        evicted
    }

    /// Whether a commit from `member_id` at `generation` may be stored
    /// (always, for a standalone consumer's generation -1).
    pub fn check_commit(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
    ) -> Result<(), Failure> {
        if generation < 0 {
            return Ok(());
        }
        let g = self.groups.get(group);
        if !g.is_some_and(|g| g.members.contains_key(member_id)) {
            return Err(Failure::new(
                ErrorCode::UnknownMember,
                format!("group {group:?} has no member {member_id:?}"),
            ));
        }
        let current = g.map_or(0, |g| g.generation);
        if generation != current {
            return Err(Failure::new(
                ErrorCode::IllegalGeneration,
                format!("generation {generation} is stale: the group is at {current}"),
            ));
        }
        Ok(())
    }

    /// Group names.
    pub fn names(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }

    /// Generation, assignor and members of a group.
    pub fn describe(&self, group: &str) -> Option<(i32, String, Vec<GroupMember>)> {
        let g = self.groups.get(group)?;
        let members = g
            .members
            .iter()
            .map(|(id, m)| GroupMember {
                member_id: id.clone(),
                topics: m.topics.iter().cloned().collect(),
                assignment: tps(&m.given),
            })
            .collect();
        Some((g.generation, g.assignor.clone(), members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(member: &str, owned: &[TopicPartition]) -> GroupHeartbeatRequest {
        GroupHeartbeatRequest {
            group: "g".into(),
            member_id: member.into(),
            topics: vec!["t".into()],
            assignor: "sticky".into(),
            session_timeout_ms: 1000,
            owned: owned.to_vec(),
            leave: false,
        }
    }

    #[test]
    fn partitions_move_only_once_released() {
        let parts: BTreeMap<String, u32> = [("t".to_string(), 4)].into();
        let mut groups = Groups::default();
        let now = Instant::now();
        let a = groups.heartbeat(hb("", &[]), &parts, now).unwrap();
        assert_eq!(a.assignment.len(), 4);
        let b = groups.heartbeat(hb("", &[]), &parts, now).unwrap();
        assert!(b.generation > a.generation);
        // a still owns all four: b waits.
        assert!(b.assignment.is_empty());
        assert_eq!(b.heartbeat_interval_ms, MOVING_INTERVAL_MS);
        let a2 = groups
            .heartbeat(hb(&a.member_id, &a.assignment), &parts, now)
            .unwrap();
        assert_eq!(a2.assignment.len(), 2);
        // a lets go of what it lost; now b gets it.
        groups
            .heartbeat(hb(&a.member_id, &a2.assignment), &parts, now)
            .unwrap();
        let b2 = groups
            .heartbeat(hb(&b.member_id, &[]), &parts, now)
            .unwrap();
        assert_eq!(b2.assignment.len(), 2);
        assert!(b2.assignment.iter().all(|tp| !a2.assignment.contains(tp)));
        // Commits: current generation only, members only.
        assert!(groups
            .check_commit("g", &b.member_id, b2.generation)
            .is_ok());
        assert_eq!(
            groups
                .check_commit("g", &b.member_id, b2.generation - 1)
                .unwrap_err()
                .code,
            ErrorCode::IllegalGeneration
        );
        assert_eq!(
            groups
                .check_commit("g", "nobody", b2.generation)
                .unwrap_err()
                .code,
            ErrorCode::UnknownMember
        );
        assert!(groups.check_commit("g", "", -1).is_ok());
        // a goes silent: evicted after its session, b gets everything.
        let later = now + Duration::from_millis(1500);
        groups
            .heartbeat(
                hb(&b.member_id, &b2.assignment),
                &parts,
                now + Duration::from_millis(900),
            )
            .unwrap();
        assert_eq!(groups.expire(later).len(), 1);
        let b3 = groups
            .heartbeat(hb(&b.member_id, &b2.assignment), &parts, later)
            .unwrap();
        assert_eq!(b3.assignment.len(), 4);
        let gone = groups
            .heartbeat(hb(&a.member_id, &[]), &parts, later)
            .unwrap_err();
        assert_eq!(gone.code, ErrorCode::UnknownMember);
    }

    #[test]
    fn bad_assignors_and_sessions_are_refused() {
        let parts = BTreeMap::new();
        let mut groups = Groups::default();
        let mut req = hb("", &[]);
        req.assignor = "magic".into();
        assert_eq!(
            groups
                .heartbeat(req, &parts, Instant::now())
                .unwrap_err()
                .code,
            ErrorCode::InvalidRequest
        );
        let mut req = hb("", &[]);
        req.session_timeout_ms = 1;
        assert!(groups.heartbeat(req, &parts, Instant::now()).is_err());
    }
}
