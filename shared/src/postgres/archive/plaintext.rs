//! The plaintext archive file of a `--jobs` restore: created 0600 and locked for as long as its restore holds it,
//! and, before a restore writes one, any left by a restore that never got to remove its own.
//!
//! A restore removes its file when it returns or unwinds, but not when its process is killed: a Lambda timeout, an
//! out-of-memory kill, an ECS task stopped, a panic (release builds abort). Lambda keeps `/tmp` across invocations
//! of one execution environment, so such a file (a whole database, decrypted) would outlive the restore that wrote
//! it. A file is taken for stale only when no process holds its lock (the kernel drops a lock with its last
//! descriptor, however the process ended) and it has not been written for [`STALE_AFTER`] (a restore creates its
//! file, then locks it: a sweep in between must not take a file being born for an abandoned one).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustix::fs::{flock, FlockOperation};

/// The name every plaintext archive file has: `lifeboat-restore-<random>.dump`.
pub const PREFIX: &str = "lifeboat-restore-";
pub const SUFFIX: &str = ".dump";

/// How long an unlocked plaintext file must have gone unwritten before a sweep removes it.
pub const STALE_AFTER: Duration = Duration::from_secs(60);

/// A new 0600 plaintext file in `dir`, locked (exclusively) until it is dropped, which removes it.
pub fn create(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt;
    let file = tempfile::Builder::new()
        .prefix(PREFIX)
        .suffix(SUFFIX)
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    flock(file.as_file(), FlockOperation::NonBlockingLockExclusive)?;
    Ok(file)
}

/// A plaintext file a sweep removed: its name and size, for the log (never its contents).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    pub file: PathBuf,
    pub bytes: u64,
}

/// Removes from `dir` every plaintext file no process holds that has gone unwritten for [`STALE_AFTER`] as of
/// `now`. Anything else in `dir` (other names, directories, links) is left alone; a file that cannot be examined
/// is skipped, so a sweep never stops a restore.
pub fn sweep(dir: &Path, now: SystemTime) -> Vec<Removed> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with(PREFIX) && name.ends_with(SUFFIX)
        })
        .filter_map(|e| remove_if_stale(&e.path(), now))
        .collect()
}

fn remove_if_stale(path: &Path, now: SystemTime) -> Option<Removed> {
    use std::os::unix::fs::OpenOptionsExt;
    // Not through a link: only a regular file this module could have written is ever removed.
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.file_type().is_file() {
        return None;
    }
    let file: File = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .ok()?;
    flock(&file, FlockOperation::NonBlockingLockExclusive).ok()?;
    let meta = file.metadata().ok()?;
    let idle = now.duration_since(meta.modified().ok()?).unwrap_or_default();
    if idle < STALE_AFTER {
        return None;
    }
    std::fs::remove_file(path).ok()?;
    Some(Removed {
        file: path.to_path_buf(),
        bytes: meta.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aged(path: &Path, age: Duration) {
        let f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
    }

    #[test]
    fn a_sweep_removes_only_abandoned_plaintext_files() {
        let dir = tempfile::tempdir().unwrap();
        let old = Duration::from_secs(3600);
        // Left by a killed restore: unlocked and idle.
        let abandoned = dir.path().join(format!("{PREFIX}abandoned{SUFFIX}"));
        std::fs::write(&abandoned, b"plaintext").unwrap();
        aged(&abandoned, old);
        // A restore still running, idle while pg_restore reads: its lock keeps it.
        let live = create(dir.path()).unwrap();
        std::fs::write(live.path(), b"in use").unwrap();
        aged(live.path(), old);
        // Just created by a restore that has not locked it yet: too recent to judge.
        let newborn = dir.path().join(format!("{PREFIX}newborn{SUFFIX}"));
        std::fs::write(&newborn, b"").unwrap();
        // Not Lifeboat's, or not a plaintext file.
        let foreign = dir.path().join("lifeboat-restore-notes.txt");
        std::fs::write(&foreign, b"x").unwrap();
        aged(&foreign, old);
        let linked = dir.path().join(format!("{PREFIX}link{SUFFIX}"));
        std::os::unix::fs::symlink(&foreign, &linked).unwrap();

        let removed = sweep(dir.path(), SystemTime::now());

        assert_eq!(
            removed,
            vec![Removed {
                file: abandoned.clone(),
                bytes: 9
            }]
        );
        assert!(!abandoned.exists());
        for kept in [live.path(), newborn.as_path(), foreign.as_path(), linked.as_path()] {
            assert!(
                std::fs::symlink_metadata(kept).is_ok(),
                "{} was removed",
                kept.display()
            );
        }
        // Once its restore is over (its descriptor closed), the live file is removed with it.
        let path = live.path().to_path_buf();
        drop(live);
        assert!(!path.exists());
    }

    #[test]
    fn a_file_whose_restore_was_killed_is_swept_once_its_lock_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let live = create(dir.path()).unwrap();
        aged(live.path(), Duration::from_secs(3600));
        let later = SystemTime::now();
        assert!(sweep(dir.path(), later).is_empty(), "locked: in use");
        // A killed process removes nothing, but the kernel releases its lock: keep the file, close the descriptor.
        let (file, path) = live.keep().unwrap();
        drop(file);
        let removed = sweep(dir.path(), later);
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].file, path);
        assert!(!path.exists());
    }

    #[test]
    fn a_missing_work_directory_sweeps_nothing() {
        assert!(sweep(Path::new("/nonexistent/lifeboat-work"), SystemTime::now()).is_empty());
    }
}
