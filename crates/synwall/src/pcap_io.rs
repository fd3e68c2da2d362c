//! Reading captures (pcap and pcapng, Ethernet link type) and writing classic pcap.

use anyhow::{bail, Context, Result};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::DataLink;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter};
use std::path::Path;
use std::time::Duration;

/// Call `f(timestamp, frame)` for every packet of a pcap or pcapng file, in order. Only Ethernet
/// captures are accepted (synwall sees Ethernet frames); anything else is a clear error.
pub fn for_each_frame(path: &Path, mut f: impl FnMut(Duration, &[u8]) -> Result<()>) -> Result<()> {
    let file =
        File::open(path).with_context(|| format!("cannot open capture {}", path.display()))?;
    // The magic from the buffer, without consuming it: both readers parse from the start.
    let mut reader = BufReader::new(file);
    let head = reader
        .fill_buf()
        .with_context(|| format!("cannot read capture {}", path.display()))?;
    if head.len() < 4 {
        bail!("{}: too short to be a capture", path.display());
    }
    if head[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
        let mut r = PcapNgReader::new(reader)
            .with_context(|| format!("{}: bad pcapng header", path.display()))?;
        let mut links: Vec<DataLink> = Vec::new();
        while let Some(block) = r.next_block() {
            let block = block.with_context(|| format!("{}: bad pcapng block", path.display()))?;
            match block {
                Block::SectionHeader(_) => links.clear(),
                Block::InterfaceDescription(idb) => links.push(idb.linktype),
                Block::EnhancedPacket(p) => {
                    let link = links.get(p.interface_id as usize).copied();
                    check_link(path, link)?;
                    f(p.timestamp, &p.data)?;
                }
                Block::SimplePacket(p) => {
                    check_link(path, links.first().copied())?;
                    f(Duration::ZERO, &p.data)?;
                }
                _ => {}
            }
        }
    } else {
        let mut r = PcapReader::new(reader)
            .with_context(|| format!("{}: not a pcap or pcapng file", path.display()))?;
        check_link(path, Some(r.header().datalink))?;
        while let Some(p) = r.next_packet() {
            let p = p.with_context(|| format!("{}: bad pcap record", path.display()))?;
            f(p.timestamp, &p.data)?;
        }
    }
    Ok(())
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

/// A classic pcap writer for Ethernet frames.
pub struct Writer(PcapWriter<BufWriter<File>>);

impl Writer {
    /// Create (truncate) `path`.
    pub fn create(path: &Path) -> Result<Self> {
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            snaplen: 65535,
            ..PcapHeader::default()
        };
        Ok(Writer(PcapWriter::with_header(
            BufWriter::new(file),
            header,
        )?))
    }

    /// Append one frame.
    pub fn write(&mut self, ts: Duration, frame: &[u8]) -> Result<()> {
        self.0
            .write_packet(&PcapPacket::new(ts, frame.len() as u32, frame))?;
        Ok(())
    }
}
