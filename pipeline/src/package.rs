//! `tributary package`: the function zip for Lambda's `provided.al2023` runtime — the binary
//! as `bootstrap`, the project's config as `tributary.toml`, its schemas and jobs — after
//! checking that the binary can run there: an ELF for the configured architecture that needs
//! no newer glibc than Amazon Linux 2023 has (2.34). A binary linked on a newer distribution
//! (Debian 12 links `hypot@GLIBC_2.35`) would fail at cold start with a loader error, so it is
//! refused here, before anything is uploaded.

use std::io::Write;
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;

use crate::config::Config;
use crate::error::{Error, Result};

/// The glibc of Amazon Linux 2023, the `provided.al2023` runtime.
pub const AL2023_GLIBC: (u32, u32) = (2, 34);

pub struct PackageOptions {
    /// The Linux binary to ship as `bootstrap`.
    pub binary: PathBuf,
    pub output: PathBuf,
}

/// What went into the zip.
#[derive(Debug)]
pub struct Packaged {
    pub files: Vec<String>,
    pub bytes: u64,
    pub glibc: Option<(u32, u32)>,
}

/// What the binary needs from the machine it runs on.
#[derive(Debug, PartialEq, Eq)]
pub struct BinaryInfo {
    pub architecture: &'static str,
    /// The newest `GLIBC_2.x` symbol version it references; `None` for a static binary.
    pub glibc: Option<(u32, u32)>,
}

/// Reads the ELF header's machine and the newest glibc symbol version referenced.
pub fn inspect(bytes: &[u8]) -> std::result::Result<BinaryInfo, String> {
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        return Err("not an ELF executable (Lambda runs Linux binaries)".into());
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err("not a 64-bit little-endian ELF".into());
    }
    let architecture = match u16::from_le_bytes([bytes[18], bytes[19]]) {
        0x3e => "x86_64",
        0xb7 => "arm64",
        m => return Err(format!("ELF machine {m:#x} is neither x86_64 nor arm64")),
    };
    // The dynamic loader checks the version needs (`.gnu.version_r`): read those, not any
    // "GLIBC_2.x" text that happens to be in the binary's data.
    let glibc = glibc_needed(bytes).map_err(|e| format!("unreadable ELF: {e}"))?;
    Ok(BinaryInfo {
        architecture,
        glibc,
    })
}

/// The newest `GLIBC_2.x` version the binary's version needs name (`None`: it needs none,
/// as a static binary).
fn glibc_needed(bytes: &[u8]) -> object::read::Result<Option<(u32, u32)>> {
    use object::read::elf::{ElfFile64, FileHeader};
    let file = ElfFile64::<object::Endianness>::parse(bytes)?;
    let endian = file.endian();
    let sections = file.elf_header().sections(endian, bytes)?;
    let Some((mut needs, link)) = sections.gnu_verneed(endian, bytes)? else {
        return Ok(None);
    };
    let strings = sections.strings(endian, bytes, link)?;
    let mut newest: Option<(u32, u32)> = None;
    while let Some((_, mut aux)) = needs.next()? {
        while let Some(a) = aux.next()? {
            let version = a
                .name(endian, strings)?
                .strip_prefix(b"GLIBC_2.")
                .and_then(|rest| std::str::from_utf8(rest).ok())
                .and_then(|rest| rest.split('.').next()?.parse::<u32>().ok());
            if let Some(minor) = version
                && newest.is_none_or(|g| (2, minor) > g)
            {
                newest = Some((2, minor));
            }
        }
    }
    Ok(newest)
}

