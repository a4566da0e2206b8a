//! One partition's replica on one broker, as a sans-I/O state machine.
//!
//! The machine keeps the offsets and epochs that replication decides with
//! (log end, durable end, high watermark, the leader-epoch cache) and the
//! leader's view of its followers; the log's bytes stay with the driver,
//! which appends, truncates, syncs and reads when told to and reports back:
//!
//! - Leader: [`Replica::check_produce`] before an append,
//!   [`Replica::leader_appended`] after it, [`Replica::wait_for`] for an
//!   `acks=all` producer, [`Replica::on_fetch`] for each follower fetch (the
//!   answer says what to read and send).
//! - Follower: [`Replica::poll_fetch`] gives the next fetch to send;
//!   [`Replica::on_fetch_reply`] says whether to append the reply's batches
//!   (then [`Replica::follower_appended`]) or truncate.
//! - Both: [`Replica::durable_to`] when a sync completes,
//!   [`Replica::apply_state`] when the controller's partition state arrives,
//!   [`Replica::tick`] now and then, and [`Replica::poll_output`] for the
//!   acknowledgements, ISR proposals and epoch-cache changes that result.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use ringlog_engine::epochs::EpochCache;

use crate::controller::{Command, CommandError};
use crate::{BrokerId, Millis, PartitionState, ReplicaError, TopicPartition};

/// Timing of a replica.
#[derive(Clone, Copy, Debug)]
pub struct ReplicaConfig {
    /// A follower that has not caught up for this long leaves the ISR
    /// (`replica-lag-time-max-ms`).
    pub lag_max: Millis,
    /// How long a follower waits after a fetch that brought nothing or
    /// failed (the production driver long-polls instead).
    pub fetch_backoff: Millis,
    /// How long a fetch may go unanswered before it is sent again.
    pub fetch_timeout: Millis,
    /// How long an ISR change may go unanswered before it is sent again.
    pub alter_retry: Millis,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        Self {
            lag_max: 10_000,
            fetch_backoff: 10,
            fetch_timeout: 1_000,
            alter_retry: 1_000,
        }
    }
}

/// A replica's log as found at start (or created empty).
#[derive(Clone, Debug, Default)]
pub struct LogState {
    /// The first offset held.
    pub log_start: u64,
    /// The offset the next append gets.
    pub log_end: u64,
    /// Everything below this is synced (after a restart: all of it).
    pub durable: u64,
    /// The checkpointed high watermark, at most `log_end`.
    pub high_watermark: u64,
    /// The leader epochs of the log's batches.
    pub epochs: EpochCache,
}

/// A follower's fetch, as the leader receives it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FetchRequest {
    /// The fetching broker.
    pub replica: BrokerId,
    /// Its broker epoch (the incarnation sending).
    pub broker_epoch: u64,
    /// The leader epoch it believes current.
    pub leader_epoch: i32,
    /// Its log end: where the leader's records should start.
    pub fetch_offset: u64,
    /// The epoch of its last batch, for the divergence check.
    pub last_fetched_epoch: Option<i32>,
    /// How far its log is synced.
    pub durable_offset: u64,
    /// Raised with every fetch of this incarnation: answers and requests
    /// that arrive late or twice are told apart by it.
    pub seq: u64,
}

/// The leader's answer to a fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FetchAnswer {
    /// Send the log from `from` (as much as fits) with this high watermark.
    Records {
        /// First offset to send.
        from: u64,
        /// The leader's high watermark.
        high_watermark: u64,
    },
    /// The follower's log diverged: its records of `epoch` end at
    /// `end_offset` here (KIP-320).
    Diverging {
        /// The largest epoch at or below the follower's last fetched one.
        epoch: i32,
        /// Where that epoch ends in the leader's log.
        end_offset: u64,
    },
    /// Refused.
    Error(ReplicaError),
}

