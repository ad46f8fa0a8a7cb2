//! Queries by words (queries by images are in [`crate::examples`]).
//!
//! Text search: the model has no text encoder, so words are matched against the auto-tags the
//! classifier gave each image at ingest. With a model whose classes are ImageNet-1k's (the
//! default), words are matched by meaning through WordNet ([`crate::words`]): a query concept
//! scores the tag probability that falls on the classes under it ("dog" finds every breed). With
//! any other labelled model they are matched by spelling: a query word matches a tag when it
//! equals one of the tag's words (case-insensitive; a trailing plural "s" is ignored), e.g. "cat"
//! matches "tiger cat", and scores that tag's probability. Either way, images matching more of the
//! query's concepts rank first, then by summed score; `threshold` is the minimum text score and
//! `filter` applies as for image search.

use std::path::PathBuf;

use tracing::debug;

use crate::ranking::SearchInput;
use crate::store::StoreError;
use crate::words::{self, Lexicon, Reading};
use crate::{point_metadata, Engine, EngineError, Query, SearchHit};

impl Engine {
    /// Images whose auto-tags match the words (see the module documentation): the first page
    /// of [`Engine::search`].
    pub fn search_text(&self, words: &str, q: &Query) -> Result<Vec<SearchHit>, EngineError> {
        Ok(self.search(SearchInput::Text(words), q)?.hits)
    }

    /// The best `want` images for the words, best first.
    pub(crate) fn rank_text(
        &self,
        words: &str,
        q: &Query,
        want: usize,
    ) -> Result<Vec<SearchHit>, EngineError> {
        let text = TextQuery::new(words, self.encoder.embedder().labels())?;
        let matcher = q
            .filter
            .as_ref()
            .map(vecdb::Filter::matcher)
            .transpose()
            .map_err(StoreError::from)?;
        let mut scored: Vec<(usize, f32, SearchHit)> = Vec::new();
        self.catalog.for_each(&mut |r| {
            let (matched, score) = text.score(&r.tags);
            if matched == 0 || q.threshold.is_some_and(|t| score < t) {
                return;
            }
            let metadata = point_metadata(&r, &self.model_id);
            if matcher.as_ref().is_some_and(|m| !m.matches(&metadata)) {
                return;
            }
            let hit = SearchHit {
                id: r.id,
                path: PathBuf::from(&r.path),
                score,
                metadata,
            };
            scored.push((matched, score, hit));
        })?;
        scored.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then(b.1.total_cmp(&a.1))
                .then(a.2.id.cmp(&b.2.id))
        });
        Ok(scored.into_iter().take(want).map(|(_, _, h)| h).collect())
    }
}

/// A text query, read by meaning (WordNet) or by spelling (see the module documentation).
enum TextQuery {
    Meaning {
        reading: Reading,
        class_of: std::collections::HashMap<&'static str, u16>,
    },
    Spelling(Vec<String>),
}

impl TextQuery {
    fn new(words: &str, labels: &[String]) -> Result<TextQuery, EngineError> {
        match words::lexicon().filter(|l| l.fits(labels)) {
            Some(lex) => Self::by_meaning(lex, words),
            None => {
                let terms = terms(words);
                if terms.is_empty() {
                    return Err(EngineError::invalid("text search needs at least one word"));
                }
                Ok(TextQuery::Spelling(terms))
            }
        }
    }

    fn by_meaning(lex: &'static Lexicon, words: &str) -> Result<TextQuery, EngineError> {
        let reading = lex.read(words);
        reading.require_known()?;
        if !reading.unknown.is_empty() {
            let unknown: Vec<&str> = reading.unknown.iter().map(|(w, _)| w.as_str()).collect();
            debug!(
                ?unknown,
                "text search leaves out words WordNet does not know"
            );
        }
        Ok(TextQuery::Meaning {
            reading,
            class_of: lex.class_of(),
        })
    }