/// Checks the binary, then writes the zip. Entries are sorted and dated 1980-01-01, so the
/// same inputs give the same zip (and CloudFormation sees no change).
pub fn package(config: &Config, opts: &PackageOptions) -> Result<Packaged> {
    if !config.project.lake.contains("://") {
        return Err(Error::Usage(format!(
            "the project's lake is a local folder ({}): a Lambda function has no lasting disk; set [project] lake = \"s3://bucket/prefix\"",
            config.project.lake
        )));
    }
    let binary = std::fs::read(&opts.binary)
        .map_err(|e| Error::io(format!("cannot read {}", opts.binary.display()), e))?;
    let info =
        inspect(&binary).map_err(|e| Error::Usage(format!("{}: {e}", opts.binary.display())))?;
    let want = config.lambda.architecture.as_str();
    if info.architecture != want {
        return Err(Error::Usage(format!(
            "{} is built for {}, but the functions run on {want} ([lambda] architecture); build for {} (cargo lambda build --release{})",
            opts.binary.display(),
            info.architecture,
            if want == "arm64" { "aarch64" } else { "x86_64" },
            if want == "arm64" { " --arm64" } else { "" },
        )));
    }
    if let Some(g) = info.glibc
        && g > AL2023_GLIBC
    {
        return Err(Error::Usage(format!(
            "{} needs glibc {}.{}, but provided.al2023 has {}.{}: it would fail to start on Lambda. Build it against an older glibc: `pip install cargo-lambda` then `cargo lambda build --release --bin tributary` (links for glibc 2.17 with zig) and package target/lambda/tributary/bootstrap, or build for x86_64-unknown-linux-musl",
            opts.binary.display(),
            g.0,
            g.1,
            AL2023_GLIBC.0,
            AL2023_GLIBC.1
        )));
    }
    let mut entries: Vec<(String, PathBuf)> = vec![("tributary.toml".into(), config.path.clone())];
    for dir in [&config.project.schemas_dir, &config.project.jobs_dir] {
        let rel = dir.strip_prefix(&config.dir).map_err(|_| {
            Error::Usage(format!(
                "{} is outside the project folder {}: the function zip holds the project folder only; move it inside",
                dir.display(),
                config.dir.display()
            ))
        })?;
        collect(dir, rel, &mut entries)?;
    }
    entries.sort();
    if let Some(parent) = opts.output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("cannot create {}", parent.display()), e))?;
    }
    let tmp = opts.output.with_extension("zip.partial");
    let file = std::fs::File::create(&tmp)
        .map_err(|e| Error::io(format!("cannot create {}", tmp.display()), e))?;
    let mut zip = zip::ZipWriter::new(file);
    let base = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    let zerr = |e: zip::result::ZipError| Error::Internal(format!("zip: {e}"));
    let werr = |e: std::io::Error| Error::io(format!("cannot write {}", tmp.display()), e);
    // Lambda runs `bootstrap` from the zip as is: it must be executable.
    zip.start_file("bootstrap", base.unix_permissions(0o755))
        .map_err(zerr)?;
    zip.write_all(&binary).map_err(werr)?;
    let mut files = vec!["bootstrap".to_string()];
    for (name, path) in &entries {
        let body = std::fs::read(path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        zip.start_file(name.as_str(), base.unix_permissions(0o644))
            .map_err(zerr)?;
        zip.write_all(&body).map_err(werr)?;
        files.push(name.clone());
    }
    zip.finish().map_err(zerr)?;
    std::fs::rename(&tmp, &opts.output)
        .map_err(|e| Error::io(format!("cannot write {}", opts.output.display()), e))?;
    let bytes = std::fs::metadata(&opts.output)
        .map_err(|e| Error::io(format!("cannot read {}", opts.output.display()), e))?
        .len();
    Ok(Packaged {
        files,
        bytes,
        glibc: info.glibc,
    })
}

/// Every file under `dir`, named by its path under the project (`/`-separated).
fn collect(dir: &Path, rel: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(format!("cannot list {}", dir.display()), e)),
    };
    for entry in read {
        let entry = entry.map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
        let path = entry.path();
        let name = rel.join(entry.file_name());
        if path.is_dir() {
            collect(&path, &name, out)?;
        } else {
            let parts: Vec<String> = name
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push((parts.join("/"), path));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal valid ELF64 header (no sections) followed by `data`.
    fn elf(machine: u16, data: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2; // 64-bit
        b[5] = 1; // little-endian
        b[6] = 1; // ELF version
        b[16..18].copy_from_slice(&2u16.to_le_bytes()); // an executable
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        b[20..24].copy_from_slice(&1u32.to_le_bytes());
        b[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        b[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        b[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn reads_machine_and_the_glibc_versions_the_loader_checks() {
        // Text that looks like a version need, in a binary with none: not a need.
        let b = elf(0x3e, b"\0GLIBC_2.99\0");
        assert_eq!(
            inspect(&b).unwrap(),
            BinaryInfo {
                architecture: "x86_64",
                glibc: None
            }
        );
        let b = elf(0xb7, b"");
        assert_eq!(inspect(&b).unwrap().architecture, "arm64");
        assert!(inspect(b"#!/bin/sh\n").is_err());
        assert!(inspect(&elf(0x28, b"")).is_err());
        // This test binary: linked dynamically against the build machine's glibc.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let info = inspect(&me).unwrap();
        let (major, minor) = info.glibc.unwrap();
        assert_eq!(major, 2);
        assert!(minor >= 17, "{minor}");
    }
}