/// One batch of a fetch reply, as the follower's machine needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMeta {
    /// Its first offset.
    pub base_offset: u64,
    /// One past its last offset.
    pub end_offset: u64,
    /// The leader epoch stamped in it.
    pub leader_epoch: i32,
}

/// The follower's reading of a fetch reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchReply {
    /// Records (possibly none) and the leader's high watermark.
    Records {
        /// The leader's high watermark.
        high_watermark: u64,
        /// The batches, in order.
        batches: Vec<BatchMeta>,
    },
    /// See [`FetchAnswer::Diverging`].
    Diverging {
        /// The leader's epoch at or below ours.
        epoch: i32,
        /// Where it ends in the leader's log.
        end_offset: u64,
    },
    /// See [`FetchAnswer::Error`].
    Error(ReplicaError),
}

/// What the driver must do with a fetch reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FollowerStep {
    /// Nothing: the reply is stale, failed or brought nothing new.
    Ignore,
    /// Append the reply's batches, then call [`Replica::follower_appended`].
    Append,
    /// Cut the log to end at this offset (already applied here).
    Truncate(u64),
}

/// An effect for the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// The `acks=all` wait with this token is over: the batch is committed.
    Acked(u64),
    /// The wait with this token failed.
    Failed(u64, ReplicaError),
    /// Send this ISR change to the controller; give its answer to
    /// [`Replica::on_alter_isr_reply`].
    AlterIsr(Command),
    /// The epoch cache changed: persist it.
    EpochsChanged,
}

#[derive(Clone, Debug)]
struct FollowerView {
    broker_epoch: u64,
    seq: u64,
    fetch_offset: u64,
    durable: u64,
    last_caught_up: Millis,
    /// The leader's log end and the time when this follower last fetched.
    previous_fetch: (u64, Millis),
}

#[derive(Clone, Debug)]
struct Pending {
    added: BTreeSet<BrokerId>,
    base_partition_epoch: i32,
    sent_at: Millis,
    command: Command,
}

#[derive(Clone, Debug)]
struct Lead {
    since: Millis,
    epoch_start: u64,
    committed: BTreeSet<BrokerId>,
    pending: Option<Pending>,
    /// An ISR change was answered as stale: its outcome is unknown, so
    /// propose nothing (and keep counting it) until newer metadata arrives.
    awaiting_metadata: bool,
    followers: BTreeMap<BrokerId, FollowerView>,
    /// `(end offset, token)`, in append order.
    waiters: VecDeque<(u64, u64)>,
}

#[derive(Clone, Debug)]
struct Follow {
    leader: Option<BrokerId>,
    seq: u64,
    in_flight: Option<(u64, Millis)>,
    next_at: Millis,
}

#[derive(Clone, Debug)]
enum Role {
    /// No partition state applied yet.
    Unknown,
    Leader(Lead),
    Follower(Follow),
}

/// One partition's replica on one broker.
#[derive(Clone, Debug)]
pub struct Replica {
    partition: TopicPartition,
    me: BrokerId,
    broker_epoch: u64,
    config: ReplicaConfig,
    log_start: u64,
    log_end: u64,
    durable: u64,
    hw: u64,
    epochs: EpochCache,
    leader_epoch: i32,
    partition_epoch: i32,
    replicas: Vec<BrokerId>,
    min_insync: usize,
    lease_until: Millis,
    role: Role,
    out: VecDeque<Output>,
}

impl Replica {
    /// The replica of `partition` on broker `me` (incarnation
    /// `broker_epoch`), over a log in `log`'s state. It does nothing until
    /// the controller's partition state is applied.
    pub fn new(
        partition: TopicPartition,
        me: BrokerId,
        broker_epoch: u64,
        config: ReplicaConfig,
        log: LogState,
    ) -> Self {
        Self {
            partition,
            me,
            broker_epoch,
            config,
            log_start: log.log_start,
            log_end: log.log_end,
            durable: log.durable.min(log.log_end),
            hw: log.high_watermark.min(log.log_end),
            epochs: log.epochs,
            leader_epoch: -1,
            partition_epoch: -1,
            replicas: Vec::new(),
            min_insync: 1,
            lease_until: 0,
            role: Role::Unknown,
            out: VecDeque::new(),
        }
    }

