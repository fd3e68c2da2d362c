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

/// Largest frame a test run returns (XDP test runs take at most a page minus head- and tailroom).
pub const TEST_RUN_MAX_FRAME: usize = 4096;

/// `BPF_PROG_TEST_RUN` of `prog` on `frame` (14 to [`TEST_RUN_MAX_FRAME`] bytes), `repeat` times:
/// shared by this crate's objects and the baseline programs it is measured against.
pub fn test_run(prog: &ProgramMut<'static>, frame: &[u8], repeat: u32) -> Result<TestRun> {
    if frame.len() < 14 || frame.len() > TEST_RUN_MAX_FRAME {
        return Err(Error::Config(format!(
            "a test-run frame is 14..={TEST_RUN_MAX_FRAME} bytes, not {}",
            frame.len()
        )));
    }
    let mut out = vec![0u8; TEST_RUN_MAX_FRAME + 256];
    let input = ProgramInput {
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
