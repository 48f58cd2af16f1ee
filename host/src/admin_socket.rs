//! The admin socket: `admin.sock` in the data directory, through which
//! `automata backup` gets a backup from the server that holds the store.
//!
//! A Unix socket (mode 0600) and not an HTTP route: whoever may use it can
//! already read the data directory, so it needs no key of its own, and the
//! API port never hands out the whole store. A request is the line
//! `backup`; the answer is the backup stream (see [`crate::backup`]), or a
//! line starting `error: `.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::backup::{BACKUP_REQUEST, BackupWriter, ERROR_PREFIX, socket_path};
use crate::store::{Store, StoreError};

/// How long a client has to send its request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes per chunk handed from the exporting thread to the socket.
const CHUNK: usize = 256 * 1024;

/// The bound admin socket; its file is removed when this is dropped.
pub struct AdminSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl AdminSocket {
    /// Binds `admin.sock` in `data_dir`, replacing a socket file a previous
    /// process left (the caller holds the store, so no server is using it).
    pub fn bind(data_dir: &Path) -> io::Result<Self> {
        let path = socket_path(data_dir);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = UnixListener::bind(&path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(AdminSocket { listener, path })
    }

    /// Answers requests until `stop` turns true.
    pub fn serve(self, store: Arc<dyn Store>, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = self.listener.accept() => accepted,
                    _ = stop.wait_for(|stop| *stop) => return,
                };
                match accepted {
                    Ok((stream, _)) => {
                        tokio::spawn(answer(stream, Arc::clone(&store)));
                    }
                    Err(error) => {
                        tracing::warn!("the admin socket failed to accept: {error}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        })
    }
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn answer(mut stream: UnixStream, store: Arc<dyn Store>) {
    let mut request = Vec::new();
    let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut byte = [0u8; 1];
        while request.len() < 64 && stream.read(&mut byte).await? == 1 {
            request.push(byte[0]);
            if byte[0] == b'\n' {
                break;
            }
        }
        io::Result::Ok(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) || request != BACKUP_REQUEST {
        let _ = stream
            .write_all(&[ERROR_PREFIX, b"unknown request; send `backup`\n"].concat())
            .await;
        return;
    }
    let started = std::time::Instant::now();
    let (chunks, mut received) = mpsc::channel::<Vec<u8>>(4);
    let export = tokio::task::spawn_blocking(move || export(&*store, chunks));
    while let Some(chunk) = received.recv().await {
        if let Err(error) = stream.write_all(&chunk).await {
            tracing::warn!("a backup client went away: {error}");
            return;
        }
    }
    match export.await {
        Ok(Ok(records)) => tracing::info!(
            records,
            duration_ms = started.elapsed().as_millis() as u64,
            "backup handed out"
        ),
        Ok(Err(error)) => {
            tracing::error!("backup failed: {error}");
            // The stream ends without its trailer: the client sees it.
        }
        Err(error) => tracing::error!("backup failed: {error}"),
    }
}

/// Writes a backup of `store` into `chunks`; how many records.
fn export(store: &dyn Store, chunks: mpsc::Sender<Vec<u8>>) -> Result<u64, StoreError> {
    let sink = ChunkWriter {
        chunks,
        buffer: Vec::with_capacity(CHUNK),
    };
    let io = |e: io::Error| StoreError::Backend(format!("writing the backup: {e}"));
    let mut writer = BackupWriter::new(sink).map_err(io)?;
    store.export(&mut |record| writer.record(&record).map_err(io))?;
    let (mut sink, records) = writer.finish().map_err(io)?;
    sink.flush().map_err(io)?;
    Ok(records)
}

/// A `Write` that hands full chunks to the async side.
struct ChunkWriter {
    chunks: mpsc::Sender<Vec<u8>>,
    buffer: Vec<u8>,
}

impl Write for ChunkWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK {
            self.flush()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
        self.chunks
            .blocking_send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}