    /// The partition.
    pub fn partition(&self) -> &TopicPartition {
        &self.partition
    }

    /// The offset the next append gets.
    pub fn log_end(&self) -> u64 {
        self.log_end
    }

    /// How far the log is synced.
    pub fn durable(&self) -> u64 {
        self.durable
    }

    /// The high watermark this replica knows (a follower's lags the
    /// leader's). For what consumers may read, see
    /// [`Replica::exposed_high_watermark`].
    pub fn high_watermark(&self) -> u64 {
        self.hw
    }

    /// The epoch cache, to persist on [`Output::EpochsChanged`].
    pub fn epochs(&self) -> &EpochCache {
        &self.epochs
    }

    /// The leader epoch of the partition state applied last.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    /// The leader a follower fetches from (`None` on a leader, or while no
    /// replica leads).
    pub fn fetch_leader(&self) -> Option<BrokerId> {
        match &self.role {
            Role::Follower(f) => f.leader,
            _ => None,
        }
    }

    /// Whether this replica leads its partition.
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    /// The ISR this leader counts on, committed by the controller (`None`
    /// on a follower).
    pub fn committed_isr(&self) -> Option<Vec<BrokerId>> {
        match &self.role {
            Role::Leader(l) => Some(l.committed.iter().copied().collect()),
            _ => None,
        }
    }

    /// The next effect for the driver.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The broker's lease now runs until `until` (see [`crate::lease`]); a
    /// leader acknowledges, answers fetches and exposes its high watermark
    /// only before then.
    pub fn set_lease(&mut self, until: Millis, now: Millis) {
        self.lease_until = until;
        self.advance_hw(now);
    }

    fn leading(&self, now: Millis) -> bool {
        self.is_leader() && now < self.lease_until
    }

    /// The high watermark consumers may read below, if this replica may
    /// serve them: it leads, holds its lease, and its high watermark has
    /// reached the start of its own epoch (before that, a new leader does
    /// not yet know how far its predecessor's records were committed, and
    /// exposing less would move the high watermark backwards: KIP-207).
    pub fn exposed_high_watermark(&self, now: Millis) -> Option<u64> {
        match &self.role {
            Role::Leader(l) if self.leading(now) && self.hw >= l.epoch_start => Some(self.hw),
            _ => None,
        }
    }

    /// Applies the controller's state of this partition. Older states (by
    /// leader epoch, then partition epoch) are ignored.
    pub fn apply_state(&mut self, state: &PartitionState, now: Millis) {
        if (state.leader_epoch, state.partition_epoch) <= (self.leader_epoch, self.partition_epoch)
        {
            return;
        }
        let new_epoch = state.leader_epoch > self.leader_epoch;
        self.replicas = state.replicas.clone();
        self.min_insync = state.min_insync;
        self.leader_epoch = state.leader_epoch;
        self.partition_epoch = state.partition_epoch;
        if state.leader == Some(self.me) {
            match &mut self.role {
                Role::Leader(lead) if !new_epoch => {
                    lead.committed = state.isr.iter().copied().collect();
                    lead.pending = None;
                    lead.awaiting_metadata = false;
                }
                _ => self.become_leader(state, now),
            }
            self.fail_waiters_if_too_few();
            self.advance_hw(now);
        } else if new_epoch || !matches!(self.role, Role::Follower(_)) {
            self.fail_all_waiters(ReplicaError::NotLeader);
            self.role = Role::Follower(Follow {
                leader: state.leader,
                seq: 0,
                in_flight: None,
                next_at: now,
            });
        }
    }

