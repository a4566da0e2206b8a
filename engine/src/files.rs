//! A budget of open segment files per thread, so the number of partitions a
//! broker holds is not bounded by the process's descriptor limit.
//!
//! Every segment file is a [`LazyFile`]: opened on first use, kept open while
//! it is used, and closed (least recently used first) when this thread needs
//! room under its budget. A closed file reopens on its next use. An I/O
//! operation in flight holds its own reference to the descriptor, so closing
//! a file here never cuts an operation short: the descriptor is released
//! when the last operation on it completes.
//!
//! Durability across a close: `fdatasync` acts on the file, not on the
//! descriptor, so a sync through a reopened descriptor covers writes made
//! through the closed one; and since Linux 4.16 a writeback error that no
//! descriptor has reported yet is reported to a descriptor opened after it.
//!
//! Budgets are per thread because each shard owns its partitions on one
//! thread; no lock is taken on the hot path.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use tokio_uring::fs::File;

/// The budget of a thread that was given none: room for a test or a tool
/// with a few hundred partitions under the common limit of 1024 descriptors.
pub const OPEN_FILES_DEFAULT: usize = 512;

/// At least this many files stay open per thread, whatever the budget: a
/// log being rolled holds two segments, and a read may hold a third.
const OPEN_FILES_MIN: usize = 4;

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache {
        budget: OPEN_FILES_DEFAULT,
        open: HashMap::new(),
        next_id: 0,
        clock: 0,
        opens: 0,
        evictions: 0,
    });
}

struct Cache {
    budget: usize,
    /// Every file of this thread that is open now, by id.
    open: HashMap<u64, Weak<Inner>>,
    next_id: u64,
    /// Ticks at every use; orders files by last use.
    clock: u64,
    opens: u64,
    evictions: u64,
}

/// Sets how many segment files this thread keeps open at most (the broker
/// calls it on every shard thread with its share of the descriptor limit).
pub fn set_open_files_max(files: usize) {
    CACHE.with(|c| c.borrow_mut().budget = files.max(OPEN_FILES_MIN));
}

/// This thread's budget of open segment files.
pub fn open_files_max() -> usize {
    CACHE.with(|c| c.borrow().budget)
}

/// What this thread's file cache has done: files open now, opens and
/// evictions so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStats {
    /// Segment files open now.
    pub open: usize,
    /// Opens so far (first opens and reopens).
    pub opens: u64,
    /// Files closed to make room so far.
    pub evictions: u64,
}

/// This thread's file cache counters.
pub fn file_stats() -> FileStats {
    CACHE.with(|c| {
        let c = c.borrow();
        FileStats {
            open: c.open.len(),
            opens: c.opens,
            evictions: c.evictions,
        }
    })
}

/// A segment file that is opened on demand and may be closed between uses.
/// Clones share one descriptor.
#[derive(Clone)]
pub(crate) struct LazyFile {
    inner: Rc<Inner>,
}

struct Inner {
    id: u64,
    path: PathBuf,
    /// Opened write-only with `O_DIRECT` (the direct appender's descriptor).
    direct: bool,
    file: RefCell<Option<Rc<File>>>,
    last_used: Cell<u64>,
}

impl LazyFile {
    /// Creates (if `create`) or opens the file at `path` now, so a missing or
    /// unwritable file is an error here and not at first use.
    pub(crate) async fn open(path: &Path, create: bool) -> io::Result<LazyFile> {
        Self::open_with(path, create, false).await
    }

    /// Opens the existing file at `path` write-only with `O_DIRECT`.
    pub(crate) async fn open_direct(path: &Path) -> io::Result<LazyFile> {
        Self::open_with(path, false, true).await
    }

    async fn open_with(path: &Path, create: bool, direct: bool) -> io::Result<LazyFile> {
        let id = CACHE.with(|c| {
            let mut c = c.borrow_mut();
            c.next_id += 1;
            c.next_id
        });
        let lazy = LazyFile {
            inner: Rc::new(Inner {
                id,
                path: path.to_path_buf(),
                direct,
                file: RefCell::new(None),
                last_used: Cell::new(0),
            }),
        };
        lazy.open_now(create).await?;
        Ok(lazy)
    }

    /// The open file, reopened if it was closed to make room.
    pub(crate) async fn get(&self) -> io::Result<Rc<File>> {
        self.touch();
        if let Some(file) = self.inner.file.borrow().as_ref() {
            return Ok(file.clone());
        }
        self.open_now(false).await
    }

    fn touch(&self) {
        let tick = CACHE.with(|c| {
            let mut c = c.borrow_mut();
            c.clock += 1;
            c.clock
        });
        self.inner.last_used.set(tick);
    }

    async fn open_now(&self, create: bool) -> io::Result<Rc<File>> {
        make_room();
        let file = if self.inner.direct {
            crate::io::open_direct(&self.inner.path).await?
        } else {
            crate::io::open_rw(&self.inner.path, create).await?
        };
        let file = Rc::new(file);
        // Another task may have opened it while this one waited: keep one.
        let mut slot = self.inner.file.borrow_mut();
        if let Some(theirs) = slot.as_ref() {
            return Ok(theirs.clone());
        }
        *slot = Some(file.clone());
        drop(slot);
        self.touch();
        CACHE.with(|c| {
            let mut c = c.borrow_mut();
            c.opens += 1;
            c.open.insert(self.inner.id, Rc::downgrade(&self.inner));
        });
        Ok(file)
    }
}

/// Closes least recently used files until one more fits in the budget.
fn make_room() {
    let evicted: Vec<Rc<Inner>> = CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let mut out = Vec::new();
        while c.open.len() >= c.budget {
            // A scan on a miss only: a hit costs one counter update. Misses
            // open a file, which costs far more than this walk.
            let oldest = c
                .open
                .iter()
                .filter_map(|(id, w)| w.upgrade().map(|i| (i.last_used.get(), *id, i)))
                .min_by_key(|(used, _, _)| *used);
            let Some((_, id, inner)) = oldest else {
                c.open.clear();
                break;
            };
            c.open.remove(&id);
            c.evictions += 1;
            out.push(inner);
        }
        out
    });
    // Outside the borrow: dropping a file may run code that uses the cache.
    for inner in evicted {
        inner.file.borrow_mut().take();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // A thread that is exiting has dropped its cache already.
        let _ = CACHE.try_with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                c.open.remove(&self.id);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_beyond_the_budget_are_closed_and_reopen_on_use() {
        tokio_uring::start(async {
            let dir = tempfile::tempdir().unwrap();
            set_open_files_max(4);
            let mut files = Vec::new();
            for i in 0..10 {
                let path = dir.path().join(format!("{i}.log"));
                let f = LazyFile::open(&path, true).await.unwrap();
                let (res, _) = f
                    .get()
                    .await
                    .unwrap()
                    .write_all_at(vec![i as u8; 8], 0)
                    .await;
                res.unwrap();
                files.push(f);
                assert!(file_stats().open <= 4, "{:?}", file_stats());
            }
            // Every file still reads back what was written through a
            // descriptor that has since been closed.
            for (i, f) in files.iter().enumerate() {
                let bytes = crate::io::read_at(&f.get().await.unwrap(), 0, 8)
                    .await
                    .unwrap();
                assert_eq!(bytes, vec![i as u8; 8]);
                assert!(file_stats().open <= 4);
            }
            let stats = file_stats();
            assert!(stats.evictions >= 12, "{stats:?}");
            drop(files);
            assert_eq!(file_stats().open, 0);
        });
    }
}
