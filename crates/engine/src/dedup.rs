//! Near-duplicate groups: every image's nearest neighbours within a threshold, joined by
//! union-find, so that chains (A~B, B~C) form one group.

use std::collections::HashMap;

use tracing::info_span;
use vecdb::{Metric, SearchRequest};

use crate::{Engine, EngineError, SearchHit};

/// Where the cosine similarity of two images says how they relate, for the default model's
/// GeM embeddings, as measured by `bench/dedup/run.sh` (flowers17, 80 originals, each with an
/// exact copy and five edits): exact copies score 1.0 and no edit scored above 0.993, so at or
/// above `identical` the two look the same; at or above `duplicate` one is an edited copy of the
/// other (a re-encoding, a colour change, a mirror image, a small resize and rotation), with
/// pair precision 0.991 there (recall 0.71: most 70% crops score lower, and no non-duplicate
/// scored above 0.888); `duplicate` is the default threshold of `dedup` (at the former 0.85
/// precision was 0.58). At or above `similar` the two are similar shots: the data set labels no
/// bursts, only the kind of flower, and of the neighbour pairs of different photos scoring
/// between `similar` and `duplicate`, 98% (554 pairs) showed the same kind of flower, against 94%
/// from 0.75 and 86% from 0.60. Below it a neighbour is only related.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct DuplicateBands {
    pub identical: f32,
    pub duplicate: f32,
    pub similar: f32,
}

/// The bands of cosine collections (see [`DuplicateBands`]).
pub const DUPLICATE_BANDS: DuplicateBands = DuplicateBands {
    identical: 0.995,
    duplicate: 0.90,
    similar: 0.78,
};

/// Neighbours examined per image; a group larger than this still forms through chains.
const NEIGHBOURS: usize = 16;
const PAGE: usize = 256;

/// Disjoint sets over dense indices, with path halving and union by size.
struct UnionFind {
    parent: Vec<usize>,
    size: Vec<usize>,
}

impl UnionFind {
    fn new() -> Self {
        UnionFind {
            parent: Vec::new(),
            size: Vec::new(),
        }
    }
    fn add(&mut self) -> usize {
        self.parent.push(self.parent.len());
        self.size.push(1);
        self.parent.len() - 1
    }
    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }
    fn union(&mut self, a: usize, b: usize) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a] < self.size[b] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b] = a;
        self.size[a] += self.size[b];
    }
}

impl Engine {
    /// Groups of near-duplicate images, largest first. `min_score` is the minimum similarity
    /// under cosine and inner product, and the maximum distance under L2. Each hit's score is its
    /// best link to another member of its group; members are in ascending id order.
    pub fn dedup(&self, min_score: f32) -> Result<Vec<Vec<SearchHit>>, EngineError> {
        self.ready()?;
        if !min_score.is_finite() {
            return Err(EngineError::invalid(
                "dedup threshold must be a finite number",
            ));
        }
        let _span = info_span!("dedup", min_score).entered();
        let name = &self.collection.name;
        let better = |a: f32, b: f32| match self.collection.metric {
            Metric::L2 => a < b,
            _ => a > b,
        };
        let mut uf = UnionFind::new();
        let mut index: HashMap<u64, usize> = HashMap::new();
        let mut best: HashMap<u64, (f32, serde_json::Value)> = HashMap::new();
        let mut slot = |id: u64, uf: &mut UnionFind| *index.entry(id).or_insert_with(|| uf.add());
        let req = SearchRequest {
            k: NEIGHBOURS + 1,
            threshold: Some(min_score),
            ..SearchRequest::default()
        };
        let mut after = None;
        loop {
            let page = self.store.scan(name, after, PAGE)?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for p in &page {
                for h in self.store.search(name, &p.vector, &req)? {
                    if h.id == p.id {
                        continue;
                    }
                    let (a, b) = (slot(p.id, &mut uf), slot(h.id, &mut uf));
                    uf.union(a, b);
                    for (id, meta) in [(p.id, &p.metadata), (h.id, &h.metadata)] {
                        let e = best.entry(id).or_insert((h.score, meta.clone()));
                        if better(h.score, e.0) {
                            e.0 = h.score;
                        }
                    }
                }
            }
        }
        let mut groups: HashMap<usize, Vec<SearchHit>> = HashMap::new();
        let mut ids: Vec<(u64, usize)> = index.into_iter().collect();
        ids.sort_unstable();
        for (id, i) in ids {
            let (score, metadata) = best.remove(&id).expect("every linked id has a best score");
            let path = metadata["path"].as_str().unwrap_or_default().into();
            let root = uf.find(i);
            groups.entry(root).or_default().push(SearchHit {
                id,
                path,
                score,
                metadata,
            });
        }
        let mut out: Vec<Vec<SearchHit>> = groups.into_values().collect();
        out.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].id.cmp(&b[0].id)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::UnionFind;

    #[test]
    fn union_find_joins_chains() {
        let mut uf = UnionFind::new();
        let v: Vec<usize> = (0..5).map(|_| uf.add()).collect();
        uf.union(v[0], v[1]);
        uf.union(v[1], v[2]);
        uf.union(v[3], v[4]);
        assert_eq!(uf.find(v[0]), uf.find(v[2]));
        assert_ne!(uf.find(v[0]), uf.find(v[3]));
        assert_eq!(uf.find(v[3]), uf.find(v[4]));
    }
}