    fn become_leader(&mut self, state: &PartitionState, now: Millis) {
        if self.epochs.assign(state.leader_epoch, self.log_end) {
            self.out.push_back(Output::EpochsChanged);
        }
        self.role = Role::Leader(Lead {
            since: now,
            epoch_start: self.log_end,
            committed: state.isr.iter().copied().collect(),
            pending: None,
            awaiting_metadata: false,
            followers: BTreeMap::new(),
            waiters: VecDeque::new(),
        });
    }

    /// Whether a produce may be appended now: this replica leads and holds
    /// its lease, and for `acks=all` enough replicas are in sync.
    pub fn check_produce(&self, acks_all: bool, now: Millis) -> Result<(), ReplicaError> {
        let Role::Leader(lead) = &self.role else {
            return Err(ReplicaError::NotLeader);
        };
        if !self.leading(now) {
            return Err(ReplicaError::NotLeader);
        }
        if acks_all && lead.committed.len() < self.min_insync {
            return Err(ReplicaError::NotEnoughReplicas);
        }
        Ok(())
    }

    /// The leader appended records (stamped with its epoch) up to `end`.
    pub fn leader_appended(&mut self, end: u64) {
        debug_assert!(self.is_leader() && end >= self.log_end);
        self.log_end = self.log_end.max(end);
    }

    /// A sync completed: the log is durable up to `offset`. The driver must
    /// not report a sync that began before a truncation (its data may have
    /// been replaced since).
    pub fn durable_to(&mut self, offset: u64, now: Millis) {
        self.durable = self.durable.max(offset.min(self.log_end));
        self.advance_hw(now);
    }

    /// Acknowledge `token` once the high watermark reaches `end` (an
    /// `acks=all` produce whose records end there).
    pub fn wait_for(&mut self, end: u64, token: u64, now: Millis) {
        let Role::Leader(lead) = &mut self.role else {
            self.out
                .push_back(Output::Failed(token, ReplicaError::NotLeader));
            return;
        };
        if lead.committed.len() < self.min_insync {
            self.out.push_back(Output::Failed(
                token,
                ReplicaError::NotEnoughReplicasAfterAppend,
            ));
            return;
        }
        let at = lead.waiters.partition_point(|(e, _)| *e <= end);
        lead.waiters.insert(at, (end, token));
        self.advance_hw(now);
    }

    /// A follower's fetch (leader side).
    pub fn on_fetch(&mut self, req: &FetchRequest, now: Millis) -> FetchAnswer {
        if !self.leading(now) {
            return FetchAnswer::Error(ReplicaError::NotLeader);
        }
        if req.leader_epoch < self.leader_epoch {
            return FetchAnswer::Error(ReplicaError::FencedLeaderEpoch);
        }
        if req.leader_epoch > self.leader_epoch {
            return FetchAnswer::Error(ReplicaError::UnknownLeaderEpoch);
        }
        if !self.replicas.contains(&req.replica) || req.replica == self.me {
            return FetchAnswer::Error(ReplicaError::NotReplica);
        }
        let log_end = self.log_end;
        let Role::Leader(lead) = &mut self.role else {
            unreachable!("leading() checked the role")
        };
        if let Some(view) = lead.followers.get(&req.replica) {
            if req.broker_epoch < view.broker_epoch
                || (req.broker_epoch == view.broker_epoch && req.seq <= view.seq)
            {
                return FetchAnswer::Error(ReplicaError::StaleRequest);
            }
        }
        if let Some(last) = req.last_fetched_epoch {
            match self.epochs.end_offset_for(last, log_end) {
                Some((epoch, end)) if epoch < last || end < req.fetch_offset => {
                    return FetchAnswer::Diverging {
                        epoch,
                        end_offset: end,
                    };
                }
                Some(_) => {}
                // A follower ahead of the leader's newest epoch: this leader
                // is stale, whatever the controller told it.
                None => return FetchAnswer::Error(ReplicaError::UnknownLeaderEpoch),
            }
        }
        if req.fetch_offset > log_end {
            let epoch = self.epochs.latest().map_or(-1, |e| e.epoch);
            return FetchAnswer::Diverging {
                epoch,
                end_offset: log_end,
            };
        }
        let view = lead
            .followers
            .entry(req.replica)
            .or_insert_with(|| FollowerView {
                broker_epoch: req.broker_epoch,
                seq: 0,
                fetch_offset: 0,
                durable: 0,
                last_caught_up: lead.since,
                previous_fetch: (0, lead.since),
            });
        if req.broker_epoch > view.broker_epoch {
            // A new incarnation: nothing the old one said still holds.
            view.broker_epoch = req.broker_epoch;
            view.durable = 0;
        }
        view.seq = req.seq;
        view.fetch_offset = req.fetch_offset;
        view.durable = req.durable_offset.min(req.fetch_offset);
        // Kafka's rule: caught up now if it asked for the log end, or caught
        // up as of its previous fetch if it has read what was there then.
        if req.fetch_offset >= log_end {
            view.last_caught_up = now;
        } else if req.fetch_offset >= view.previous_fetch.0 {
            view.last_caught_up = view.last_caught_up.max(view.previous_fetch.1);
        }
        view.previous_fetch = (log_end, now);
        self.maybe_expand(req.replica, now);
        self.advance_hw(now);
        FetchAnswer::Records {
            from: req.fetch_offset,
            high_watermark: self.hw,
        }
    }

