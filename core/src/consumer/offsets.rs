//! Per-partition offset tracking: records fetched, in flight, completed out
//! of order; the committable offset is the first offset not yet completed.

use std::collections::VecDeque;

use crate::model::Offset;

/// Offsets of one partition within one assignment.
///
/// Records arrive in offset order (possibly with gaps: compaction and
/// transaction markers leave holes). Completion may come in any order. The
/// committable offset is the lowest fetched offset not completed, or one
/// past the last fetched record when everything fetched is complete — so a
/// commit never passes a record that was fetched and not finished.
#[derive(Clone, Debug)]
pub struct OffsetTracker {
    /// Fetched, not yet passed by the committable offset: `(offset, done)`,
    /// ascending. The front is always an incomplete record.
    window: VecDeque<(i64, bool)>,
    /// One past the last fetched offset.
    next: i64,
}

impl OffsetTracker {
    /// A tracker whose consumption starts at `start`.
    pub fn new(start: Offset) -> Self {
        Self {
            window: VecDeque::new(),
            next: start.0,
        }
    }

    /// The next offset expected from a fetch.
    pub fn next_fetch(&self) -> Offset {
        Offset(self.next)
    }

    /// A record was fetched. Offsets below [`next_fetch`](Self::next_fetch)
    /// are duplicates (a re-fetch) and are refused.
    #[must_use]
    pub fn fetched(&mut self, offset: Offset) -> bool {
        if offset.0 < self.next {
            return false;
        }
        self.window.push_back((offset.0, false));
        self.next = offset.0 + 1;
        true
    }

    /// A record finished (processed, or its dead-letter write acknowledged).
    /// Returns false for an offset that is not fetched-and-incomplete.
    #[must_use]
    pub fn complete(&mut self, offset: Offset) -> bool {
        match self.window.front() {
            Some(&(o, _)) if o == offset.0 => {
                self.window.pop_front();
                while self.window.front().is_some_and(|&(_, done)| done) {
                    self.window.pop_front();
                }
                true
            }
            _ => match self.window.binary_search_by_key(&offset.0, |&(o, _)| o) {
                Ok(i) if !self.window[i].1 => {
                    self.window[i].1 = true;
                    true
                }
                _ => false,
            },
        }
    }

    /// The first offset not completed: the highest offset that may be
    /// committed.
    pub fn committable(&self) -> Offset {
        Offset(self.window.front().map_or(self.next, |&(o, _)| o))
    }

    /// Records fetched and not yet passed by the committable offset.
    pub fn outstanding(&self) -> usize {
        self.window.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Op {
        Fetch { gap: u8 },
        Complete { pick: u16 },
        Refetch { back: u8 },
    }

    proptest! {
        /// For any interleaving of fetches (with gaps, and duplicate
        /// re-fetches) and out-of-order completions, the committable offset
        /// is the lowest incomplete fetched offset (or one past the last
        /// fetched), so it never passes an incomplete record, and it never
        /// moves backwards.
        #[test]
        fn committable_is_the_first_incomplete_offset(start in 0i64..1000, ops in proptest::collection::vec(prop_oneof![
            (0u8..3).prop_map(|gap| Op::Fetch { gap }),
            any::<u16>().prop_map(|pick| Op::Complete { pick }),
            (0u8..5).prop_map(|back| Op::Refetch { back }),
        ], 0..300)) {
            let mut t = OffsetTracker::new(Offset(start));
            let mut incomplete = BTreeSet::new();
            let mut next = start;
            let mut last = t.committable();
            for op in ops {
                match op {
                    Op::Fetch { gap } => {
                        let o = next + i64::from(gap);
                        prop_assert!(t.fetched(Offset(o)));
                        incomplete.insert(o);
                        next = o + 1;
                    }
                    Op::Refetch { back } => {
                        prop_assert!(!t.fetched(Offset(next - 1 - i64::from(back))), "duplicate accepted");
                    }
                    Op::Complete { pick } => {
                        if incomplete.is_empty() { continue; }
                        let o = *incomplete.iter().nth(pick as usize % incomplete.len()).unwrap();
                        prop_assert!(t.complete(Offset(o)));
                        prop_assert!(!t.complete(Offset(o)), "completed twice");
                        incomplete.remove(&o);
                    }
                }
                let want = incomplete.first().copied().unwrap_or(next);
                prop_assert_eq!(t.committable(), Offset(want));
                prop_assert!(t.committable() >= last, "moved backwards");
                last = t.committable();
            }
        }
    }

    #[test]
    fn completing_an_unknown_offset_is_refused() {
        let mut t = OffsetTracker::new(Offset(10));
        assert!(t.fetched(Offset(10)));
        assert!(!t.complete(Offset(9)));
        assert!(!t.complete(Offset(11)));
        assert_eq!(t.committable(), Offset(10));
    }
}
