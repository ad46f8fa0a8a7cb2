//! Small ordered-candidate helpers shared by the index kinds.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A (distance, slot) pair ordered by distance (total order on floats, ties by slot), so it can
/// live in a `BinaryHeap`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Cand {
    pub(crate) dist: f32,
    pub(crate) slot: u32,
}

impl Eq for Cand {}

impl Ord for Cand {
    fn cmp(&self, other: &Self) -> Ordering {
        self.dist
            .total_cmp(&other.dist)
            .then(self.slot.cmp(&other.slot))
    }
}

impl PartialOrd for Cand {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Keeps the `k` smallest candidates seen.
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Cand>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    /// The distance a new candidate must beat to enter, or +inf while not full.
    #[inline]
    pub(crate) fn bound(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::INFINITY
        } else {
            self.heap.peek().map_or(f32::INFINITY, |c| c.dist)
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, dist: f32, slot: u32) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(Cand { dist, slot });
        } else if dist < self.bound() {
            self.heap.pop();
            self.heap.push(Cand { dist, slot });
        }
    }

    /// The kept candidates, ascending by distance.
    pub(crate) fn into_sorted(self) -> Vec<(u32, f32)> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|c| (c.slot, c.dist))
            .collect()
    }
}