    fn maybe_expand(&mut self, replica: BrokerId, now: Millis) {
        let hw = self.hw;
        let Role::Leader(lead) = &mut self.role else {
            return;
        };
        if lead.committed.contains(&replica) || lead.pending.is_some() || lead.awaiting_metadata {
            return;
        }
        // Everything below the start of this epoch may have been
        // acknowledged by an earlier leader, and this leader's high
        // watermark may not have caught up with it yet: a member must hold
        // all of it synced, as well as everything below the high watermark.
        let view = &lead.followers[&replica];
        if view.durable < hw.max(lead.epoch_start) {
            return;
        }
        let mut isr = lead.committed.clone();
        isr.insert(replica);
        let epoch = view.broker_epoch;
        self.propose(isr, [replica].into(), Some((replica, epoch)), now);
    }

    fn propose(
        &mut self,
        isr: BTreeSet<BrokerId>,
        added: BTreeSet<BrokerId>,
        new_member: Option<(BrokerId, u64)>,
        now: Millis,
    ) {
        let Role::Leader(lead) = &mut self.role else {
            return;
        };
        let command = Command::AlterIsr {
            partition: self.partition.clone(),
            leader: self.me,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            isr: isr
                .iter()
                .map(|b| (*b, new_member.filter(|(m, _)| m == b).map(|(_, e)| e)))
                .collect(),
        };
        lead.pending = Some(Pending {
            added,
            base_partition_epoch: self.partition_epoch,
            sent_at: now,
            command: command.clone(),
        });
        self.out.push_back(Output::AlterIsr(command));
    }

    /// The controller's answer to this replica's [`Output::AlterIsr`]
    /// proposed at partition epoch `base_partition_epoch`.
    pub fn on_alter_isr_reply(
        &mut self,
        base_partition_epoch: i32,
        result: Result<PartitionState, CommandError>,
        now: Millis,
    ) {
        let Role::Leader(lead) = &mut self.role else {
            return;
        };
        if lead
            .pending
            .as_ref()
            .is_none_or(|p| p.base_partition_epoch != base_partition_epoch)
        {
            return;
        }
        match result {
            Ok(state) => {
                lead.pending = None;
                self.apply_state(&state, now);
            }
            // The partition moved on, perhaps by this very change (a retry
            // or a duplicate answered after the original was applied): the
            // outcome is unknown, so the change keeps counting as pending
            // until the controller's state arrives and settles it.
            Err(CommandError::Stale) => lead.awaiting_metadata = true,
            // Refused at the current partition epoch: it was not applied.
            Err(_) => lead.pending = None,
        }
    }

