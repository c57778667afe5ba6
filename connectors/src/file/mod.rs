//! Local NDJSON files: a glob or a directory, read in path order, resumable by byte offset.
//!
//! Compressed files (`.gz`, `.zst`) are resumed by offset in the decompressed stream: the
//! reader decompresses and skips up to the offset, which is correct if slower than a seek.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::{Error, Offset, Position, Result, SourceBatch};

/// Where a file source reads from; paths are resolved against the config file's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSourceConfig {
    /// A glob (`data/*.ndjson`) or a directory (all `*.ndjson[.gz|.zst]` below it).
    pub path: String,
    /// Folder that relative paths are resolved against.
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("gz") => Compression::Gzip,
            Some("zst") | Some("zstd") => Compression::Zstd,
            _ => Compression::None,
        }
    }
}

/// One input file and its size on disk (compressed size for compressed files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    pub path: PathBuf,
    /// Partition identity used in positions and in the lake's commit records.
    pub id: String,
    pub size: u64,
    pub compression: Compression,
}

impl FileSourceConfig {
    fn pattern(&self) -> PathBuf {
        let p = Path::new(&self.path);
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        };
        if p.is_dir() {
            p.join("**").join("*.ndjson*")
        } else {
            p
        }
    }

    /// Files matching the source, in path order (the order records are read and committed).
    pub fn list(&self) -> Result<Vec<InputFile>> {
        let pattern = self.pattern();
        let pattern_s = pattern.to_string_lossy().to_string();
        let entries = glob::glob(&pattern_s).map_err(|e| Error::BadPattern {
            pattern: self.path.clone(),
            reason: e.to_string(),
        })?;
        let mut files = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| Error::Io {
                path: e.path().display().to_string(),
                source: std::io::Error::other(e.to_string()),
            })?;
            let meta = std::fs::metadata(&path).map_err(|source| Error::Io {
                path: path.display().to_string(),
                source,
            })?;
            if !meta.is_file() {
                continue;
            }
            let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            files.push(InputFile {
                id: canonical.display().to_string(),
                compression: Compression::of(&path),
                size: meta.len(),
                path,
            });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }
}

/// Reads one file as chunks of whole lines, starting at a committed offset.
pub struct FileReader {
    file: InputFile,
    reader: Box<dyn Read + Send>,
    offset: u64,
    /// Bytes read past the last complete line, carried into the next chunk.
    carry: Vec<u8>,
    eof: bool,
    /// Average record size seen so far (0 until the first chunk): sizes reads so that a
    /// chunk cut at `max_records` leaves little to carry over.
    bytes_per_record: usize,
}

impl FileReader {
    /// Opens `file` and positions it at `offset` (in the decompressed stream).
    pub fn open(file: &InputFile, offset: u64) -> Result<Self> {
        let io_err = |source| Error::Io {
            path: file.path.display().to_string(),
            source,
        };
        let mut f = File::open(&file.path).map_err(io_err)?;
        // Plain files seek; compressed ones decompress and skip up to the offset.
        let skip = if file.compression == Compression::None {
            use std::io::{Seek, SeekFrom};
            f.seek(SeekFrom::Start(offset)).map_err(io_err)?;
            0
        } else {
            offset
        };
        Self::from_read(file, Box::new(f), offset, skip)
    }

