//! MSS tables: the 8 (or 4) MSS values a cookie's index can name.

/// An ascending table of MSS values; a cookie stores an index into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MssTable<const N: usize>([u16; N]);

/// Why a table was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MssTableError {
    /// Entries must be strictly ascending (an index must name one value).
    NotAscending {
        /// Position of the first entry not above its predecessor.
        index: usize,
    },
    /// An MSS below 88 cannot carry a TCP segment over IPv4 with options (RFC 6691 minimum is 88 for
    /// 20-byte headers with 40 bytes of options); 0 is never valid.
    TooSmall {
        /// Position of the offending entry.
        index: usize,
    },
}

impl core::fmt::Display for MssTableError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MssTableError::NotAscending { index } => write!(
                f,
                "MSS table entry {index} is not greater than the one before it (entries must be strictly ascending)"
            ),
            MssTableError::TooSmall { index } => {
                write!(f, "MSS table entry {index} is below 88, the smallest usable MSS")
            }
        }
    }
}

impl<const N: usize> MssTable<N> {
    /// A table from strictly ascending entries.
    pub const fn new(entries: [u16; N]) -> Result<Self, MssTableError> {
        let mut i = 0;
        while i < N {
            if entries[i] < 88 {
                return Err(MssTableError::TooSmall { index: i });
            }
            if i > 0 && entries[i] <= entries[i - 1] {
                return Err(MssTableError::NotAscending { index: i });
            }
            i += 1;
        }
        Ok(MssTable(entries))
    }

    /// A table taken as given, without checks (for upstream tables that are known good).
    pub(crate) const fn new_unchecked(entries: [u16; N]) -> Self {
        MssTable(entries)
    }

    /// The entries.
    pub const fn entries(&self) -> &[u16; N] {
        &self.0
    }

    /// The value at `index` (which must be below N; cookie fields are masked to fit).
    #[inline]
    pub fn value(&self, index: usize) -> u16 {
        self.0[index]
    }

    /// The largest `i` with `table[i] <= mss`; 0 when there is no MSS or it is below `table[0]`.
    #[inline(always)]
    pub fn index_at_or_below(&self, mss: Option<u16>) -> usize {
        let Some(mss) = mss else { return 0 };
        let mut i = N - 1;
        while i > 0 && self.0[i] > mss {
            i -= 1;
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_tables() {
        assert_eq!(
            MssTable::new([536, 536, 1400]),
            Err(MssTableError::NotAscending { index: 1 })
        );
        assert_eq!(
            MssTable::new([0, 536]),
            Err(MssTableError::TooSmall { index: 0 })
        );
    }

    #[test]
    fn rounds_down() {
        let t = MssTable::new([536, 1200, 1460]).unwrap();
        assert_eq!(t.index_at_or_below(None), 0);
        assert_eq!(t.index_at_or_below(Some(100)), 0);
        assert_eq!(t.index_at_or_below(Some(1199)), 0);
        assert_eq!(t.index_at_or_below(Some(1200)), 1);
        assert_eq!(t.index_at_or_below(Some(65535)), 2);
    }
}
