//! The backup file: a store's records in one self-checking stream, and the
//! admin socket through which a running server hands one out.
//!
//! File layout (integers big-endian):
//!
//! ```text
//! automata-backup\n            magic
//! format <store format>\n      the store layout the records are in
//! { kind u8 | key length u32 | key | value length u32 | value }*
//! 0 u8 | record count u64 | sha256 of every byte before this trailer
//! ```
//!
//! A truncated or altered file fails the checksum or the count, so a
//! restore never starts from a partial backup. Derived index entries are not
//! in the file: restore rebuilds them from the records.

use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::store::{BackupKind, BackupRecord, FORMAT_VERSION};

/// The first line of every backup.
pub const MAGIC: &[u8] = b"automata-backup\n";
/// The admin socket's file name inside the data directory.
pub const SOCKET_NAME: &str = "admin.sock";
/// What a client sends on the admin socket to get a backup.
pub const BACKUP_REQUEST: &[u8] = b"backup\n";
/// The first bytes of the server's answer when it cannot make a backup;
/// the rest of the line says why.
pub const ERROR_PREFIX: &[u8] = b"error: ";

/// Why a backup could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// Not a backup, or damaged.
    #[error("not a usable backup: {0}")]
    Invalid(String),
    /// Written by a build with another store layout.
    #[error("the backup holds data format {found}; this build reads format {FORMAT_VERSION}")]
    Format { found: String },
}

/// The admin socket of the server using `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// Writes records as a backup to `W`, hashing as it goes.
pub struct BackupWriter<W: Write> {
    out: W,
    hasher: Sha256,
    records: u64,
}

impl<W: Write> BackupWriter<W> {
    /// Starts a backup: writes the header.
    pub fn new(out: W) -> io::Result<Self> {
        let mut writer = BackupWriter {
            out,
            hasher: Sha256::new(),
            records: 0,
        };
        writer.write(MAGIC)?;
        writer.write(format!("format {FORMAT_VERSION}\n").as_bytes())?;
        Ok(writer)
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hasher.update(bytes);
        self.out.write_all(bytes)
    }

    /// Appends one record.
    pub fn record(&mut self, record: &BackupRecord) -> io::Result<()> {
        let too_long = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a record's {what} is larger than 4 GiB"),
            )
        };
        let key_len = u32::try_from(record.key.len()).map_err(|_| too_long("key"))?;
        let value_len = u32::try_from(record.value.len()).map_err(|_| too_long("value"))?;
        self.write(&[record.kind.code()])?;
        self.write(&key_len.to_be_bytes())?;
        self.write(&record.key)?;
        self.write(&value_len.to_be_bytes())?;
        self.write(&record.value)?;
        self.records += 1;
        Ok(())
    }

    /// Writes the trailer and returns the output and how many records the
    /// backup holds.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        let digest = self.hasher.clone().finalize();
        self.out.write_all(&[0])?;
        self.out.write_all(&self.records.to_be_bytes())?;
        self.out.write_all(&digest)?;
        self.out.flush()?;
        Ok((self.out, self.records))
    }
}

/// Reads the records of a backup, checking the trailer at the end: the last
/// item is an error if the file is truncated or altered.
pub struct BackupReader<R: Read> {
    input: R,
    hasher: Sha256,
    records: u64,
    done: bool,
}

impl<R: BufRead> BackupReader<R> {
    /// Reads and checks the header.
    pub fn new(mut input: R) -> Result<Self, BackupError> {
        let mut hasher = Sha256::new();
        let mut magic = Vec::new();
        input.read_until(b'\n', &mut magic)?;
        if magic != MAGIC {
            return Err(BackupError::Invalid(
                "it does not start with `automata-backup`".into(),
            ));
        }
        hasher.update(&magic);
        let mut format = Vec::new();
        input.read_until(b'\n', &mut format)?;
        hasher.update(&format);
        let found = String::from_utf8_lossy(&format)
            .trim_end()
            .strip_prefix("format ")
            .map(str::to_owned)
            .ok_or_else(|| BackupError::Invalid("its header has no format line".into()))?;
        if found != FORMAT_VERSION {
            return Err(BackupError::Format { found });
        }
        Ok(BackupReader {
            input,
            hasher,
            records: 0,
            done: false,
        })
    }

