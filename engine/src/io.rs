//! The only module that touches files: thin async wrappers over tokio-uring
//! with owned buffers. No format or recovery logic here.
//!
//! Rare metadata operations (listing a directory, truncating a file, syncing
//! a directory) go through `std::fs`: io_uring offers no gain for them and
//! they run only at open, roll, truncation and retention.

use std::io;
use std::path::{Path, PathBuf};
use tokio_uring::buf::BoundedBuf;
use tokio_uring::fs::{File, OpenOptions};

/// Opens `path` for reading and writing, creating it if `create`.
pub(crate) async fn open_rw(path: &Path, create: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .open(path)
        .await
}

/// Opens `path` for writing with `O_DIRECT`: writes bypass the page cache
/// and must be aligned (see `direct`).
pub(crate) async fn open_direct(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .await
}

/// Reads up to `len` bytes at `pos`; fewer only where the file ends.
pub(crate) async fn read_at(file: &File, pos: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let filled = buf.len();
        let (res, slice) = file
            .read_at(buf.slice(filled..len), pos + filled as u64)
            .await;
        buf = slice.into_inner();
        if res? == 0 {
            break;
        }
    }
    Ok(buf)
}

/// Reads a whole small file, or `None` if it does not exist.
pub(crate) async fn read_file(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let file = match File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = std::fs::metadata(path)?.len() as usize;
    let bytes = read_at(&file, 0, len).await;
    file.close().await?;
    bytes.map(Some)
}

/// Replaces `path` with `bytes` so that a crash leaves the old or the new
/// content, never a mix: temp file, fdatasync, rename, directory fsync.
pub(crate) async fn write_file_atomic(path: &Path, bytes: Vec<u8>, sync: bool) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let file = File::create(&tmp).await?;
    let (res, _) = file.write_all_at(bytes, 0).await;
    res?;
    if sync {
        file.sync_data().await?;
    }
    file.close().await?;
    tokio_uring::fs::rename(&tmp, path).await?;
    if sync {
        sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` without syncing: for files that can be rebuilt.
pub(crate) async fn write_file(path: &Path, bytes: Vec<u8>) -> io::Result<()> {
    write_file_atomic(path, bytes, false).await
}

/// Makes a directory's entries (created, renamed, deleted files) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Cuts the file at `path` to `len` bytes.
pub(crate) fn truncate(path: &Path, len: u64) -> io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .set_len(len)
}

/// Deletes a file; a file that is already gone is not an error.
pub(crate) async fn remove_file(path: &Path) -> io::Result<()> {
    match tokio_uring::fs::remove_file(path).await {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Every regular file name in `dir`.
pub(crate) fn list_dir(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}
