//! Reading captures (pcap and pcapng, Ethernet link type) and writing classic pcap.
//!
//! An input is opened (and its header parsed) before any output exists; an output is written
//! beside its final name and moved over it only when the run succeeded, so a failing run leaves
//! whatever the user had under that name untouched.

use anyhow::{bail, Context, Result};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::{DataLink, PcapError};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// An open capture whose header parsed.
pub struct Capture {
    path: PathBuf,
    /// Device and inode of the file, to refuse writing the output over it.
    id: (u64, u64),
    reader: Reader,
}

enum Reader {
    Pcap(PcapReader<BufReader<File>>),
    PcapNg(PcapNgReader<BufReader<File>>),
}

/// What reading a whole capture found besides its frames.
#[derive(Debug, Default)]
pub struct ReadSummary {
    /// Frames handed to the callback.
    pub frames: u64,
    /// Things the user should know (a truncated file), one sentence each.
    pub warnings: Vec<String>,
}

/// One pcapng interface: what its packets need to be read.
#[derive(Clone, Copy)]
struct Interface {
    link: DataLink,
    /// `if_tsresol`: the unit of its timestamps (default 10^-6 s).
    tsresol: u8,
    /// `if_tsoffset`: seconds added to its timestamps.
    tsoffset: i64,
}

impl Capture {
    /// Open `path` and parse its header. Only Ethernet captures are accepted later, per packet
    /// (a pcapng file may describe several interfaces).
    pub fn open(path: &Path) -> Result<Capture> {
        let file =
            File::open(path).with_context(|| format!("cannot open capture {}", path.display()))?;
        let meta = file
            .metadata()
            .with_context(|| format!("cannot read capture {}", path.display()))?;
        // The magic from the buffer, without consuming it: both readers parse from the start.
        let mut buffered = BufReader::new(file);
        let head = buffered
            .fill_buf()
            .with_context(|| format!("cannot read capture {}", path.display()))?;
        if head.len() < 4 {
            bail!("{}: too short to be a capture", path.display());
        }
        let reader = if head[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
            Reader::PcapNg(
                PcapNgReader::new(buffered)
                    .with_context(|| format!("{}: bad pcapng header", path.display()))?,
            )
        } else {
            let r = PcapReader::new(buffered)
                .with_context(|| format!("{}: not a pcap or pcapng file", path.display()))?;
            check_link(path, Some(r.header().datalink))?;
            Reader::Pcap(r)
        };
        Ok(Capture {
            path: path.to_path_buf(),
            id: (meta.dev(), meta.ino()),
            reader,
        })
    }

