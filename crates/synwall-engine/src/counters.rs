//! The per-CPU counters, generated from `bpf/lib/counters.def` so the Rust engine and the BPF
//! programs share names and indexes.

include!(concat!(env!("OUT_DIR"), "/counters_gen.rs"));

/// A set of counter values, indexed by [`Counter`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counters([u64; Counter::COUNT]);

impl Default for Counters {
    fn default() -> Self {
        Counters([0; Counter::COUNT])
    }
}

impl Counters {
    /// Count one.
    #[inline]
    pub fn inc(&mut self, c: Counter) {
        self.0[c as usize] += 1;
    }
    /// A counter's value.
    pub fn get(&self, c: Counter) -> u64 {
        self.0[c as usize]
    }
    /// Set a value (e.g. a sum read from a per-CPU map).
    pub fn set(&mut self, c: Counter, v: u64) {
        self.0[c as usize] = v;
    }
    /// Every counter with its value, in index order.
    pub fn iter(&self) -> impl Iterator<Item = (Counter, u64)> + '_ {
        Counter::ALL.iter().map(|&c| (c, self.0[c as usize]))
    }
    /// The sum of all counters (every frame increments exactly one on each hook).
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}
