//! Retrieval metrics: mAP@R, recall@k, precision@10, leave-one-out class retrieval on labelled
//! embeddings, and near-duplicate retrieval per edit type.
//!
//! Definitions (per query, then averaged over queries that have at least one relevant item):
//! - `R` is the number of relevant items in the database for the query.
//! - mAP@R (Musgrave et al., "A Metric Learning Reality Check"): `(1/R) * sum_{i<=R} P(i) rel(i)`,
//!   where `P(i)` is the precision of the first `i` results. It rewards putting all relevant
//!   items first and, unlike recall@1, does not saturate.
//! - AP: the classic average precision over the whole ranking.
//! - recall@k: 1 when at least one relevant item is among the first `k` results (the usual
//!   definition in metric learning and near-duplicate retrieval).
//! - precision@10: relevant items among the first 10, divided by 10.

use crate::error::{Result, TrainError};
use crate::matrix::{cosine_matrix, Matrix};

/// Metrics of one query's ranking.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueryMetrics {
    pub ap_at_r: f64,
    pub ap: f64,
    pub recall_at_1: f64,
    pub recall_at_5: f64,
    pub recall_at_10: f64,
    pub precision_at_10: f64,
}

/// Averages over all queries of a retrieval task.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RetrievalReport {
    /// Queries that had at least one relevant item (the others are not counted).
    pub queries: usize,
    pub map_at_r: f64,
    pub map: f64,
    pub recall_at_1: f64,
    pub recall_at_5: f64,
    pub recall_at_10: f64,
    pub precision_at_10: f64,
}

/// Near-duplicate results for one edit type.
#[derive(Clone, Debug, PartialEq)]
pub struct EditReport {
    pub edit: String,
    pub queries: usize,
    pub recall_at_1: f64,
    pub map: f64,
}

/// Metrics of one ranking. `relevance[i]` says whether the item ranked `i` (0 = best) is
/// relevant; `total_relevant` is `R`, which may exceed the relevant items present in a truncated
/// ranking. Returns `None` when `total_relevant` is zero (the query has no answer).
pub fn query_metrics(relevance: &[bool], total_relevant: usize) -> Option<QueryMetrics> {
    if total_relevant == 0 {
        return None;
    }
    let r = total_relevant;
    let (mut hits, mut sum_p_at_r, mut sum_p) = (0usize, 0.0f64, 0.0f64);
    let mut first_hit: Option<usize> = None;
    let mut hits_at_10 = 0usize;
    for (i, &rel) in relevance.iter().enumerate() {
        if rel {
            hits += 1;
            let p = hits as f64 / (i + 1) as f64;
            sum_p += p;
            if i < r {
                sum_p_at_r += p;
            }
            first_hit.get_or_insert(i);
        }
        if i == 9 {
            hits_at_10 = hits;
        }
    }
    if relevance.len() < 10 {
        hits_at_10 = hits;
    }
    let recall_at = |k: usize| f64::from(u8::from(first_hit.is_some_and(|f| f < k)));
    Some(QueryMetrics {
        ap_at_r: sum_p_at_r / r as f64,
        ap: sum_p / r as f64,
        recall_at_1: recall_at(1),
        recall_at_5: recall_at(5),
        recall_at_10: recall_at(10),
        precision_at_10: hits_at_10 as f64 / 10.0,
    })
}

/// Indices of `scores` from highest to lowest; ties keep the lower index first so results are
/// deterministic. NaN scores rank last.
pub fn rank_desc(scores: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| {
        let (sa, sb) = (scores[a], scores[b]);
        match (sa.is_nan(), sb.is_nan()) {
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ => sb.partial_cmp(&sa).unwrap_or(std::cmp::Ordering::Equal),
        }
        .then(a.cmp(&b))
    });
    idx
}

/// Averages per-query metrics; queries with no relevant items are skipped.
pub fn average(per_query: impl IntoIterator<Item = QueryMetrics>) -> RetrievalReport {
    let mut rep = RetrievalReport::default();
    for q in per_query {
        rep.queries += 1;
        rep.map_at_r += q.ap_at_r;
        rep.map += q.ap;
        rep.recall_at_1 += q.recall_at_1;
        rep.recall_at_5 += q.recall_at_5;
        rep.recall_at_10 += q.recall_at_10;
        rep.precision_at_10 += q.precision_at_10;
    }
    if rep.queries > 0 {
        let n = rep.queries as f64;
        rep.map_at_r /= n;
        rep.map /= n;
        rep.recall_at_1 /= n;
        rep.recall_at_5 /= n;
        rep.recall_at_10 /= n;
        rep.precision_at_10 /= n;
    }
    rep
}

