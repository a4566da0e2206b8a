//! The write pipeline and durability: appended batches are written by
//! io_uring with several writes in flight, and fdatasync'ed by policy with
//! group commit.
//!
//! Why writes are pipelined: a buffered io_uring write to ext4 is completed
//! by a kernel worker, so one write at a time costs a round trip each (fio on
//! this machine: 353 MB/s at queue depth 1, 2127 MB/s at depth 8, see
//! `benches/RESULTS.md`). An append therefore only reserves its position and
//! submits its write; the bytes become visible to readers, and its ticket can
//! resolve, once every earlier write has completed too (the completed prefix).
//! At most [`WRITES_IN_FLIGHT_MAX`] writes are outstanding.
//!
//! Under `always`, a ticket resolves only once a sync that started after its
//! write completed has finished. Writes that complete while a sync is in
//! flight wait for the next one, and that single sync covers all of them: the
//! number of syncs grows with the number of sync rounds, not of appends.
//!
//! Single-threaded by design (a partition lives on one shard): the state is
//! `Cell`s behind an `Rc`, no lock. Writes and syncs run as their own tasks so
//! that a waiter that is dropped cannot strand the others.
//!
//! A failed write or sync is final (PostgreSQL's "fsyncgate": Linux may have
//! dropped the dirty pages, so a retry that succeeds proves nothing). The
//! partition is marked failed and refuses appends until a restart recovers
//! it from disk.

use crate::files::LazyFile;
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_uring::fs::File;

/// When appended data is fdatasync'ed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Before every acknowledgement, with group commit.
    Always,
    /// At most this long after a write; acknowledgements do not wait.
    Interval(Duration),
    /// Never by the append path; on roll and close only. A process crash
    /// loses nothing acknowledged (the page cache survives it); a machine
    /// crash can.
    Never,
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;

    /// Parses `always`, `never` or `interval:MS`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            _ => s
                .strip_prefix("interval:")
                .and_then(|ms| ms.parse::<u64>().ok())
                .filter(|&ms| ms > 0)
                .map(|ms| FsyncPolicy::Interval(Duration::from_millis(ms)))
                .ok_or_else(|| {
                    format!("bad fsync policy {s:?}: expected always, never or interval:MS")
                }),
        }
    }
}

/// Writes one partition may have in flight: enough to hide the kernel
/// worker's round trip, few enough to bound the buffers held (at most this
/// many batches of `batch_bytes_max`).
pub const WRITES_IN_FLIGHT_MAX: u64 = 32;

struct State {
    policy: FsyncPolicy,
    /// Writes submitted so far; a write's sequence number is its count.
    submitted: Cell<u64>,
    /// Every write up to this sequence number has completed.
    written: Cell<u64>,
    /// Completed writes beyond `written`, waiting for an earlier one.
    written_ahead: RefCell<BTreeSet<u64>>,
    /// Every write with a sequence number up to this one is durable.
    durable: Cell<u64>,
    in_flight: Cell<bool>,
    timer_armed: Cell<bool>,
    file: RefCell<LazyFile>,
    done: Notify,
    syncs: Cell<u64>,
    failure: RefCell<Option<String>>,
}

/// A partition's durability state, shared by the log and the tickets it
/// hands out.
#[derive(Clone)]
pub(crate) struct Flusher {
    state: Rc<State>,
}

/// Waits until one append is durable under the partition's policy.
#[must_use = "an append is not durable until its ticket resolves"]
pub struct Durable {
    state: Rc<State>,
    seq: u64,
}

impl Flusher {
    pub(crate) fn new(policy: FsyncPolicy, file: LazyFile) -> Self {
        Self {
            state: Rc::new(State {
                policy,
                submitted: Cell::new(0),
                written: Cell::new(0),
                written_ahead: RefCell::new(BTreeSet::new()),
                durable: Cell::new(0),
                in_flight: Cell::new(false),
                timer_armed: Cell::new(false),
                file: RefCell::new(file),
                done: Notify::new(),
                syncs: Cell::new(0),
                failure: RefCell::new(None),
            }),
        }
    }

    /// Submits the write of `batch` at `position` of `file` and returns its
    /// ticket. The caller has reserved the position and waited for room.
    /// The write holds its own descriptor, so the file may be closed to make
    /// room meanwhile.
    pub(crate) fn submit<B: crate::BatchBuf>(
        &self,
        file: Rc<File>,
        batch: B,
        position: u64,
    ) -> Durable {
        let s = &self.state;
        let seq = s.submitted.get() + 1;
        s.submitted.set(seq);
        let state = self.state.clone();
        tokio_uring::spawn(async move {
            let (res, _) = file.write_all_at(batch, position).await;
            completed(&state, seq, res);
        });
        Durable {
            state: self.state.clone(),
            seq,
        }
    }

    /// Numbers an append whose write someone else submits (the direct
    /// appender's writer task, which reports with
    /// [`Flusher::completed_through`]) and returns its ticket.
    pub(crate) fn next_ticket(&self) -> Durable {
        let seq = self.state.submitted.get() + 1;
        self.state.submitted.set(seq);
        Durable {
            state: self.state.clone(),
            seq,
        }
    }

    /// Records the completion of one write covering every append up to
    /// `seq` (the direct appender writes one at a time, in order).
    pub(crate) fn completed_through(&self, seq: u64, res: std::io::Result<()>) {
        let s = &self.state;
        if let Err(e) = res {
            fail(s, format!("write failed: {e}"));
            return;
        }
        s.written.set(s.written.get().max(seq));
        after_write(s);
    }