    /// Time-driven work: a leader proposes to drop followers that lag past
    /// `lag_max`, and resends an unanswered ISR change.
    pub fn tick(&mut self, now: Millis) {
        if !self.leading(now) {
            return;
        }
        let lag_max = self.config.lag_max;
        let retry = self.config.alter_retry;
        let me = self.me;
        let Role::Leader(lead) = &mut self.role else {
            return;
        };
        if let Some(p) = &mut lead.pending {
            if !lead.awaiting_metadata && now.saturating_sub(p.sent_at) >= retry {
                p.sent_at = now;
                let command = p.command.clone();
                self.out.push_back(Output::AlterIsr(command));
            }
            return;
        }
        if lead.awaiting_metadata {
            return;
        }
        let lagging: Vec<BrokerId> = lead
            .committed
            .iter()
            .copied()
            .filter(|b| *b != me)
            .filter(|b| {
                let caught_up = lead
                    .followers
                    .get(b)
                    .map_or(lead.since, |v| v.last_caught_up);
                now.saturating_sub(caught_up) > lag_max
            })
            .collect();
        if lagging.is_empty() {
            return;
        }
        let isr = lead
            .committed
            .iter()
            .copied()
            .filter(|b| !lagging.contains(b))
            .collect();
        self.propose(isr, BTreeSet::new(), None, now);
    }

    /// The next fetch to send to the leader, if one is due (follower side).
    pub fn poll_fetch(&mut self, now: Millis) -> Option<(BrokerId, FetchRequest)> {
        let timeout = self.config.fetch_timeout;
        let Role::Follower(f) = &mut self.role else {
            return None;
        };
        let leader = f.leader?;
        if f.in_flight
            .is_some_and(|(_, sent)| now.saturating_sub(sent) < timeout)
        {
            return None;
        }
        if now < f.next_at {
            return None;
        }
        f.seq += 1;
        f.in_flight = Some((f.seq, now));
        Some((
            leader,
            FetchRequest {
                replica: self.me,
                broker_epoch: self.broker_epoch,
                leader_epoch: self.leader_epoch,
                fetch_offset: self.log_end,
                last_fetched_epoch: self.epochs.latest().map(|e| e.epoch),
                durable_offset: self.durable,
                seq: f.seq,
            },
        ))
    }

    /// When this replica next wants [`Replica::poll_fetch`] or
    /// [`Replica::tick`] called, at the latest.
    pub fn next_wakeup(&self) -> Option<Millis> {
        match &self.role {
            Role::Follower(f) if f.leader.is_some() => Some(match f.in_flight {
                Some((_, sent)) => sent + self.config.fetch_timeout,
                None => f.next_at,
            }),
            _ => None,
        }
    }

    /// The leader's reply to this replica's fetch number `seq`.
    pub fn on_fetch_reply(&mut self, seq: u64, reply: &FetchReply, now: Millis) -> FollowerStep {
        let backoff = self.config.fetch_backoff;
        let Role::Follower(f) = &mut self.role else {
            return FollowerStep::Ignore;
        };
        if f.in_flight.is_none_or(|(s, _)| s != seq) {
            return FollowerStep::Ignore;
        }
        match reply {
            FetchReply::Error(_) => {
                f.in_flight = None;
                f.next_at = now + backoff;
                FollowerStep::Ignore
            }
            FetchReply::Records { batches, .. } => {
                if batches
                    .first()
                    .is_some_and(|b| b.base_offset != self.log_end)
                {
                    f.in_flight = None;
                    return FollowerStep::Ignore;
                }
                FollowerStep::Append
            }
            FetchReply::Diverging { epoch, end_offset } => {
                f.in_flight = None;
                f.next_at = now;
                // Cut where the leader's epoch ends, or where ours does if
                // shorter; if we never had that epoch, our records after
                // the largest epoch below it are not the leader's either.
                let ours = self
                    .epochs
                    .end_offset_for(*epoch, self.log_end)
                    .map_or(self.log_end, |(_, end)| end);
                let to = (*end_offset)
                    .min(ours)
                    .min(self.log_end)
                    .max(self.log_start);
                self.truncate(to);
                FollowerStep::Truncate(to)
            }
        }
    }

