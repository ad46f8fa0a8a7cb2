//! Queries by example: one or more images the results should look like (positives), and
//! optionally some they should not (negatives). Every image query goes through here; a query by
//! one image is the case of one positive.
//!
//! Two strategies, as Qdrant's recommend API names them:
//! - `average`: one search with the vector `2 * mean(positives) - mean(negatives)` (with no
//!   negatives, the mean of the positives), under cosine each example normalised first so that
//!   each counts the same. Scores are the metric's scores against that vector, so `threshold`
//!   means what it means for a single image. It is one index search: the fastest strategy.
//! - `best_score`: each candidate scores by its most similar example: when that is a positive,
//!   `sigmoid(best positive similarity)` in (0, 1); when a negative is as similar or more,
//!   `-sigmoid(best negative similarity)` in (-1, 0), with `sigmoid(x) = (x / (1 + |x|) + 1) / 2`
//!   and the similarity being the metric's score (minus the distance under L2). It keeps
//!   several distinct looks apart instead of blending them. The candidates are the union of
//!   each positive's nearest neighbours, oversampled so that negatives can push some out; the
//!   scores of the candidates are exact.
//!
//! Examples given by id are left out of the results; images given as files or bytes are not
//! (an indexed file searched with finds itself first, as it should).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tracing::debug;
use vecdb::{Hit, Metric, SearchRequest};

use crate::ranking::SearchInput;
use crate::store::StoreError;
use crate::{Engine, EngineError, Query, SearchHit, MAX_K};

/// The most examples (positives and negatives together) one query may give: each one given as
/// an image is decoded and embedded, so the cost of a query grows with them.
pub const MAX_EXAMPLES: usize = 16;

/// One example image of a query.
#[derive(Clone, Debug)]
pub enum Example {
    /// An encoded image (an upload); it is not stored.
    Bytes(Vec<u8>),
    /// An image file on disk, indexed or not.
    File(PathBuf),
    /// An indexed image, by id; it is left out of the results.
    Id(u64),
}

/// How several examples combine into one ranking (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// One search with the mean of the positives pushed away from the mean of the negatives.
    #[default]
    Average,
    /// Each candidate scored by its most similar example, positive or negative.
    BestScore,
}

impl FromStr for Strategy {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, EngineError> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "average" | "average_vector" => Ok(Strategy::Average),
            "best_score" => Ok(Strategy::BestScore),
            other => Err(EngineError::invalid(format!(
                "strategy {other:?} is not one of average, best_score"
            ))),
        }
    }
}

/// The examples of a query.
#[derive(Clone, Debug, Default)]
pub struct Examples {
    /// Images the results should look like; at least one.
    pub positive: Vec<Example>,
    /// Images the results should not look like.
    pub negative: Vec<Example>,
    pub strategy: Strategy,
}

impl Examples {
    /// A query by one image.
    pub fn one(example: Example) -> Examples {
        Examples {
            positive: vec![example],
            ..Examples::default()
        }
    }

    fn check(&self) -> Result<(), EngineError> {
        if self.positive.is_empty() {
            return Err(EngineError::invalid(
                "give at least one positive example (an image or an indexed image's id)",
            ));
        }
        let n = self.positive.len() + self.negative.len();
        if n > MAX_EXAMPLES {
            return Err(EngineError::invalid(format!(
                "{n} examples given, at most {MAX_EXAMPLES} are allowed"
            )));
        }
        Ok(())
    }