/// Leave-one-out class retrieval from a precomputed similarity matrix: every item queries all
/// the others; items with the same label are relevant.
pub fn class_retrieval_from_similarity(sim: &Matrix, labels: &[usize]) -> Result<RetrievalReport> {
    let n = labels.len();
    if sim.rows() != n || sim.cols() != n {
        return Err(TrainError::WrongDimension {
            expected: n,
            got: sim.rows().max(sim.cols()),
        });
    }
    let per_query = (0..n).filter_map(|q| {
        let order = rank_desc(sim.row(q));
        let relevance: Vec<bool> = order
            .into_iter()
            .filter(|&j| j != q)
            .map(|j| labels[j] == labels[q])
            .collect();
        let total = relevance.iter().filter(|&&r| r).count();
        query_metrics(&relevance, total)
    });
    Ok(average(per_query.collect::<Vec<_>>()))
}

/// Leave-one-out class retrieval on labelled embeddings under cosine similarity.
pub fn class_retrieval(embeddings: &Matrix, labels: &[usize]) -> Result<RetrievalReport> {
    if embeddings.rows() != labels.len() {
        return Err(TrainError::WrongDimension {
            expected: embeddings.rows(),
            got: labels.len(),
        });
    }
    class_retrieval_from_similarity(&cosine_matrix(embeddings, embeddings), labels)
}

