//! `automata backup` and `automata restore`: a data directory's records to
//! one file and back.
//!
//! These two (like `serve`) work on a data directory, not through the API:
//! a running server hands its backup out on the admin socket in the data
//! directory; a stopped one's store is read directly.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::args::UsageError;
use crate::backup::{BACKUP_REQUEST, BackupReader, BackupWriter, ERROR_PREFIX, MAGIC, socket_path};
use crate::service::secret_key::{SECRET_KEY_ENV, SECRET_KEY_FILE};
use crate::store::{
    BackupKind, BackupStore as _, Durability, SledStore, Store, StoreError, StoreOptions,
};

/// Write a consistent backup of a data directory to a file
///
/// Works while the server runs: it hands the backup out on the admin socket
/// in the data directory (admin.sock). With no server, the store is read
/// directly. Every run the server acknowledged before the backup started is
/// in it. The file checks itself: restore refuses a truncated or altered one.
///
/// Example:
///   automata backup --data-dir /var/lib/automata --out automata-2026-03-01.backup
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct Backup {
    /// The server's data directory.
    #[arg(long, env = "AUTOMATA_DATA_DIR", default_value = "automata-data")]
    data_dir: PathBuf,
    /// The backup file to write (replaced only once the backup is complete;
    /// created readable by its owner only: it holds payloads and key
    /// hashes). An existing path that is not a regular file (a device, a
    /// directory, a symlink, `-` for stdout) is refused.
    #[arg(long)]
    out: PathBuf,
}

/// Restore a backup into an empty data directory
///
/// The directory must be new or empty; start `automata serve --data-dir` on
/// it afterwards. Indexes are rebuilt from the backed-up records.
///
/// Example:
///   automata restore --data-dir /var/lib/automata-restored --from automata-2026-03-01.backup
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct Restore {
    /// The data directory to restore into (created if missing; must be empty).
    #[arg(long)]
    data_dir: PathBuf,
    /// The backup file.
    #[arg(long)]
    from: PathBuf,
}

impl Backup {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        if !self.data_dir.is_dir() {
            return Err(UsageError(format!(
                "{} is not a data directory",
                self.data_dir.display()
            ))
            .into());
        }
        check_out(&self.out)?;
        let partial = partial_path(&self.out);
        let records = match from_server(&self.data_dir, &partial)? {
            Some(records) => records,
            None => from_store(&self.data_dir, &partial)?,
        };
        std::fs::rename(&partial, &self.out).with_context(|| {
            format!(
                "cannot move the backup into place at {}",
                self.out.display()
            )
        })?;
        println!(
            "Backed up {records} records from {} to {}.",
            self.data_dir.display(),
            self.out.display()
        );
        Ok(ExitCode::SUCCESS)
    }
}

/// Refuses an `--out` the backup must not replace: the backup is written
/// beside it and renamed over it, which would turn a device (`/dev/full`),
/// a symlink or a directory into a regular file. `-` is refused too: a
/// backup is only useful once complete and verified, which a pipe cannot
/// promise.
fn check_out(out: &Path) -> Result<(), UsageError> {
    if out.as_os_str() == "-" {
        return Err(UsageError(
            "--out - (stdout) is not supported: the backup is verified in a file before it \
             is moved into place; give a file path"
                .into(),
        ));
    }
    match std::fs::symlink_metadata(out) {
        Ok(found) if !found.file_type().is_file() => Err(UsageError(format!(
            "--out {} exists and is not a regular file; refusing to replace it with the backup",
            out.display()
        ))),
        _ => Ok(()),
    }
}

/// Creates (or empties) `path` readable and writable by its owner only
/// (mode 0600): a backup holds payloads and key hashes.
fn create_private(path: &Path) -> anyhow::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // A leftover from an interrupted backup keeps its mode when truncated.
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot replace {}", path.display()));
        }
        _ => {}
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

/// `FILE.partial` beside `out`: where the backup is written before it is
/// complete.
fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_owned();
    name.push(".partial");
    out.with_file_name(name)
}