    /// Ids of the examples given by id, which the results leave out.
    fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = (self.positive.iter().chain(&self.negative))
            .filter_map(|e| match e {
                Example::Id(id) => Some(*id),
                _ => None,
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

impl Engine {
    /// Images like the positive examples and unlike the negative ones (see the module
    /// documentation): the first page of [`Engine::search`].
    pub fn search_examples(
        &self,
        examples: &Examples,
        q: &Query,
    ) -> Result<Vec<SearchHit>, EngineError> {
        Ok(self.search(SearchInput::Examples(examples), q)?.hits)
    }

    /// The best `want` hits for the examples, best first.
    pub(crate) fn rank_examples(
        &self,
        examples: &Examples,
        q: &Query,
        want: usize,
    ) -> Result<Vec<SearchHit>, EngineError> {
        examples.check()?;
        let positive = self.example_vectors(&examples.positive)?;
        let negative = self.example_vectors(&examples.negative)?;
        let exclude = examples.ids();
        let hits = match examples.strategy {
            Strategy::Average => {
                let v = average_vector(self.collection.metric, &positive, &negative)?;
                self.search_vector(&v, q, want, &exclude)?
            }
            Strategy::BestScore => {
                self.search_best_score(&positive, &negative, q, want, &exclude)?
            }
        };
        debug!(hits = hits.len(), strategy = ?examples.strategy, "search by examples");
        Ok(hits)
    }

    /// Images similar to an uploaded image (not stored).
    pub fn search_bytes(&self, bytes: &[u8], q: &Query) -> Result<Vec<SearchHit>, EngineError> {
        self.search_examples(&Examples::one(Example::Bytes(bytes.to_vec())), q)
    }

    /// Images similar to any image file on disk (indexed or not).
    pub fn search_path(&self, path: &Path, q: &Query) -> Result<Vec<SearchHit>, EngineError> {
        self.search_examples(&Examples::one(Example::File(path.to_path_buf())), q)
    }

    /// Images similar to an indexed image, which is left out of the results.
    pub fn search_id(&self, id: u64, q: &Query) -> Result<Vec<SearchHit>, EngineError> {
        self.search_examples(&Examples::one(Example::Id(id)), q)
    }

    /// The vectors of the examples, in order: decoded and embedded, or read from the store.
    fn example_vectors(&self, examples: &[Example]) -> Result<Vec<Vec<f32>>, EngineError> {
        let min_side = self.encoder.embedder().preprocessor().min_source_side();
        let limits = &self.config.limits;
        examples
            .iter()
            .map(|e| match e {
                Example::Bytes(bytes) => {
                    let img = embed::decode_bytes_scaled(bytes, "query", limits, min_side)?;
                    Ok(self.encoder.embed(&img)?.vector)
                }
                Example::File(path) => {
                    if !path.exists() {
                        return Err(EngineError::NotFound {
                            what: format!("file {}", path.display()),
                        });
                    }
                    let (img, _) = embed::decode_file_scaled(path, limits, min_side)?;
                    Ok(self.encoder.embed(&img)?.vector)
                }
                Example::Id(id) => {
                    let point = self.store.get(&self.collection.name, &[*id])?.pop();
                    Ok(point.ok_or(EngineError::ImageNotFound { id: *id })?.vector)
                }
            })
            .collect()
    }

    /// The `k` nearest images to a query vector, leaving some ids out.
    fn search_vector(
        &self,
        vector: &[f32],
        q: &Query,
        k: usize,
        exclude: &[u64],
    ) -> Result<Vec<SearchHit>, EngineError> {
        let req = SearchRequest {
            k: k + exclude.len(),
            filter: q.filter.clone(),
            threshold: q.threshold,
            ..SearchRequest::default()
        };
        let hits = self.store.search(&self.collection.name, vector, &req)?;
        let mut out: Vec<SearchHit> = hits
            .into_iter()
            .filter(|h| !exclude.contains(&h.id))
            .map(to_search_hit)
            .collect();
        out.truncate(k);
        Ok(out)
    }

    /// The `best_score` strategy: candidates from each positive's neighbours, scored exactly;
    /// the best `k`.
    fn search_best_score(
        &self,
        positive: &[Vec<f32>],
        negative: &[Vec<f32>],
        q: &Query,
        k: usize,
        exclude: &[u64],
    ) -> Result<Vec<SearchHit>, EngineError> {
        let metric = self.collection.metric;
        // The best k by best positive similarity are among the union of each positive's k
        // nearest; the oversampling leaves room for negatives to push some of those out.
        let req = SearchRequest {
            k: candidates_per_positive(k, negative.len()) + exclude.len(),
            filter: q.filter.clone(),
            ..SearchRequest::default()
        };
        let mut candidates: HashMap<u64, Hit> = HashMap::new();
        for p in positive {
            for hit in self.store.search(&self.collection.name, p, &req)? {
                candidates.entry(hit.id).or_insert(hit);
            }
        }
        candidates.retain(|id, _| !exclude.contains(id));
        let ids: Vec<u64> = candidates.keys().copied().collect();
        let mut scored: Vec<SearchHit> = Vec::with_capacity(ids.len());
        for point in self.store.get(&self.collection.name, &ids)? {
            let score = best_score(metric, &point.vector, positive, negative);
            if q.threshold.is_some_and(|t| score < t) {
                continue;
            }
            if let Some(hit) = candidates.remove(&point.id) {
                scored.push(to_search_hit(Hit { score, ..hit }));
            }
        }
        scored.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
        scored.truncate(k);
        Ok(scored)
    }

    pub(crate) fn check_query(&self, q: &Query) -> Result<(), EngineError> {
        self.ready()?;
        vecdb::search::check_k("k", q.k, MAX_K).map_err(StoreError::from)?;
        vecdb::search::check_threshold(q.threshold).map_err(StoreError::from)?;
        Ok(())
    }
}

/// Candidates gathered around each positive for `best_score`: four times k, at least 40, and k
/// more for every negative.
fn candidates_per_positive(k: usize, negatives: usize) -> usize {
    (4 * k).max(40) + k * negatives
}

/// `2 * mean(positives) - mean(negatives)`, or the mean of the positives without negatives;
/// under cosine each example normalised first.
fn average_vector(
    metric: Metric,
    positive: &[Vec<f32>],
    negative: &[Vec<f32>],
) -> Result<Vec<f32>, EngineError> {
    let mut v = mean(metric, positive);
    if !negative.is_empty() {
        let neg = mean(metric, negative);
        for (x, n) in v.iter_mut().zip(neg) {
            *x = 2.0 * *x - n;
        }
    }
    // Under cosine the examples are unit vectors, so a result this short is rounding noise
    // around zero, and no direction is left to search in.
    if metric == Metric::Cosine && vecdb::distance::norm(&v) < 1e-5 {
        return Err(EngineError::invalid(
            "the positive and negative examples cancel out: nothing is left to search with",
        ));
    }
    Ok(v)
}

fn mean(metric: Metric, vectors: &[Vec<f32>]) -> Vec<f32> {
    let dim = vectors.first().map_or(0, Vec::len);
    let mut sum = vec![0f64; dim];
    for v in vectors {
        let scale = match metric {
            Metric::Cosine => {
                let n = vecdb::distance::norm(v);
                if n > 0.0 {
                    1.0 / f64::from(n)
                } else {
                    0.0
                }
            }
            Metric::L2 | Metric::Ip => 1.0,
        };
        for (s, &x) in sum.iter_mut().zip(v) {
            *s += f64::from(x) * scale;
        }
    }
    let n = vectors.len().max(1) as f64;
    sum.into_iter().map(|s| (s / n) as f32).collect()
}

/// Qdrant's `best_score` (see the module documentation).
fn best_score(metric: Metric, v: &[f32], positive: &[Vec<f32>], negative: &[Vec<f32>]) -> f32 {
    let best = |examples: &[Vec<f32>]| {
        examples
            .iter()
            .map(|e| metric.similarity(metric.score(e, v)))
            .fold(f32::NEG_INFINITY, f32::max)
    };
    let (pos, neg) = (best(positive), best(negative));
    if pos > neg {
        scaled_sigmoid(pos)
    } else {
        -scaled_sigmoid(neg)
    }
}

/// `(x / (1 + |x|) + 1) / 2`: monotonic, from (-inf, inf) onto (0, 1).
fn scaled_sigmoid(x: f32) -> f32 {
    0.5 * (x / (1.0 + x.abs()) + 1.0)
}

pub(crate) fn to_search_hit(h: Hit) -> SearchHit {
    let path = h.metadata["path"]
        .as_str()
        .map(PathBuf::from)
        .unwrap_or_default();
    SearchHit {
        id: h.id,
        path,
        score: h.score,
        metadata: h.metadata,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_pushes_away_from_negatives() {
        let pos = vec![vec![1.0, 0.0], vec![0.0, 2.0]];
        // Under cosine each positive counts the same whatever its length.
        assert_eq!(
            average_vector(Metric::Cosine, &pos, &[]).unwrap(),
            [0.5, 0.5]
        );
        assert_eq!(average_vector(Metric::L2, &pos, &[]).unwrap(), [0.5, 1.0]);
        let v = average_vector(Metric::Ip, &pos, &[vec![1.0, 1.0]]).unwrap();
        assert_eq!(v, [0.0, 1.0]);
        let opposite = vec![vec![3.0, 4.0], vec![-0.6, -0.8]];
        let err = average_vector(Metric::Cosine, &opposite, &[]);
        assert!(matches!(err, Err(EngineError::InvalidInput { .. })));
    }

    #[test]
    fn best_score_follows_the_closest_example() {
        let pos = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        let neg = vec![vec![-1.0, 0.0]];
        let m = Metric::Cosine;
        let near_second = best_score(m, &[0.1, 1.0], &pos, &neg);
        let between = best_score(m, &[1.0, 1.0], &pos, &neg);
        let near_negative = best_score(m, &[-1.0, 0.2], &pos, &neg);
        let on_negative = best_score(m, &[-1.0, 0.0], &pos, &neg);
        assert!(
            near_second > between && between > 0.5,
            "{near_second} {between}"
        );
        assert!(near_negative < 0.0 && on_negative < near_negative);
        // L2: smaller distances are more similar, and the scores keep that order.
        let close = best_score(Metric::L2, &[0.9, 0.0], &pos, &neg);
        let far = best_score(Metric::L2, &[0.5, 0.0], &pos, &neg);
        assert!(close > far && far > 0.0, "{close} {far}");
        assert!(scaled_sigmoid(0.0) == 0.5 && scaled_sigmoid(1e30) <= 1.0);
    }

    #[test]
    fn strategies_parse_and_examples_are_bounded() {
        assert_eq!(
            "best-score".parse::<Strategy>().unwrap(),
            Strategy::BestScore
        );
        assert_eq!("Average".parse::<Strategy>().unwrap(), Strategy::Average);
        assert!("mean".parse::<Strategy>().is_err());
        assert!(Examples::default().check().is_err());
        let many = Examples {
            positive: vec![Example::Id(1); MAX_EXAMPLES],
            negative: vec![Example::Id(2)],
            strategy: Strategy::Average,
        };
        assert!(many.check().is_err());
        let ok = Examples {
            positive: vec![Example::Id(3), Example::File("a.jpg".into())],
            negative: vec![Example::Id(1), Example::Id(3)],
            strategy: Strategy::BestScore,
        };
        assert!(ok.check().is_ok());
        assert_eq!(ok.ids(), [1, 3]);
    }
}
