//! `BPF_PROG_TEST_RUN`: a program run once (or `repeat` times) on a frame, and the return codes.

use crate::{bpf, Error, Result};
use libbpf_rs::{ProgramInput, ProgramMut};
use std::time::Duration;

/// One `BPF_PROG_TEST_RUN`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRun {
    /// The program's return value (`XDP_*` / `TC_ACT_*`).
    pub retval: u32,
    /// The frame after the program (the SYN+ACK for `XDP_TX`).
    pub data: Vec<u8>,
    /// Mean run time per repetition, as the kernel measured it.
    pub duration: Duration,
}

/// Largest frame a test run takes and returns. An XDP test run holds at most a page minus head-
/// and tailroom ([`TEST_RUN_MAX_LINEAR`]) in its first buffer; longer frames, up to 64 KiB, reach
/// a `frags` program (the edge) as multi-buffer frames, the rest in page-sized fragments.
pub const TEST_RUN_MAX_FRAME: usize = 65536;

/// Largest first buffer of an XDP test run (a 4 KiB page minus 256 bytes of headroom and the
/// 320 bytes of `struct skb_shared_info`): longer frames are split.
pub const TEST_RUN_MAX_LINEAR: usize = 4096 - 256 - 320;

/// `BPF_PROG_TEST_RUN` of `prog` on `frame` (14 to [`TEST_RUN_MAX_FRAME`] bytes), `repeat` times:
/// shared by this crate's objects and the baseline programs it is measured against.
pub fn test_run(prog: &ProgramMut<'static>, frame: &[u8], repeat: u32) -> Result<TestRun> {
    test_run_ctx(prog, frame, repeat, None)
}

/// `struct xdp_md` as a test run's context: `data_end` is the length of the first buffer, and
/// `ingress_ifindex` the device a live-frames run sends from.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XdpMd {
    /// Offset of the frame's start (0 in a test run).
    pub data: u32,
    /// Length of the first buffer.
    pub data_end: u32,
    /// Offset of the metadata (0: none).
    pub data_meta: u32,
    /// The device the frame arrives on (a live-frames run sends from it).
    pub ingress_ifindex: u32,
    /// Its receive queue.
    pub rx_queue_index: u32,
    /// Egress device (0 in a test run).
    pub egress_ifindex: u32,
}

/// [`test_run`] of an XDP program on a multi-buffer frame whose first buffer holds `first_buffer`
/// bytes (`None`: as the kernel splits it).
pub(crate) fn test_run_ctx(
    prog: &ProgramMut<'static>,
    frame: &[u8],
    repeat: u32,
    first_buffer: Option<usize>,
) -> Result<TestRun> {
    if frame.len() < 14 || frame.len() > TEST_RUN_MAX_FRAME {
        return Err(Error::Config(format!(
            "a test-run frame is 14..={TEST_RUN_MAX_FRAME} bytes, not {}",
            frame.len()
        )));
    }
    let mut ctx = first_buffer.map(|n| XdpMd {
        data_end: n as u32,
        ..XdpMd::default()
    });
    // SAFETY: XdpMd is six u32 fields: plain old data, no padding.
    let ctx_bytes = ctx.as_mut().map(|c| unsafe {
        std::slice::from_raw_parts_mut((c as *mut XdpMd).cast::<u8>(), std::mem::size_of::<XdpMd>())
    });
    // Room for what a program may add to the frame (at most a page of head- and tailroom).
    let mut out = vec![0u8; frame.len() + 4096];
    let input = ProgramInput {
        context_in: ctx_bytes,
        data_in: Some(frame),
        data_out: Some(&mut out),
        repeat,
        ..ProgramInput::default()
    };
    let o = prog.test_run(input).map_err(bpf("BPF_PROG_TEST_RUN"))?;
    let len = o.data.as_ref().map_or(0, |d| d.len());
    let retval = o.return_value;
    let duration = o.duration;
    out.truncate(len);
    Ok(TestRun {
        retval,
        data: out,
        duration,
    })
}

/// XDP return codes.
pub mod xdp_action {
    /// `XDP_ABORTED`.
    pub const ABORTED: u32 = 0;
    /// `XDP_DROP`.
    pub const DROP: u32 = 1;
    /// `XDP_PASS`.
    pub const PASS: u32 = 2;
    /// `XDP_TX`.
    pub const TX: u32 = 3;
}

/// tc return codes.
pub mod tc_action {
    /// `TC_ACT_OK`.
    pub const OK: u32 = 0;
    /// `TC_ACT_SHOT`.
    pub const SHOT: u32 = 2;
}