/// Asks the server on the data directory's admin socket; `None` when no
/// server listens there.
fn from_server(data_dir: &Path, partial: &Path) -> anyhow::Result<Option<u64>> {
    let socket = socket_path(data_dir);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let bytes = runtime.block_on(async {
        let mut stream = match tokio::net::UnixStream::connect(&socket).await {
            Ok(stream) => stream,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e).with_context(|| format!("cannot reach {}", socket.display())),
        };
        stream.write_all(BACKUP_REQUEST).await?;
        let mut file = tokio::fs::File::from_std(create_private(partial)?);
        let mut head = Vec::new();
        let mut buffer = vec![0; 256 * 1024];
        loop {
            let read = stream
                .read(&mut buffer)
                .await
                .context("the server stopped sending the backup")?;
            if read == 0 {
                break;
            }
            if head.len() < MAGIC.len() {
                head.extend_from_slice(&buffer[..read.min(MAGIC.len())]);
                if head.starts_with(ERROR_PREFIX) {
                    let rest = String::from_utf8_lossy(&buffer[ERROR_PREFIX.len()..read]);
                    bail!("the server refused the backup: {}", rest.trim());
                }
            }
            file.write_all(&buffer[..read]).await?;
        }
        file.sync_all().await?;
        anyhow::Ok(Some(()))
    })?;
    match bytes {
        Some(()) => Ok(Some(verify(partial).context(
            "the server's backup is incomplete (did it stop meanwhile?)",
        )?)),
        None => Ok(None),
    }
}

/// Reads a stopped server's store directly.
fn from_store(data_dir: &Path, partial: &Path) -> anyhow::Result<u64> {
    let store = open_store(data_dir).map_err(|e| match e {
        StoreError::Locked(_) => anyhow::anyhow!(
            "{} is in use by a server that does not answer on {}; is it an older build?",
            data_dir.display(),
            socket_path(data_dir).display()
        ),
        other => other.into(),
    })?;
    let file = create_private(partial)?;
    let mut writer = BackupWriter::new(BufWriter::new(file))?;
    let io = |e: std::io::Error| StoreError::Backend(format!("writing the backup: {e}"));
    store.export(&mut |record| writer.record(&record).map_err(io))?;
    let (out, records) = writer.finish()?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(records)
}

fn open_store(data_dir: &Path) -> Result<SledStore, StoreError> {
    SledStore::open(
        data_dir,
        &StoreOptions {
            // Nothing waits on single writes here; one flush at the end.
            durability: Durability::Interval(std::time::Duration::from_secs(1)),
            ..StoreOptions::default()
        },
    )
}

/// Reads a backup to its end, checking it; how many records it holds.
fn verify(path: &Path) -> anyhow::Result<u64> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut records = 0;
    for record in BackupReader::new(BufReader::new(file))? {
        record?;
        records += 1;
    }
    Ok(records)
}

impl Restore {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let records = verify(&self.from)
            .with_context(|| format!("{} cannot be restored", self.from.display()))?;
        if let Ok(mut entries) = std::fs::read_dir(&self.data_dir)
            && entries.next().is_some()
        {
            return Err(UsageError(format!(
                "{} is not empty; restore into a new or empty directory",
                self.data_dir.display()
            ))
            .into());
        }
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("cannot create {}", self.data_dir.display()))?;
        let store = open_store(&self.data_dir)?;
        let file = File::open(&self.from)?;
        let mut counts = [0u64; BackupKind::ALL.len()];
        for record in BackupReader::new(BufReader::new(file))? {
            let record = record?;
            counts[BackupKind::ALL
                .iter()
                .position(|kind| *kind == record.kind)
                .expect("every kind is listed")] += 1;
            store.import(&record)?;
        }
        let report = store.check_indexes(true)?;
        store.flush()?;
        let [
            apps,
            keys,
            secrets,
            configs,
            blobs,
            automations,
            runs,
            state,
            quarantine,
        ] = counts;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "Restored {records} records into {}: {apps} apps, {automations} automations, \
             {configs} configs ({blobs} components), {runs} runs, {state} cursors and receipts, \
             {keys} key entries, {secrets} secrets.",
            self.data_dir.display()
        )?;
        if quarantine > 0 {
            // Two entries per quarantined record: its metadata and its bytes.
            writeln!(
                out,
                "The quarantine came along: {} record(s) the host could not read \
                 (`automata doctor --data-dir {}` lists them).",
                quarantine / 2,
                self.data_dir.display()
            )?;
        }
        if secrets > 0 {
            writeln!(
                out,
                "The secrets are sealed and the backup holds no key: serve the copy with the key \
                 they were sealed with (copy the old data directory's `{SECRET_KEY_FILE}` into \
                 {}, or set {SECRET_KEY_ENV}).",
                self.data_dir.display()
            )?;
        }
        if report.undecodable > 0 {
            writeln!(
                out,
                "{} records could not be read; run `automata doctor --data-dir {}`.",
                report.undecodable,
                self.data_dir.display()
            )?;
        }
        Ok(ExitCode::SUCCESS)
    }
}