/// Near-duplicate retrieval. Row `q` of every edit type's matrix is an edited copy of one
/// `database` row and queries the whole database; `answers[q]` lists the rows that count as
/// its original: the source row first, then any other file of the database that shows the same
/// picture (a data set may hold one photo twice; finding that copy first is not a miss). The
/// other images act as distractors. The first answer in the ranking is the hit, and the other
/// answers are left out of the ranking, so AP is the reciprocal rank of the first answer.
pub fn near_duplicate(
    database: &Matrix,
    edited: &[(String, Matrix)],
    answers: &[Vec<usize>],
) -> Result<Vec<EditReport>> {
    if let Some(&bad) = answers.iter().flatten().find(|&&t| t >= database.rows()) {
        return Err(TrainError::WrongDimension {
            expected: database.rows(),
            got: bad,
        });
    }
    let mut out = Vec::with_capacity(edited.len());
    for (name, queries) in edited {
        if queries.rows() != answers.len() || queries.cols() != database.cols() {
            return Err(TrainError::WrongDimension {
                expected: answers.len(),
                got: queries.rows(),
            });
        }
        let sim = cosine_matrix(queries, database);
        let rep = average(
            (0..queries.rows())
                .filter_map(|q| {
                    let answer = &answers[q];
                    let mut found = false;
                    let relevance: Vec<bool> = rank_desc(sim.row(q))
                        .into_iter()
                        .filter_map(|j| match answer.contains(&j) {
                            true if found => None,
                            true => {
                                found = true;
                                Some(true)
                            }
                            false => Some(false),
                        })
                        .collect();
                    query_metrics(&relevance, usize::from(!answer.is_empty()))
                })
                .collect::<Vec<_>>(),
        );
        out.push(EditReport {
            edit: name.clone(),
            queries: rep.queries,
            recall_at_1: rep.recall_at_1,
            map: rep.map,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn hand_computed_ranking() {
        // Relevant at ranks 1, 3 and 6 (1-based), R = 3.
        let rel = [
            true, false, true, false, false, true, false, false, false, false, false,
        ];
        let m = query_metrics(&rel, 3).unwrap();
        // mAP@R: only the first R = 3 positions count: (1/1 + 2/3) / 3.
        assert!(close(m.ap_at_r, (1.0 + 2.0 / 3.0) / 3.0));
        // AP: (1/1 + 2/3 + 3/6) / 3.
        assert!(close(m.ap, (1.0 + 2.0 / 3.0 + 0.5) / 3.0));
        assert!(close(m.recall_at_1, 1.0));
        assert!(close(m.precision_at_10, 0.3));
    }

    #[test]
    fn first_hit_late() {
        // Only relevant item at rank 7: recall@1 and @5 are 0, @10 is 1, AP = 1/7.
        let mut rel = vec![false; 12];
        rel[6] = true;
        let m = query_metrics(&rel, 1).unwrap();
        assert!(close(m.recall_at_1, 0.0) && close(m.recall_at_5, 0.0));
        assert!(close(m.recall_at_10, 1.0));
        assert!(close(m.ap, 1.0 / 7.0));
        assert!(close(m.ap_at_r, 0.0));
        assert!(close(m.precision_at_10, 0.1));
        assert!(query_metrics(&rel, 0).is_none());
    }

    #[test]
    fn rank_desc_breaks_ties_by_index_and_puts_nan_last() {
        assert_eq!(rank_desc(&[0.5, f32::NAN, 0.9, 0.5]), vec![2, 0, 3, 1]);
    }

    #[test]
    fn leave_one_out_on_hand_made_similarity() {
        // Items 0,1 are class A and 2,3 class B. Items 0 and 2 are very similar across classes:
        // item 0 ranks 2,1,3 and item 2 ranks 0,3,1, so each has R = 1 with its positive at
        // rank 2 (AP@R = 0, AP = 1/2, recall@1 = 0). Items 1 and 3 rank their positive first.
        let sim = Matrix::from_rows(&[
            [1.0, 0.5, 0.9, 0.1],
            [0.5, 1.0, 0.2, 0.1],
            [0.9, 0.2, 1.0, 0.8],
            [0.1, 0.1, 0.8, 1.0],
        ])
        .unwrap();
        let rep = class_retrieval_from_similarity(&sim, &[0, 0, 1, 1]).unwrap();
        assert_eq!(rep.queries, 4);
        assert!(close(rep.map_at_r, 0.5));
        assert!(close(rep.map, 0.75));
        assert!(close(rep.recall_at_1, 0.5));
        assert!(close(rep.recall_at_5, 1.0));
        assert!(close(rep.precision_at_10, 0.1));
    }

    #[test]
    fn singleton_classes_are_not_queries() {
        let emb = Matrix::from_rows(&[[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]).unwrap();
        let rep = class_retrieval(&emb, &[0, 0, 1]).unwrap();
        assert_eq!(rep.queries, 2);
        assert!(close(rep.map_at_r, 1.0));
        assert!(class_retrieval(&emb, &[0, 0]).is_err());
    }

    #[test]
    fn near_duplicate_per_edit() {
        let orig = Matrix::from_rows(&[[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]]).unwrap();
        // "good" edit: every copy closest to its original; "bad": copy 0 lands nearest item 2
        // (cosine 0.99 against 0.8 for its original), so its original ranks second (1/2).
        let good = orig.clone();
        let bad = Matrix::from_rows(&[[0.8, 0.6], [0.0, 1.0], [0.7, 0.7]]).unwrap();
        let targets = [vec![0], vec![1], vec![2]];
        let reps = near_duplicate(
            &orig,
            &[("good".into(), good), ("bad".into(), bad)],
            &targets,
        )
        .unwrap();
        assert!(close(reps[0].recall_at_1, 1.0) && close(reps[0].map, 1.0));
        assert!(close(reps[1].recall_at_1, 2.0 / 3.0));
        assert!(close(reps[1].map, (0.5 + 1.0 + 1.0) / 3.0));
        let wrong = Matrix::from_rows(&[[1.0, 0.0]]).unwrap();
        assert!(near_duplicate(&orig, &[("x".into(), wrong.clone())], &targets).is_err());
        assert!(near_duplicate(&orig, &[("x".into(), wrong.clone())], &[vec![3]]).is_err());
        // One query (an exact copy of item 2) against the three-item database.
        let copy = Matrix::from_rows(&[[0.7, 0.7]]).unwrap();
        let one = near_duplicate(&orig, &[("copy".into(), copy)], &[vec![2]]).unwrap();
        assert_eq!(one[0].queries, 1);
        assert!(close(one[0].recall_at_1, 1.0));
    }

    #[test]
    fn a_copy_of_the_source_in_the_database_counts_as_the_original() {
        // Item 3 shows the same picture as item 0 and lies nearer the edited query, which
        // ranks 3, 0, 2, 1.
        let db = Matrix::from_rows(&[[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [0.95, 0.05]]).unwrap();
        let query = Matrix::from_rows(&[[0.9, 0.1]]).unwrap();
        let edits = [("e".to_string(), query)];
        // Without the copy among the answers the original ranks second.
        let alone = near_duplicate(&db, &edits, &[vec![0]]).unwrap();
        assert!(close(alone[0].recall_at_1, 0.0) && close(alone[0].map, 0.5));
        // With it the copy is the hit at rank 1, and the original after it is not counted.
        let with = near_duplicate(&db, &edits, &[vec![0, 3]]).unwrap();
        assert!(close(with[0].recall_at_1, 1.0) && close(with[0].map, 1.0));
        // A copy ranked below a distractor still leaves the distractor first.
        let far = Matrix::from_rows(&[[0.6, 0.8]]).unwrap();
        let late = near_duplicate(&db, &[("e".to_string(), far)], &[vec![0, 3]]).unwrap();
        assert!(close(late[0].recall_at_1, 0.0));
    }
}