    /// (number of query concepts the image matched, summed score of those concepts).
    fn score(&self, tags: &[(String, f32)]) -> (usize, f32) {
        match self {
            TextQuery::Meaning { reading, class_of } => reading
                .concepts
                .iter()
                .map(|c| c.score(tags, class_of))
                .filter(|&s| s > 0.0)
                .fold((0, 0.0), |(n, total), s| (n + 1, total + s)),
            TextQuery::Spelling(terms) => text_score(terms, tags),
        }
    }
}

/// Lower-case words of a query or a tag, split at anything not alphanumeric.
fn words_of(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn terms(s: &str) -> Vec<String> {
    let mut t = words_of(s);
    t.dedup();
    t
}

/// Plural-insensitive word equality ("cats" matches "cat", "daisies" does not match "daisy").
fn word_matches(term: &str, word: &str) -> bool {
    term == word || term.strip_suffix('s') == Some(word) || word.strip_suffix('s') == Some(term)
}

/// (number of terms matched, summed best tag score of the matched terms).
fn text_score(terms: &[String], tags: &[(String, f32)]) -> (usize, f32) {
    let tag_words: Vec<(Vec<String>, f32)> = tags.iter().map(|(n, s)| (words_of(n), *s)).collect();
    let mut matched = 0;
    let mut total = 0.0;
    for t in terms {
        let best = tag_words
            .iter()
            .filter(|(ws, _)| ws.iter().any(|w| word_matches(t, w)))
            .map(|(_, s)| *s)
            .fold(None, |acc: Option<f32>, s| {
                Some(acc.map_or(s, |a| a.max(s)))
            });
        if let Some(s) = best {
            matched += 1;
            total += s;
        }
    }
    (matched, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(t: &[(&str, f32)]) -> Vec<(String, f32)> {
        t.iter().map(|(n, s)| (n.to_string(), *s)).collect()
    }

    #[test]
    fn text_scoring_matches_tag_words() {
        let r = tags(&[("tiger cat", 0.6), ("tabby", 0.3), ("Egyptian cat", 0.05)]);
        assert_eq!(text_score(&terms("cat"), &r), (1, 0.6));
        assert_eq!(text_score(&terms("Cats"), &r), (1, 0.6));
        let (m, s) = text_score(&terms("tabby cat"), &r);
        assert_eq!(m, 2);
        assert!((s - 0.9).abs() < 1e-6);
        assert_eq!(text_score(&terms("dog"), &r), (0, 0.0));
        assert_eq!(text_score(&terms("ca"), &r), (0, 0.0), "no prefix matching");
        assert!(terms(" ,; ").is_empty());
    }

    #[test]
    fn imagenet_models_read_words_by_meaning_others_by_spelling() {
        let imagenet: Vec<String> =
            std::fs::read_to_string(embed::default_manifest_path().with_file_name("labels.txt"))
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect();
        let r = tags(&[("tiger cat", 0.6), ("tabby", 0.3), ("Egyptian cat", 0.05)]);
        // "feline" is no tag's word, but every one of these classes is a feline.
        let q = TextQuery::new("feline", &imagenet).unwrap();
        assert!(matches!(q, TextQuery::Meaning { .. }));
        let (m, s) = q.score(&r);
        assert_eq!(m, 1);
        assert!((s - 0.95).abs() < 1e-6, "{s}");
        let err = TextQuery::new("qwxz", &imagenet).err().unwrap();
        assert!(err.to_string().contains("qwxz"), "{err}");
        // Another model's labels: spelling, as before.
        let other = vec!["tiger cat".to_string(), "tabby".to_string()];
        let q = TextQuery::new("feline", &other).unwrap();
        assert!(matches!(q, TextQuery::Spelling(_)));
        assert_eq!(q.score(&r), (0, 0.0));
        assert!(TextQuery::new(" ,; ", &other).is_err());
    }
}