    /// The driver appended the batches of the reply to fetch `seq` (after
    /// [`FollowerStep::Append`]); `leader_hw` is the reply's high watermark.
    pub fn follower_appended(
        &mut self,
        seq: u64,
        batches: &[BatchMeta],
        leader_hw: u64,
        now: Millis,
    ) {
        let backoff = self.config.fetch_backoff;
        let Role::Follower(f) = &mut self.role else {
            return;
        };
        if f.in_flight.is_none_or(|(s, _)| s != seq) {
            return;
        }
        f.in_flight = None;
        f.next_at = if batches.is_empty() {
            now + backoff
        } else {
            now
        };
        let mut changed = false;
        for b in batches {
            debug_assert_eq!(b.base_offset, self.log_end);
            changed |= self.epochs.assign(b.leader_epoch, b.base_offset);
            self.log_end = b.end_offset;
        }
        if changed {
            self.out.push_back(Output::EpochsChanged);
        }
        self.hw = self.hw.max(leader_hw.min(self.log_end));
    }

    fn truncate(&mut self, to: u64) {
        self.log_end = to;
        self.durable = self.durable.min(to);
        self.hw = self.hw.min(to);
        let before = self.epochs.entries().len();
        self.epochs.truncate_from_end(to);
        if self.epochs.entries().len() != before {
            self.out.push_back(Output::EpochsChanged);
        }
    }

    fn advance_hw(&mut self, now: Millis) {
        if !self.leading(now) {
            return;
        }
        let Role::Leader(lead) = &mut self.role else {
            return;
        };
        if lead.committed.len() < self.min_insync {
            return;
        }
        // The maximal ISR: a member being added counts at once, a member
        // being removed until the controller commits its removal.
        let added = lead.pending.iter().flat_map(|p| p.added.iter());
        let min = lead
            .committed
            .iter()
            .chain(added)
            .map(|b| {
                if *b == self.me {
                    self.durable
                } else {
                    lead.followers.get(b).map_or(0, |v| v.durable)
                }
            })
            .min()
            .unwrap_or(self.durable)
            .min(self.log_end);
        if min > self.hw {
            self.hw = min;
        }
        while let Some(&(end, token)) = lead.waiters.front() {
            if end > self.hw {
                break;
            }
            lead.waiters.pop_front();
            self.out.push_back(Output::Acked(token));
        }
    }

    fn fail_waiters_if_too_few(&mut self) {
        if let Role::Leader(lead) = &self.role {
            if lead.committed.len() < self.min_insync {
                self.fail_all_waiters(ReplicaError::NotEnoughReplicasAfterAppend);
            }
        }
    }

