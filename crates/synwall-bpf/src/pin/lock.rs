//! One process per node: an exclusive `flock` on the node's pin directory.
//!
//! The lock lives where the pins are, so it holds for every process that sees the same bpffs,
//! whatever run directory, config file or mount of `/run` each uses. bpffs refuses regular files
//! and `open(2)` on a pinned object, but a directory on it opens and takes `flock` like any other.
//! The holder's pid comes from `/proc/locks` (it lists each `flock` with its pid and inode), so it
//! is known even before the holder has written anything.
//!
//! The directory is created by the first locker and removed again by a lock released with nothing
//! pinned in it. A locker therefore checks, once it holds the lock, that the path still names the
//! directory it locked; if a releasing process removed it in between, it locks the new one.

use super::NodePins;
use crate::{Error, Result};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Held while a process runs a node; released (and the node's directory removed if nothing is
/// pinned in it) on drop.
#[derive(Debug)]
pub struct NodeLock {
    dir: PathBuf,
    _file: File,
}

/// Who holds a node's lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holder {
    /// Its pid; `None` when `/proc/locks` shows none this process can see (another PID
    /// namespace).
    pub pid: Option<u32>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            Some(p) => write!(f, "pid {p}"),
            None => f.write_str("a process not visible from here"),
        }
    }
}

fn os(what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Os { what, source }
}

fn flock_nb(f: &File) -> std::io::Result<bool> {
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// `(dev, ino)` of a path or an open file.
fn id(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

/// The pid `/proc/locks` gives for a `flock` on the inode `(dev, ino)`. Lines look like
/// `1: FLOCK  ADVISORY  WRITE 4242 00:28:1137116 0 EOF`, the device as hex `major:minor`;
/// waiters are listed as `1: -> FLOCK ...` and are not holders.
fn holder_in(proc_locks: &str, dev: u64, ino: u64) -> Option<Holder> {
    let want = format!(
        "{:02x}:{:02x}:{ino}",
        libc::major(dev as libc::dev_t),
        libc::minor(dev as libc::dev_t)
    );
    proc_locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            [_, "FLOCK", _, _, pid, file, ..] if *file == want => Some(Holder {
                pid: pid.parse().ok().filter(|&p| p > 0),
            }),
            _ => None,
        }
    })
}

impl NodePins {
    /// Take the node's lock, creating its directory (on a bpffs) if needed. Fails with
    /// [`Error::Held`] if another process holds it.
    pub fn lock(&self) -> Result<NodeLock> {
        super::check_root(self.dir.parent().unwrap_or(Path::new("/")))?;
        // A releasing holder may remove the directory between our open and our flock: then the
        // path is gone or names a new directory, and we try again (a few times: each retry means
        // another process made progress).
        for _ in 0..8 {
            std::fs::create_dir_all(&self.dir).map_err(os("create the pin directory"))?;
            let file = File::open(&self.dir).map_err(os("open the pin directory"))?;
            if !flock_nb(&file).map_err(os("lock the pin directory"))? {
                return Err(Error::Held {
                    dir: self.dir.clone(),
                    holder: self.holder().unwrap_or(Holder { pid: None }),
                });
            }
            let locked = id(&file.metadata().map_err(os("stat the pin directory"))?);
            if std::fs::metadata(&self.dir).is_ok_and(|m| id(&m) == locked) {
                return Ok(NodeLock {
                    dir: self.dir.clone(),
                    _file: file,
                });
            }
        }
        Err(Error::Config(format!(
            "{} keeps being removed and recreated while locking it",
            self.dir.display()
        )))
    }

    /// Who holds the node's lock, if anyone (without taking it).
    pub fn holder(&self) -> Option<Holder> {
        flock_holder(&self.dir)
    }
}

/// Who holds a `flock` on `path` (any file or directory), if anyone, from `/proc/locks`.
pub fn flock_holder(path: &Path) -> Option<Holder> {
    let m = std::fs::metadata(path).ok()?;
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    holder_in(&locks, m.dev(), m.ino())
}

impl NodeLock {
    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for NodeLock {
    fn drop(&mut self) {
        // Only an empty directory goes (rmdir refuses others): a start that pinned nothing, or
        // locked and then failed, leaves no trace; pins and their directories stay.
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_come_from_proc_locks_by_inode() {
        let dev = libc::makedev(0, 0x28) as u64;
        let text = "1: POSIX  ADVISORY  WRITE 77 00:28:99 0 EOF\n\
                    2: FLOCK  ADVISORY  WRITE 4242 00:28:1137116 0 EOF\n\
                    2: -> FLOCK  ADVISORY  WRITE 4343 00:28:1137116 0 EOF\n\
                    3: FLOCK  ADVISORY  WRITE 0 00:28:55 0 EOF\n";
        assert_eq!(
            holder_in(text, dev, 1137116),
            Some(Holder { pid: Some(4242) })
        );
        // A POSIX lock on the inode is not ours; an invisible holder has pid 0.
        assert_eq!(holder_in(text, dev, 99), None);
        assert_eq!(holder_in(text, dev, 55), Some(Holder { pid: None }));
        assert_eq!(holder_in(text, dev + 1, 1137116), None);
        let big = libc::makedev(259, 3) as u64;
        assert_eq!(
            holder_in("1: FLOCK ADVISORY WRITE 9 103:03:7 0 EOF", big, 7),
            Some(Holder { pid: Some(9) })
        );
    }
}
