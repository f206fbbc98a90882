//! The encoder's scratch directory (Lambda's `/tmp`, which outlives invocations in a warm instance): whole sources
//! cached under a size budget (least recently used evicted first), per-task files removed on every path (a guard
//! deletes them unless kept), and leftovers of abandoned invocations (a timeout or crash mid-download) removed
//! once they are older than any invocation can run.
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Prefix of cached whole sources.
pub const SOURCE_PREFIX: &str = "vod-source-";
/// Prefix of per-task partial copies.
pub const PART_PREFIX: &str = "vod-part-";
/// No invocation runs longer than Lambda's 15 minutes: older temporary files are leftovers.
pub const LEFTOVER_AGE: Duration = Duration::from_secs(16 * 60);

/// A file removed when dropped, unless `keep` is called (a download in progress, a task's partial copy).
pub struct TempFile(Option<PathBuf>);

impl TempFile {
    pub fn new(path: PathBuf) -> Self {
        TempFile(Some(path))
    }
    /// The file's path.
    pub fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }
    /// Keeps the file (the download completed and was moved into place, say).
    pub fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn is_temporary(name: &str) -> bool {
    name.starts_with(PART_PREFIX) || (name.starts_with(SOURCE_PREFIX) && name.ends_with(".part"))
}

/// A new scratch file for spooling (the finalizer's sample tables, say), opened for reading and writing and
/// removed when its guard drops (or as a leftover, should the invocation die).
pub fn spool(dir: &Path, what: &str) -> std::io::Result<(std::fs::File, TempFile)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    std::fs::create_dir_all(dir)?;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{PART_PREFIX}spool-{}-{n}-{what}", std::process::id()));
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    Ok((file, TempFile::new(path)))
}

/// Removes temporary files older than `age` (leftovers of invocations that were abandoned). Returns how many.
pub fn remove_leftovers(dir: &Path, age: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !is_temporary(&name) {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .map(|t| now.duration_since(t).unwrap_or_default() >= age)
            .unwrap_or(false);
        if old && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Makes room for `need` more bytes of cached sources within `budget`: evicts cached sources, least recently used
/// (modification time, refreshed on every use) first. Returns the bytes evicted, or an error if `need` alone
/// exceeds the budget.
pub fn make_room(dir: &Path, need: u64, budget: u64) -> Result<u64, String> {
    if need > budget {
        return Err(format!(
            "the source ({need} bytes) is larger than the encoder's scratch budget ({budget} bytes)"
        ));
    }
    let mut cached: Vec<(SystemTime, u64, PathBuf)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.starts_with(SOURCE_PREFIX) && !n.ends_with(".part")
                })
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    Some((m.modified().ok()?, m.len(), e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut total: u64 = cached.iter().map(|c| c.1).sum();
    cached.sort_by_key(|c| c.0);
    let mut evicted = 0;
    for (_, len, path) in cached {
        if total + need <= budget {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= len;
            evicted += len;
        }
    }
    Ok(evicted)
}

/// Marks a cached source as just used (its modification time orders eviction).
pub fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vod-scratch-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn file(d: &Path, name: &str, len: usize, age_secs: u64) -> PathBuf {
        let p = d.join(name);
        std::fs::write(&p, vec![0u8; len]).unwrap();
        let t = SystemTime::now() - Duration::from_secs(age_secs);
        std::fs::File::options()
            .append(true)
            .open(&p)
            .unwrap()
            .set_modified(t)
            .unwrap();
        p
    }

    #[test]
    fn eviction_keeps_the_cache_within_its_budget_least_recently_used_first() {
        let d = dir("evict");
        let old = file(&d, "vod-source-a", 400, 300);
        let mid = file(&d, "vod-source-b", 400, 200);
        let new = file(&d, "vod-source-c", 400, 100);
        let other = file(&d, "unrelated", 5000, 1000);
        touch(&old); // used just now: the least recently used is now b
        assert_eq!(make_room(&d, 500, 1300).unwrap(), 400);
        assert!(old.exists() && !mid.exists() && new.exists() && other.exists());
        assert_eq!(
            make_room(&d, 1300, 1300).unwrap(),
            800,
            "everything cached goes for a source of the budget"
        );
        assert!(!old.exists() && !new.exists() && other.exists());
        assert!(
            make_room(&d, 1301, 1300).is_err(),
            "a source larger than the budget is refused"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn leftovers_of_abandoned_invocations_are_removed_and_guards_clean_up() {
        let d = dir("leftovers");
        let stale_part = file(&d, "vod-source-x.123.part", 10, 3600);
        let stale_chunk = file(&d, "vod-part-x-job-1", 10, 3600);
        let fresh_part = file(&d, "vod-source-y.123.part", 10, 5);
        let cached = file(&d, "vod-source-z", 10, 3600);
        assert_eq!(remove_leftovers(&d, LEFTOVER_AGE), 2);
        assert!(!stale_part.exists() && !stale_chunk.exists());
        assert!(fresh_part.exists(), "a download in progress elsewhere is left alone");
        assert!(cached.exists(), "cached sources are not leftovers");
        {
            let _guard = TempFile::new(fresh_part.clone());
        }
        assert!(!fresh_part.exists(), "dropped on an error path: removed");
        let kept = file(&d, "vod-part-k", 1, 0);
        TempFile::new(kept.clone()).keep();
        assert!(kept.exists());
        let _ = std::fs::remove_dir_all(&d);
    }
}