    /// Reads `raw` (the file's bytes as stored, already positioned `offset - skip` bytes
    /// into the decompressed stream — plain inputs seek, compressed ones start at 0 and
    /// skip) as chunks of lines. Used for local files and streamed S3 objects alike.
    pub fn from_read(
        file: &InputFile,
        raw: Box<dyn Read + Send>,
        offset: u64,
        skip: u64,
    ) -> Result<Self> {
        let io_err = |source| Error::Io {
            path: file.path.display().to_string(),
            source,
        };
        let mut reader: Box<dyn Read + Send> = match file.compression {
            Compression::None => Box::new(BufReader::with_capacity(1 << 20, raw)),
            Compression::Gzip => Box::new(BufReader::with_capacity(
                1 << 20,
                flate2::read::MultiGzDecoder::new(BufReader::new(raw)),
            )),
            Compression::Zstd => Box::new(BufReader::with_capacity(
                1 << 20,
                zstd::stream::read::Decoder::new(raw).map_err(io_err)?,
            )),
        };
        if skip > 0 {
            let skipped = std::io::copy(&mut (&mut reader).take(skip), &mut std::io::sink())
                .map_err(|source| Error::Decompress {
                    path: file.path.display().to_string(),
                    offset,
                    source,
                })?;
            if skipped < skip {
                return Err(Error::Decompress {
                    path: file.path.display().to_string(),
                    offset,
                    source: std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file is shorter than its committed offset (was it replaced?)",
                    ),
                });
            }
        }
        Ok(Self {
            file: file.clone(),
            reader,
            offset,
            carry: Vec::new(),
            eof: false,
            bytes_per_record: 0,
        })
    }

    pub fn file(&self) -> &InputFile {
        &self.file
    }

    /// The next chunk of whole lines — about `target_bytes`, and at most `max_records`
    /// lines — or `None` at end of file. A line longer than `target_bytes` is returned
    /// whole in its own chunk.
    pub fn next_chunk(
        &mut self,
        target_bytes: usize,
        max_records: usize,
    ) -> Result<Option<SourceBatch>> {
        let max_records = max_records.max(1);
        let mut target = target_bytes.max(1);
        if self.bytes_per_record > 0 {
            target = target.min(
                self.bytes_per_record
                    .saturating_mul(max_records.saturating_add(1)),
            );
        }
        let mut buf = std::mem::take(&mut self.carry);
        loop {
            if !self.eof && buf.len() < target {
                let start = buf.len();
                buf.resize(target, 0);
                let n = self.read_some(&mut buf[start..])?;
                buf.truncate(start + n);
                if n == 0 {
                    self.eof = true;
                }
                continue;
            }
            // Cut after the last newline; at EOF the remainder is a final unterminated line.
            let mut cut = if self.eof {
                buf.len()
            } else {
                match memchr::memrchr(b'\n', &buf) {
                    Some(i) => i + 1,
                    None => {
                        // A line longer than the chunk target: keep reading until it ends.
                        let start = buf.len();
                        buf.resize(start * 2, 0);
                        let n = self.read_some(&mut buf[start..])?;
                        buf.truncate(start + n);
                        if n == 0 {
                            self.eof = true;
                        }
                        continue;
                    }
                }
            };
            if cut == 0 {
                return Ok(None);
            }
            let mut lines = 0;
            for nl in memchr::memchr_iter(b'\n', &buf[..cut]) {
                lines += 1;
                if lines == max_records {
                    cut = nl + 1;
                    break;
                }
            }
            self.bytes_per_record = cut / lines.max(1);
            self.carry = buf.split_off(cut);
            let start = Position {
                partition: self.file.id.clone(),
                offset: self.offset,
            };
            self.offset += cut as u64;
            return Ok(Some(SourceBatch {
                records: buf,
                start,
                end: Offset::Bytes(self.offset),
                ids: Vec::new(),
            }));
        }
    }

    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize> {
        loop {
            match self.reader.read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(match self.file.compression {
                        Compression::None => Error::Io {
                            path: self.file.path.display().to_string(),
                            source,
                        },
                        _ => Error::Decompress {
                            path: self.file.path.display().to_string(),
                            offset: self.offset,
                            source,
                        },
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(file: &InputFile, offset: u64, chunk: usize) -> Vec<SourceBatch> {
        let mut r = FileReader::open(file, offset).unwrap();
        let mut out = Vec::new();
        while let Some(b) = r.next_chunk(chunk, usize::MAX).unwrap() {
            out.push(b);
        }
        out
    }

    fn lines(n: usize) -> String {
        (0..n).map(|i| format!("{{\"i\":{i}}}\n")).collect()
    }

    #[test]
    fn chunks_cut_at_newlines_and_resume_by_offset() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.ndjson"), lines(100)).unwrap();
        let cfg = FileSourceConfig {
            path: "*.ndjson".into(),
            base_dir: dir.path().into(),
        };
        let files = cfg.list().unwrap();
        assert_eq!(files.len(), 1);
        let chunks = read_all(&files[0], 0, 50);
        assert!(chunks.len() > 5);
        let all: Vec<u8> = chunks.iter().flat_map(|c| c.records.clone()).collect();
        assert_eq!(String::from_utf8(all).unwrap(), lines(100));
        for c in &chunks {
            assert_eq!(*c.records.last().unwrap(), b'\n');
        }
        // Resume after the third chunk: exactly the rest.
        let resume = chunks[2].end.bytes();
        let rest: Vec<u8> = read_all(&files[0], resume, 50)
            .iter()
            .flat_map(|c| c.records.clone())
            .collect();
        assert_eq!(rest, lines(100).as_bytes()[resume as usize..].to_vec());
    }

    #[test]
    fn chunks_hold_at_most_max_records() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.ndjson"), lines(1000)).unwrap();
        let cfg = FileSourceConfig {
            path: "a.ndjson".into(),
            base_dir: dir.path().into(),
        };
        let file = &cfg.list().unwrap()[0];
        let mut r = FileReader::open(file, 0).unwrap();
        let mut all = Vec::new();
        let mut sizes = Vec::new();
        while let Some(b) = r.next_chunk(1 << 20, 64).unwrap() {
            sizes.push(b.records.iter().filter(|&&c| c == b'\n').count());
            all.extend(b.records);
        }
        assert_eq!(String::from_utf8(all).unwrap(), lines(1000));
        assert!(sizes.iter().all(|&n| n <= 64), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 1000);
        assert_eq!(sizes.len(), 1000_usize.div_ceil(64));
    }

    #[test]
    fn compressed_files_and_long_lines() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("{}{{\"long\":\"{}\"}}", lines(10), "x".repeat(1000));
        let mut gz = flate2::write::GzEncoder::new(
            File::create(dir.path().join("b.ndjson.gz")).unwrap(),
            flate2::Compression::fast(),
        );
        gz.write_all(text.as_bytes()).unwrap();
        gz.finish().unwrap();
        std::fs::write(
            dir.path().join("c.ndjson.zst"),
            zstd::encode_all(text.as_bytes(), 3).unwrap(),
        )
        .unwrap();
        let cfg = FileSourceConfig {
            path: dir.path().display().to_string(),
            base_dir: PathBuf::from("/"),
        };
        let files = cfg.list().unwrap();
        assert_eq!(files.len(), 2);
        for f in &files {
            let chunks = read_all(f, 0, 64);
            let all: Vec<u8> = chunks.iter().flat_map(|c| c.records.clone()).collect();
            assert_eq!(String::from_utf8(all).unwrap(), text);
            let resumed = read_all(f, chunks[1].end.bytes(), 64);
            assert_eq!(resumed[0].start.offset, chunks[1].end.bytes());
        }
    }
}