    fn fail_all_waiters(&mut self, error: ReplicaError) {
        if let Role::Leader(lead) = &mut self.role {
            for (_, token) in lead.waiters.drain(..) {
                self.out.push_back(Output::Failed(token, error));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp() -> TopicPartition {
        TopicPartition::new("t", 0)
    }

    fn state(leader_epoch: i32, partition_epoch: i32, isr: &[BrokerId]) -> PartitionState {
        PartitionState {
            replicas: vec![1, 2, 3],
            leader: Some(1),
            leader_epoch,
            partition_epoch,
            isr: isr.to_vec(),
            min_insync: 2,
        }
    }

    /// A leader at epoch 5 whose log holds `end` records from epoch 4.
    fn leader(end: u64, isr: &[BrokerId]) -> Replica {
        let mut epochs = EpochCache::new();
        epochs.assign(4, 0);
        let log = LogState {
            log_start: 0,
            log_end: end,
            durable: end,
            high_watermark: 0,
            epochs,
        };
        let mut r = Replica::new(tp(), 1, 1, ReplicaConfig::default(), log);
        r.set_lease(u64::MAX, 0);
        r.apply_state(&state(5, 0, isr), 0);
        assert_eq!(r.poll_output(), Some(Output::EpochsChanged));
        r
    }

    fn fetch(replica: BrokerId, seq: u64, offset: u64, durable: u64) -> FetchRequest {
        FetchRequest {
            replica,
            broker_epoch: 7,
            leader_epoch: 5,
            fetch_offset: offset,
            // The leader's epoch 5 starts at 10.
            last_fetched_epoch: Some(if offset > 10 { 5 } else { 4 }),
            durable_offset: durable,
            seq,
        }
    }

    fn proposals(r: &mut Replica) -> Vec<Command> {
        std::iter::from_fn(|| r.poll_output())
            .filter_map(|o| match o {
                Output::AlterIsr(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_follower_joins_only_with_everything_below_the_epoch_start_synced() {
        // The new leader's high watermark (0) lags what its predecessor may
        // have acknowledged (up to 10, its epoch start).
        let mut r = leader(10, &[1, 2]);
        r.on_fetch(&fetch(3, 1, 10, 6), 1);
        assert!(proposals(&mut r).is_empty(), "admitted with 6 of 10 synced");
        r.on_fetch(&fetch(3, 2, 10, 10), 2);
        let p = proposals(&mut r);
        assert!(
            matches!(&p[..], [Command::AlterIsr { isr, .. }] if isr.contains(&(3, Some(7)))),
            "{p:?}"
        );
    }

    #[test]
    fn a_change_answered_stale_keeps_counting_until_the_controller_settles_it() {
        let mut r = leader(10, &[1, 2]);
        r.on_fetch(&fetch(2, 1, 10, 10), 1);
        r.on_fetch(&fetch(3, 1, 10, 10), 1);
        assert_eq!(proposals(&mut r).len(), 1, "3 proposed");
        assert_eq!(r.high_watermark(), 10);
        // New records, synced on 1 and 2 but not on 3.
        r.leader_appended(20);
        r.durable_to(20, 2);
        r.on_fetch(&fetch(2, 2, 20, 20), 2);
        assert_eq!(
            r.high_watermark(),
            10,
            "3 counts while its admission is pending"
        );
        // The answer is lost; a retry finds the partition moved on.
        r.on_alter_isr_reply(0, Err(CommandError::Stale), 3);
        r.on_fetch(&fetch(2, 3, 20, 20), 3);
        assert_eq!(
            r.high_watermark(),
            10,
            "3 may have been admitted: it still counts"
        );
        // The controller's state says it was.
        r.apply_state(&state(5, 1, &[1, 2, 3]), 4);
        assert_eq!(r.committed_isr(), Some(vec![1, 2, 3]));
        r.on_fetch(&fetch(3, 2, 20, 20), 5);
        assert_eq!(r.high_watermark(), 20);
    }

    #[test]
    fn acks_all_fails_at_once_below_min_insync_and_waits_otherwise() {
        let r = leader(10, &[1]);
        assert_eq!(
            r.check_produce(true, 1),
            Err(ReplicaError::NotEnoughReplicas)
        );
        assert_eq!(r.check_produce(false, 1), Ok(()));
        let mut r = leader(10, &[1, 2]);
        r.leader_appended(12);
        r.durable_to(12, 1);
        r.wait_for(12, 9, 1);
        assert_eq!(
            r.poll_output(),
            None,
            "acknowledged before the follower synced"
        );
        r.on_fetch(&fetch(2, 1, 12, 12), 2);
        assert_eq!(r.poll_output(), Some(Output::Acked(9)));
        // A leader without its lease acknowledges nothing and serves no one.
        r.set_lease(3, 2);
        assert_eq!(r.check_produce(true, 3), Err(ReplicaError::NotLeader));
        assert_eq!(r.exposed_high_watermark(3), None);
    }
}
