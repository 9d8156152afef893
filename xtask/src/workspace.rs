//! What the workspace holds: its root and its crates, read from the file tree so that a crate
//! added under `crates/` is picked up by every chore without editing xtask.

use std::fs;
use std::path::{Path, PathBuf};

use crate::cmd::Error;

/// One crate under `crates/`.
#[derive(Debug)]
pub(crate) struct Crate {
    /// The package name (the folder is named after it).
    pub(crate) name: String,
    /// The crate's folder.
    pub(crate) dir: PathBuf,
    /// Whether it has a library target (`src/lib.rs`).
    pub(crate) is_library: bool,
}

/// The workspace root: the parent of this xtask's manifest folder.
pub(crate) fn root() -> Result<PathBuf, Error> {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| Error::Message(format!("{} has no parent folder", manifest.display())))
}

/// Every crate under `crates/`, sorted by name.
pub(crate) fn crates(root: &Path) -> Result<Vec<Crate>, Error> {
    let folder = root.join("crates");
    let entries = fs::read_dir(&folder)
        .map_err(|e| Error::Message(format!("cannot list {}: {e}", folder.display())))?;
    let mut crates = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::Message(format!("{}: {e}", folder.display())))?;
        let dir = entry.path();
        if !dir.join("Cargo.toml").is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_library = dir.join("src/lib.rs").is_file();
        crates.push(Crate { name, dir, is_library });
    }
    crates.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(crates)
}
