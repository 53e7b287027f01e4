//! Which files a source reads: a file, the files of a folder, or the files matching a
//! glob (`*` and `?` in the last path component), and which subtask reads which.
//!
//! Files whose name starts with `.` or `_` are skipped in folders and globs (hidden
//! files and in-progress files by the usual convention: write `.name` or `_name`, then
//! rename it into place); a file named explicitly is always read.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::error::FileError;

/// Whether a file found in a folder is skipped by the naming convention.
pub fn is_hidden(name: &OsStr) -> bool {
    let bytes = name.as_encoded_bytes();
    bytes.first().is_some_and(|b| *b == b'.' || *b == b'_')
}

/// Whether `text` matches `pattern` (`*`: any run of bytes, `?`: one byte).
pub fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative matching with backtracking to the last `*` (linear in practice).
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|b| *b == b'*')
}

/// The regular files of `folder` that are not hidden and whose name matches
/// `pattern` (all if `None`), sorted by name.
pub fn list_folder(folder: &Path, pattern: Option<&OsStr>) -> Result<Vec<PathBuf>, FileError> {
    let entries =
        std::fs::read_dir(folder).map_err(|e| FileError::io("cannot list folder", folder, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| FileError::io("cannot list folder", folder, e))?;
        let name = entry.file_name();
        if is_hidden(&name) {
            continue;
        }
        if let Some(pattern) = pattern {
            if !glob_matches(pattern.as_encoded_bytes(), name.as_encoded_bytes()) {
                continue;
            }
        }
        // Follows symbolic links: a link to a file is read as the file.
        let path = entry.path();
        if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The files `path` names: itself if a file, its files if a folder, the matching files
/// if its last component holds `*` or `?`. Sorted, so every subtask sees one list.
pub fn expand(path: &Path) -> Result<Vec<PathBuf>, FileError> {
    let name = path.file_name().unwrap_or_default();
    let is_glob = name
        .as_encoded_bytes()
        .iter()
        .any(|b| *b == b'*' || *b == b'?');
    if is_glob {
        let folder = path.parent().unwrap_or(Path::new("/"));
        return list_folder(folder, Some(name));
    }
    let metadata = std::fs::metadata(path).map_err(|e| FileError::io("cannot read", path, e))?;
    if metadata.is_dir() {
        list_folder(path, None)
    } else {
        Ok(vec![path.to_path_buf()])
    }
}

/// The subtask (of `parallelism`) that reads a watched file: a stable hash (FNV-1a) of
/// its name, so every subtask decides alike without talking to the others.
pub fn owner_of(name: &OsStr, parallelism: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.as_encoded_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % parallelism.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_a_shell() {
        assert!(glob_matches(b"*.csv", b"a.csv"));
        assert!(glob_matches(b"*.csv", b".csv"));
        assert!(!glob_matches(b"*.csv", b"a.csv.gz"));
        assert!(glob_matches(b"a?c*", b"abc"));
        assert!(glob_matches(b"*a*b*", b"xxaxxbxx"));
        assert!(!glob_matches(b"*a*b", b"xxaxxbxxc"));
        assert!(glob_matches(b"*", b""));
    }

    #[test]
    fn folders_and_globs_list_sorted_visible_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.csv", "a.csv", "c.txt", ".hidden.csv", "_tmp.csv"] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.csv")).unwrap();
        let names = |files: Vec<PathBuf>| -> Vec<String> {
            files
                .iter()
                .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            names(expand(dir.path()).unwrap()),
            ["a.csv", "b.csv", "c.txt"]
        );
        assert_eq!(
            names(expand(&dir.path().join("*.csv")).unwrap()),
            ["a.csv", "b.csv"]
        );
        assert_eq!(
            names(expand(&dir.path().join(".hidden.csv")).unwrap()),
            [".hidden.csv"]
        );
        assert!(expand(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn owners_spread_names_over_subtasks() {
        let mut counts = [0usize; 4];
        for index in 0..1000 {
            let name = format!("file-{index}.csv");
            let owner = owner_of(OsStr::new(&name), 4);
            assert_eq!(owner, owner_of(OsStr::new(&name), 4));
            counts[owner] += 1;
        }
        assert!(counts.iter().all(|c| *c > 150), "{counts:?}");
        assert_eq!(owner_of(OsStr::new("x"), 1), 0);
    }
}