    fn exact(&mut self, len: usize, hash: bool) -> Result<Vec<u8>, BackupError> {
        let mut bytes = vec![0; len];
        self.input.read_exact(&mut bytes).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                BackupError::Invalid("it ends early (truncated?)".into())
            } else {
                BackupError::Io(e)
            }
        })?;
        if hash {
            self.hasher.update(&bytes);
        }
        Ok(bytes)
    }

    fn length(&mut self) -> Result<usize, BackupError> {
        let bytes = self.exact(4, true)?;
        Ok(u32::from_be_bytes(bytes.try_into().expect("4 bytes")) as usize)
    }

    fn next_record(&mut self) -> Result<Option<BackupRecord>, BackupError> {
        let code = self.exact(1, false)?[0];
        if code == 0 {
            let count = u64::from_be_bytes(self.exact(8, false)?.try_into().expect("8 bytes"));
            let digest = self.exact(32, false)?;
            if count != self.records {
                return Err(BackupError::Invalid(format!(
                    "its trailer counts {count} records, {} were read",
                    self.records
                )));
            }
            if digest.as_slice() != self.hasher.clone().finalize().as_slice() {
                return Err(BackupError::Invalid("its checksum does not match".into()));
            }
            let mut rest = [0u8; 1];
            if self.input.read(&mut rest)? != 0 {
                return Err(BackupError::Invalid("it goes on after its trailer".into()));
            }
            return Ok(None);
        }
        self.hasher.update([code]);
        let kind = BackupKind::from_code(code)
            .ok_or_else(|| BackupError::Invalid(format!("unknown record kind {code}")))?;
        let key_len = self.length()?;
        let key = self.exact(key_len, true)?;
        let value_len = self.length()?;
        let value = self.exact(value_len, true)?;
        self.records += 1;
        Ok(Some(BackupRecord { kind, key, value }))
    }
}

impl<R: BufRead> Iterator for BackupReader<R> {
    type Item = Result<BackupRecord, BackupError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_record() {
            Ok(Some(record)) => Some(Ok(record)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(error) => {
                self.done = true;
                Some(Err(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records() -> Vec<BackupRecord> {
        vec![
            BackupRecord {
                kind: BackupKind::Config,
                key: b"default/cfg_1".to_vec(),
                value: b"{}".to_vec(),
            },
            BackupRecord {
                kind: BackupKind::Blob,
                key: b"sha256:aa".to_vec(),
                value: vec![0, 1, 2, 255],
            },
        ]
    }

    fn written() -> Vec<u8> {
        let mut writer = BackupWriter::new(Vec::new()).unwrap();
        for record in records() {
            writer.record(&record).unwrap();
        }
        let (bytes, count) = writer.finish().unwrap();
        assert_eq!(count, 2);
        bytes
    }

    #[test]
    fn records_round_trip() {
        let bytes = written();
        let read: Vec<BackupRecord> = BackupReader::new(bytes.as_slice())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(read, records());
    }

    #[test]
    fn damage_is_detected() {
        let bytes = written();
        let truncated = &bytes[..bytes.len() - 10];
        let error = BackupReader::new(truncated)
            .unwrap()
            .find_map(Result::err)
            .unwrap();
        assert!(error.to_string().contains("ends early"), "{error}");

        let mut flipped = bytes.clone();
        let at = flipped.len() - 45;
        flipped[at] ^= 1;
        let error = BackupReader::new(flipped.as_slice())
            .unwrap()
            .find_map(Result::err)
            .unwrap();
        assert!(error.to_string().contains("checksum"), "{error}");

        let other = [MAGIC, b"format 99\n"].concat();
        assert!(matches!(
            BackupReader::new(other.as_slice()),
            Err(BackupError::Format { .. })
        ));
        assert!(BackupReader::new(&b"hello\n"[..]).is_err());
    }
}
