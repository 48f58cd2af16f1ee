//! Compiled components kept on disk, so that a restart does not recompile.
//!
//! An entry is `<digest hex>.cwasm`: a magic line, the sha256 of the
//! serialized artifact, then the artifact. A wrong magic, a checksum mismatch
//! (corruption, truncation) or an artifact wasmtime refuses (another wasmtime
//! version or engine configuration) makes the entry a miss: the component is
//! compiled again and the entry replaced. The cache is best-effort: failing to
//! read or write it is logged, never fatal.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::SetupError;
use crate::domain::digest::ComponentDigest;

const MAGIC: &[u8] = b"automata-compiled-component-v1\n";
const CHECKSUM_LEN: usize = 32;

/// A directory of compiled components.
#[derive(Debug, Clone)]
pub(super) struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    /// Opens (creating it if needed) the cache in `dir`.
    pub(super) fn open(dir: &Path) -> Result<Self, SetupError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            SetupError(format!(
                "cannot create the compile cache directory {}: {e}",
                dir.display()
            ))
        })?;
        Ok(CompileCache {
            dir: dir.to_owned(),
        })
    }

    pub(super) fn entry_path(&self, digest: &ComponentDigest) -> PathBuf {
        self.dir.join(format!("{}.cwasm", digest.hex()))
    }

    /// Removes the entries of components not in `keep`; returns how many.
    /// Files that are not entries are left alone.
    pub(super) fn retain(&self, keep: &[ComponentDigest]) -> usize {
        let keep: std::collections::HashSet<String> =
            keep.iter().map(ComponentDigest::hex).collect();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".cwasm")) else {
                continue;
            };
            if keep.contains(hex) {
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!(
                    "cannot remove compile cache entry {}: {e}",
                    entry.path().display()
                ),
            }
        }
        removed
    }

    /// The cached compilation of `digest`, if there is a sound one.
    pub(super) fn get(&self, engine: &Engine, digest: &ComponentDigest) -> Option<Component> {
        let path = self.entry_path(digest);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!("cannot read compile cache entry {}: {e}", path.display());
                return None;
            }
        };
        let Some(artifact) = verified_artifact(&bytes) else {
            tracing::warn!(
                "compile cache entry {} is corrupt; recompiling",
                path.display()
            );
            return None;
        };
        // SAFETY: `artifact` is byte for byte what `Component::serialize`
        // produced when this host stored the entry (its checksum matches), and
        // wasmtime refuses artifacts from another version or configuration.
        // The cache directory belongs to the host; it is not an upload path.
        match unsafe { Component::deserialize(engine, artifact) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(
                    "compile cache entry {} is incompatible with this engine ({e:#}); recompiling",
                    path.display()
                );
                None
            }
        }
    }

    /// Stores the compilation of `digest`, replacing any entry atomically.
    pub(super) fn put(&self, digest: &ComponentDigest, component: &Component) {
        let path = self.entry_path(digest);
        if let Err(e) = self.write_entry(&path, component) {
            tracing::warn!("cannot write compile cache entry {}: {e}", path.display());
        }
    }

    fn write_entry(&self, path: &Path, component: &Component) -> std::io::Result<()> {
        let artifact = component
            .serialize()
            .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
        // Written aside and renamed into place, so a reader never sees half an
        // entry and concurrent writers of one digest do not interleave.
        let staging = self.dir.join(format!(".{}.tmp", rand::random::<u64>()));
        let written = (|| {
            let mut file = std::fs::File::create(&staging)?;
            file.write_all(MAGIC)?;
            file.write_all(&Sha256::digest(&artifact))?;
            file.write_all(&artifact)?;
            file.sync_data()?;
            std::fs::rename(&staging, path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&staging);
        }
        written
    }
}

/// The artifact inside an entry, when its magic and checksum are right.
fn verified_artifact(entry: &[u8]) -> Option<&[u8]> {
    let rest = entry.strip_prefix(MAGIC)?;
    if rest.len() < CHECKSUM_LEN {
        return None;
    }
    let (checksum, artifact) = rest.split_at(CHECKSUM_LEN);
    (Sha256::digest(artifact).as_slice() == checksum).then_some(artifact)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(artifact: &[u8]) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&Sha256::digest(artifact));
        bytes.extend_from_slice(artifact);
        bytes
    }

    const COMPONENT: &str = r#"(component
        (core module $m (func (export "f")))
        (core instance $i (instantiate $m))
        (func $f (canon lift (core func $i "f")))
        (export "f" (func $f))
    )"#;

    fn engine(fuel: bool) -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true).consume_fuel(fuel);
        Engine::new(&config).unwrap()
    }

    #[test]
    fn retain_removes_entries_of_components_no_longer_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path()).unwrap();
        let (kept, gone) = (ComponentDigest::of(b"kept"), ComponentDigest::of(b"gone"));
        std::fs::write(cache.entry_path(&kept), b"x").unwrap();
        std::fs::write(cache.entry_path(&gone), b"x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        assert_eq!(cache.retain(std::slice::from_ref(&kept)), 1);
        assert!(cache.entry_path(&kept).exists());
        assert!(!cache.entry_path(&gone).exists());
        assert!(dir.path().join("notes.txt").exists());
    }

    #[test]
    fn round_trips_and_refuses_what_another_engine_compiled() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(&dir.path().join("cache")).unwrap();
        let bytes = wat::parse_str(COMPONENT).unwrap();
        let digest = ComponentDigest::of(&bytes);
        let ours = engine(true);
        assert!(cache.get(&ours, &digest).is_none());

        // An entry with a sound checksum, compiled under another configuration.
        let theirs = engine(false);
        cache.put(&digest, &Component::new(&theirs, &bytes).unwrap());
        assert!(cache.get(&theirs, &digest).is_some());
        assert!(cache.get(&ours, &digest).is_none());

        // An entry with a sound checksum whose artifact is not wasmtime's at all.
        std::fs::write(cache.entry_path(&digest), entry(b"not an artifact")).unwrap();
        assert!(cache.get(&ours, &digest).is_none());

        cache.put(&digest, &Component::new(&ours, &bytes).unwrap());
        assert!(cache.get(&ours, &digest).is_some());
        let leftovers = std::fs::read_dir(dir.path().join("cache")).unwrap().count();
        assert_eq!(leftovers, 1, "only the entry remains, no staging files");
    }

    #[test]
    fn accepts_only_entries_whose_checksum_matches() {
        let good = entry(b"artifact bytes");
        assert_eq!(verified_artifact(&good), Some(&b"artifact bytes"[..]));

        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(verified_artifact(&flipped), None);

        assert_eq!(verified_artifact(&good[..good.len() - 1]), None);
        assert_eq!(verified_artifact(&good[..MAGIC.len() + 3]), None);
        assert_eq!(verified_artifact(b"\x7fELF not ours"), None);
    }
}