    /// Call `f(timestamp, frame)` for every packet, in order. A file that ends inside a record
    /// (a capture cut short) is not an error: the complete records before the cut are read and
    /// the summary says where it ended.
    pub fn for_each_frame(
        self,
        mut f: impl FnMut(Duration, &[u8]) -> Result<()>,
    ) -> Result<ReadSummary> {
        let path = self.path;
        let mut sum = ReadSummary::default();
        let cut = |sum: &ReadSummary, what: &str| {
            format!(
                "{}: the file ends inside {what} {} (the capture was cut short); the {} complete \
                 packets before it were read",
                path.display(),
                sum.frames + 1,
                sum.frames
            )
        };
        match self.reader {
            Reader::Pcap(mut r) => {
                while let Some(p) = r.next_packet() {
                    let p = match p {
                        Ok(p) => p,
                        Err(e) if is_cut(&e) => {
                            sum.warnings.push(cut(&sum, "record"));
                            break;
                        }
                        Err(e) => {
                            return Err(e)
                                .with_context(|| format!("{}: bad pcap record", path.display()))
                        }
                    };
                    f(p.timestamp, &p.data)?;
                    sum.frames += 1;
                }
            }
            Reader::PcapNg(mut r) => {
                let mut ifaces: Vec<Interface> = Vec::new();
                while let Some(block) = r.next_block() {
                    let block = match block {
                        Ok(b) => b,
                        Err(e) if is_cut(&e) => {
                            sum.warnings.push(cut(&sum, "the block of packet"));
                            break;
                        }
                        Err(e) => {
                            return Err(e)
                                .with_context(|| format!("{}: bad pcapng block", path.display()))
                        }
                    };
                    match block {
                        Block::SectionHeader(_) => ifaces.clear(),
                        Block::InterfaceDescription(idb) => {
                            let mut i = Interface {
                                link: idb.linktype,
                                tsresol: 6,
                                tsoffset: 0,
                            };
                            for o in &idb.options {
                                match o {
                                    InterfaceDescriptionOption::IfTsResol(r) => i.tsresol = *r,
                                    // The option is a signed 64-bit number of seconds.
                                    InterfaceDescriptionOption::IfTsOffset(s) => {
                                        i.tsoffset = *s as i64
                                    }
                                    _ => {}
                                }
                            }
                            ifaces.push(i);
                        }
                        Block::EnhancedPacket(p) => {
                            let i = ifaces.get(p.interface_id as usize).copied();
                            check_link(&path, i.map(|i| i.link))?;
                            let i = i.expect("checked above");
                            // pcap-file hands the raw 64-bit timestamp over as nanoseconds,
                            // whatever the interface's unit: scale it ourselves.
                            let raw = p.timestamp.as_nanos() as u64;
                            f(pcapng_time(raw, i.tsresol, i.tsoffset), &p.data)?;
                            sum.frames += 1;
                        }
                        Block::SimplePacket(p) => {
                            check_link(&path, ifaces.first().map(|i| i.link))?;
                            f(Duration::ZERO, &p.data)?;
                            sum.frames += 1;
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(sum)
    }
}

/// The reader ran out of bytes inside a record or block.
fn is_cut(e: &PcapError) -> bool {
    matches!(e, PcapError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof)
        || matches!(e, PcapError::IncompleteBuffer)
}

/// A pcapng timestamp: `raw` units of `if_tsresol` (bit 7 clear: 10^-n s, set: 2^-n s) since the
/// Unix epoch, plus `if_tsoffset` seconds.
fn pcapng_time(raw: u64, tsresol: u8, tsoffset: i64) -> Duration {
    let n = u32::from(tsresol & 0x7f);
    let per_second: Option<u128> = if tsresol & 0x80 == 0 {
        10u128.checked_pow(n)
    } else {
        1u128.checked_shl(n)
    };
    let t = match per_second {
        Some(ps) => {
            let raw = u128::from(raw);
            let secs = (raw / ps) as u64;
            let nanos = ((raw % ps) * 1_000_000_000 / ps) as u32;
            Duration::new(secs, nanos)
        }
        // A unit so small that no 64-bit count reaches a second.
        None => Duration::ZERO,
    };
    if tsoffset >= 0 {
        t.saturating_add(Duration::from_secs(tsoffset as u64))
    } else {
        t.saturating_sub(Duration::from_secs(tsoffset.unsigned_abs()))
    }
}

fn check_link(path: &Path, link: Option<DataLink>) -> Result<()> {
    match link {
        Some(DataLink::ETHERNET) => Ok(()),
        Some(other) => bail!(
            "{}: link type {other:?} is not Ethernet (capture on the interface itself, not `any`)",
            path.display()
        ),
        None => bail!(
            "{}: packet refers to an interface the capture does not describe",
            path.display()
        ),
    }
}

/// Call `f(timestamp, frame)` for every packet of a pcap or pcapng file (see
/// [`Capture::for_each_frame`]).
pub fn for_each_frame(
    path: &Path,
    f: impl FnMut(Duration, &[u8]) -> Result<()>,
) -> Result<ReadSummary> {
    Capture::open(path)?.for_each_frame(f)
}

/// A classic pcap writer for Ethernet frames. A regular file is written under a temporary name
/// in the same directory and renamed over `path` by [`Writer::finish`]; dropped unfinished, it
/// removes the temporary file and `path` is as it was.
pub struct Writer {
    pcap: Option<PcapWriter<BufWriter<File>>>,
    /// The temporary file and the name it gets on success (`None`: writing straight into a
    /// device or pipe).
    rename: Option<(PathBuf, PathBuf)>,
}

impl Writer {
    /// Prepare to write `path`, which must not be the capture being read (by any name: the same
    /// file through a symbolic or hard link is refused too).
    pub fn create(path: &Path, input: &Capture) -> Result<Self> {
        let existing = std::fs::metadata(path).ok();
        if let Some(m) = &existing {
            if (m.dev(), m.ino()) == input.id {
                bail!(
                    "--out {} is the input capture {} (the same file): writing it would destroy \
                     the input; choose another output file",
                    path.display(),
                    input.path.display()
                );
            }
        }
        let (file, rename) = match &existing {
            // A device or a pipe (e.g. /dev/stdout): there is nothing to replace.
            Some(m) if !m.is_file() => (
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .with_context(|| format!("cannot open {}", path.display()))?,
                None,
            ),
            _ => {
                // Through a symbolic link, the file it points to is the one replaced.
                let target = match &existing {
                    Some(_) => std::fs::canonicalize(path)
                        .with_context(|| format!("cannot resolve {}", path.display()))?,
                    None => path.to_path_buf(),
                };
                let name = target
                    .file_name()
                    .with_context(|| format!("--out {} names no file", path.display()))?;
                let tmp = target.with_file_name(format!(
                    ".{}.synwall-{}.tmp",
                    name.to_string_lossy(),
                    std::process::id()
                ));
                // 0666 less the umask, as a plain create would; an existing file keeps its mode.
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o666)
                    .open(&tmp)
                    .with_context(|| format!("cannot create {}", tmp.display()))?;
                if let Some(m) = &existing {
                    let _ = file.set_permissions(std::fs::Permissions::from_mode(m.mode()));
                }
                (file, Some((tmp, target)))
            }
        };
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            snaplen: 65535,
            ..PcapHeader::default()
        };
        // The writer owns the temporary file first, so that a failure below removes it.
        let mut w = Writer { pcap: None, rename };
        w.pcap = Some(PcapWriter::with_header(BufWriter::new(file), header)?);
        Ok(w)
    }

    /// Append one frame.
    pub fn write(&mut self, ts: Duration, frame: &[u8]) -> Result<()> {
        self.pcap
            .as_mut()
            .expect("a writer is open until finished")
            .write_packet(&PcapPacket::new(ts, frame.len() as u32, frame))?;
        Ok(())
    }

    /// Flush and move the output into place.
    pub fn finish(mut self) -> Result<()> {
        let pcap = self.pcap.take().expect("finished once");
        let mut buf = pcap.into_writer();
        buf.flush().context("cannot write the output capture")?;
        drop(buf);
        if let Some((tmp, target)) = self.rename.take() {
            if let Err(e) = std::fs::rename(&tmp, &target) {
                let _ = std::fs::remove_file(&tmp);
                return Err(e).with_context(|| format!("cannot write {}", target.display()));
            }
        }
        Ok(())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some((tmp, _)) = &self.rename {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcapng_time_units() {
        // Microseconds (the default), nanoseconds, 2^-10 s, and an offset.
        let us = 1_795_315_429_690_123u64;
        assert_eq!(
            pcapng_time(us, 6, 0),
            Duration::new(1_795_315_429, 690_123_000)
        );
        assert_eq!(
            pcapng_time(us * 1000 + 7, 9, 0),
            Duration::new(1_795_315_429, 690_123_007)
        );
        assert_eq!(
            pcapng_time(3 * 1024 + 512, 0x80 | 10, 0),
            Duration::new(3, 500_000_000)
        );
        assert_eq!(pcapng_time(5_000_000, 6, 100), Duration::from_secs(105));
        assert_eq!(pcapng_time(5_000_000, 6, -2), Duration::from_secs(3));
        assert_eq!(pcapng_time(5, 6, -2), Duration::ZERO);
        // Units too fine to reach a second with 64 bits.
        assert_eq!(pcapng_time(u64::MAX, 127, 0), Duration::ZERO);
        assert_eq!(pcapng_time(u64::MAX, 0x80 | 127, 0), Duration::ZERO);
    }
}