    /// Sequence number below which every write has completed.
    pub(crate) fn written(&self) -> u64 {
        self.state.written.get()
    }

    /// Waits until fewer than [`WRITES_IN_FLIGHT_MAX`] writes are in flight.
    pub(crate) async fn wait_for_room(&self) -> Result<(), String> {
        self.wait_until(|s| s.submitted.get() - s.written.get() < WRITES_IN_FLIGHT_MAX)
            .await
    }

    /// Waits until every submitted write has completed.
    pub(crate) async fn drain(&self) -> Result<(), String> {
        self.wait_until(|s| s.written.get() == s.submitted.get())
            .await
    }

    async fn wait_until(&self, done: impl Fn(&State) -> bool) -> Result<(), String> {
        let s = &self.state;
        loop {
            let notified = s.done.notified();
            self.check()?;
            if done(s) {
                return Ok(());
            }
            notified.await;
        }
    }

    /// Syncs `file` now, outside group commit: for a segment being sealed and
    /// for close. Every write so far is on it or on an already synced file.
    pub(crate) async fn sync_file(&self, file: &LazyFile) -> Result<(), String> {
        self.check()?;
        let target = self.state.written.get();
        let res = sync_data(file).await;
        self.state.syncs.set(self.state.syncs.get() + 1);
        settle(&self.state, target, res);
        self.check()
    }

    /// Points group commit at a new active segment file.
    pub(crate) fn set_file(&self, file: LazyFile) {
        *self.state.file.borrow_mut() = file;
    }

    /// The failure that stopped this partition, if any.
    pub(crate) fn check(&self) -> Result<(), String> {
        match &*self.state.failure.borrow() {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        }
    }

    /// fdatasync calls issued so far.
    pub(crate) fn sync_count(&self) -> u64 {
        self.state.syncs.get()
    }
}

/// Marks the partition failed (the first failure is the one reported) and
/// wakes every waiter so none is acknowledged.
fn fail(state: &State, why: String) {
    state.failure.borrow_mut().get_or_insert(why);
    state.done.notify_waiters();
}

/// fdatasync through whichever descriptor the file has now: the sync covers
/// the file's data whatever descriptor wrote it (see `files`).
async fn sync_data(file: &LazyFile) -> std::io::Result<()> {
    file.get().await?.sync_data().await
}

fn settle(state: &State, target: u64, res: std::io::Result<()>) {
    match res {
        Ok(()) => {
            state.durable.set(state.durable.get().max(target));
            state.done.notify_waiters();
        }
        Err(e) => fail(state, format!("fdatasync failed: {e}")),
    }
}

/// Records a write's completion and advances the completed prefix.
fn completed(state: &Rc<State>, seq: u64, res: std::io::Result<()>) {
    if let Err(e) = res {
        fail(state, format!("write failed: {e}"));
        return;
    }
    {
        let mut ahead = state.written_ahead.borrow_mut();
        ahead.insert(seq);
        let mut written = state.written.get();
        while ahead.remove(&(written + 1)) {
            written += 1;
        }
        state.written.set(written);
    }
    after_write(state);
}

/// What follows a completed write: the interval timer is armed, waiters
/// are woken.
fn after_write(state: &Rc<State>) {
    if let FsyncPolicy::Interval(every) = state.policy {
        if !state.timer_armed.replace(true) {
            let state = state.clone();
            tokio_uring::spawn(async move {
                tokio::time::sleep(every).await;
                state.timer_armed.set(false);
                start_sync(&state);
            });
        }
    }
    state.done.notify_waiters();
}

/// Starts a sync covering every completed write, unless one is in flight
/// (its waiters will start the next).
fn start_sync(state: &Rc<State>) {
    if state.in_flight.get() || state.durable.get() >= state.written.get() {
        return;
    }
    state.in_flight.set(true);
    let state = state.clone();
    tokio_uring::spawn(async move {
        let target = state.written.get();
        let file = state.file.borrow().clone();
        let res = sync_data(&file).await;
        state.syncs.set(state.syncs.get() + 1);
        state.in_flight.set(false);
        settle(&state, target, res);
    });
}

impl Durable {
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// True once the append is durable under the policy (never blocks).
    pub fn is_durable(&self) -> bool {
        let s = &self.state;
        s.written.get() >= self.seq
            && (s.policy != FsyncPolicy::Always || s.durable.get() >= self.seq)
    }

    /// Resolves when the append is durable under the policy: once its bytes
    /// (and every earlier append's) are in the page cache for `never` and
    /// `interval`, after the covering sync as well for `always`. An error
    /// means the partition failed and the append must not be acknowledged.
    pub async fn wait(self) -> Result<(), crate::Error> {
        let s = &self.state;
        loop {
            // Registered before the checks, so a write or sync that settles
            // after them still wakes this waiter.
            let notified = s.done.notified();
            if let Some(why) = &*s.failure.borrow() {
                return Err(crate::Error::Failed(why.clone()));
            }
            if self.is_durable() {
                return Ok(());
            }
            if s.written.get() >= self.seq {
                start_sync(s);
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse() {
        assert_eq!("always".parse(), Ok(FsyncPolicy::Always));
        assert_eq!("never".parse(), Ok(FsyncPolicy::Never));
        assert_eq!(
            "interval:250".parse(),
            Ok(FsyncPolicy::Interval(Duration::from_millis(250)))
        );
        assert!("interval:0".parse::<FsyncPolicy>().is_err());
        assert!("sometimes".parse::<FsyncPolicy>().is_err());
    }
}
