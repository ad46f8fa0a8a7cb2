//! Words by meaning: query words -> WordNet noun meanings -> the ImageNet-1k classes under them.
//!
//! The default model has no text encoder, but its classifier's 1,000 classes are WordNet noun
//! synsets. The committed table (`data/wordnet-imagenet.tsv.gz`, made by
//! `models/wordnet/build_table.py` from WordNet 3.0; licence in `data/LICENSE-WordNet`) lists, for
//! every noun lemma whose meaning reaches some class, the classes it reaches: a meaning's own
//! subtree ("dog" covers every breed, "vehicle" cars and trucks), else the classes under its
//! nearest ancestor that has some ("daffodil" climbs to the flowers the model knows). A query is
//! read into concepts (WordNet's multi-word lemmas first, "tiger lily"; stop words dropped;
//! plurals reduced as WordNet's morphology does), and an image scores, per concept, the
//! classifier probability that falls on the concept's classes (as ConSE does), weighted by
//! 2^-climb so that a guess from an ancestor counts less than the word's own meaning.
//!
//! The table only applies to a model whose labels are ImageNet-1k's, in order; it checks this
//! against the labels it was built with.

use std::collections::HashMap;
use std::io::Read;
use std::sync::OnceLock;

use crate::EngineError;

/// The table, gzip-compressed (1.3 MB of text, 0.4 MB in the binary).
static TABLE_GZ: &[u8] = include_bytes!("../data/wordnet-imagenet.tsv.gz");

/// The longest multi-word lemma the query reader tries (WordNet has longer ones, but none that
/// reach a class and are worth a sixth word of typing).
const MAX_LEMMA_WORDS: usize = 5;

/// Words that carry no meaning for a picture; dropped unless they are part of a multi-word lemma
/// ("lily of the valley").
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "any", "at", "by", "for", "from", "image", "images", "in", "is", "my", "of",
    "on", "or", "photo", "photos", "picture", "pictures", "some", "the", "with",
];

/// WordNet's suffix rules for nouns (morphy): plural ending -> lemma ending.
const NOUN_SUFFIXES: &[(&str, &str)] = &[
    ("ses", "s"),
    ("xes", "x"),
    ("zes", "z"),
    ("ches", "ch"),
    ("shes", "sh"),
    ("men", "man"),
    ("ies", "y"),
    ("s", ""),
];

/// The parsed table.
pub(crate) struct Lexicon {
    /// The 1,000 labels the table was built for, in class order.
    labels: Vec<String>,
    /// Class groups: each a sorted list of class numbers.
    groups: Vec<Vec<u16>>,
    /// Lemma (lower case, words joined by '_') -> (climb, group) for each meaning.
    lemmas: HashMap<String, Vec<(u8, u32)>>,
    /// Irregular plural -> lemma.
    irregular: HashMap<String, String>,
}

/// One concept of a query: the words it was read from and the weight of each class it reaches.
#[derive(Clone, Debug)]
pub(crate) struct Concept {
    pub words: String,
    pub weights: HashMap<u16, f32>,
}

/// A query read against the table.
#[derive(Clone, Debug)]
pub(crate) struct Reading {
    pub concepts: Vec<Concept>,
    /// Words the table does not know, each with the closest words it does.
    pub unknown: Vec<(String, Vec<String>)>,
}

/// The table, parsed once; `None` if it is unreadable (a build defect, logged).
pub(crate) fn lexicon() -> Option<&'static Lexicon> {
    static LEXICON: OnceLock<Option<Lexicon>> = OnceLock::new();
    LEXICON
        .get_or_init(|| match Lexicon::parse_gz(TABLE_GZ) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::error!("the WordNet table is unreadable ({e}); text search by spelling");
                None
            }
        })
        .as_ref()
}

impl Lexicon {
    fn parse_gz(gz: &[u8]) -> Result<Lexicon, String> {
        let mut text = String::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_string(&mut text)
            .map_err(|e| format!("gzip: {e}"))?;
        Lexicon::parse(&text)
    }

    fn parse(text: &str) -> Result<Lexicon, String> {
        let mut lex = Lexicon {
            labels: Vec::new(),
            groups: Vec::new(),
            lemmas: HashMap::new(),
            irregular: HashMap::new(),
        };
        for (n, line) in text.lines().enumerate() {
            let bad = || format!("line {}: {line:?}", n + 1);
            let mut fields = line.split('\t');
            match fields.next() {
                Some("L") => lex.labels.push(fields.next().ok_or_else(bad)?.to_string()),
                Some("G") => {
                    let mut classes = Vec::new();
                    for run in fields.next().ok_or_else(bad)?.split(',') {
                        let (a, b) = run.split_once('-').unwrap_or((run, run));
                        let (a, b): (u16, u16) =
                            (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                        if a > b || usize::from(b) >= lex.labels.len() {
                            return Err(bad());
                        }
                        classes.extend(a..=b);
                    }
                    lex.groups.push(classes);
                }
                Some("X") => {
                    let (plural, lemma) = (fields.next(), fields.next());
                    let (plural, lemma) = plural.zip(lemma).ok_or_else(bad)?;
                    lex.irregular.insert(plural.into(), lemma.into());
                }
                Some("W") => {
                    let lemma = fields.next().ok_or_else(bad)?;
                    let mut refs = Vec::new();
                    for r in fields.next().ok_or_else(bad)?.split(',') {
                        let (climb, group) = r.split_once(':').ok_or_else(bad)?;
                        let climb: u8 = climb.parse().map_err(|_| bad())?;
                        let group: u32 = group.parse().map_err(|_| bad())?;
                        if group as usize >= lex.groups.len() {
                            return Err(bad());
                        }
                        refs.push((climb, group));
                    }
                    lex.lemmas.insert(lemma.to_lowercase(), refs);
                }
                Some(s) if s.starts_with('#') || s.is_empty() => {}
                _ => return Err(bad()),
            }
        }
        if lex.labels.len() != 1000 || lex.lemmas.is_empty() {
            return Err(format!(
                "{} labels and {} lemmas",
                lex.labels.len(),
                lex.lemmas.len()
            ));
        }
        Ok(lex)
    }

    /// Whether a model with these labels is the one the table was built for.
    pub fn fits(&self, labels: &[String]) -> bool {
        labels == self.labels.as_slice()
    }

    /// The class number of a label (an auto-tag's name).
    pub fn class_of(&self) -> HashMap<&str, u16> {
        self.labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_str(), i as u16))
            .collect()
    }

    /// The lemma a word (or words joined by '_') stands for, trying WordNet's plural rules.
    fn lemma_of(&self, word: &str) -> Option<&str> {
        if let Some((k, _)) = self.lemmas.get_key_value(word) {
            return Some(k);
        }
        if let Some(l) = self.irregular.get(word) {
            return self.lemmas.get_key_value(l).map(|(k, _)| k.as_str());
        }
        NOUN_SUFFIXES.iter().find_map(|(suffix, ending)| {
            let stem = word.strip_suffix(suffix)?;
            if stem.is_empty() {
                return None;
            }
            self.lemmas
                .get_key_value(&format!("{stem}{ending}"))
                .map(|(k, _)| k.as_str())
        })
    }

    /// The classes a lemma reaches, each weighted by 2^-climb (the best of its meanings).
    fn weights(&self, lemma: &str) -> HashMap<u16, f32> {
        let mut w: HashMap<u16, f32> = HashMap::new();
        for &(climb, group) in self.lemmas.get(lemma).into_iter().flatten() {
            let weight = 0.5f32.powi(i32::from(climb));
            for &c in &self.groups[group as usize] {
                let e = w.entry(c).or_insert(0.0);
                *e = e.max(weight);
            }
        }
        w
    }

    /// Reads a query: longest multi-word lemmas first, stop words dropped, the rest one word each.
    pub fn read(&self, text: &str) -> Reading {
        let tokens: Vec<String> = text
            .split(|c: char| c.is_whitespace() || ",;:!?\"()[]{}/".contains(c))
            .map(|t| {
                t.trim_matches(|c: char| c == '.' || c == '\'')
                    .to_lowercase()
            })
            .filter(|t| !t.is_empty())
            .collect();
        let mut reading = Reading {
            concepts: Vec::new(),
            unknown: Vec::new(),
        };
        let mut i = 0;
        while i < tokens.len() {
            let longest = (2..=MAX_LEMMA_WORDS.min(tokens.len() - i))
                .rev()
                .find_map(|n| Some((n, self.lemma_of(&tokens[i..i + n].join("_"))?)));
            let (n, lemma) = match longest {
                Some(found) => found,
                None if STOP_WORDS.contains(&tokens[i].as_str()) => {
                    i += 1;
                    continue;
                }
                None => {
                    // "sea-lion" and "sea lion" are one lemma.
                    let word = tokens[i].replace('-', "_");
                    match self.lemma_of(&tokens[i]).or_else(|| self.lemma_of(&word)) {
                        Some(lemma) => (1, lemma),
                        None => {
                            reading
                                .unknown
                                .push((tokens[i].clone(), self.closest(&tokens[i], 3)));
                            i += 1;
                            continue;
                        }
                    }
                }
            };
            if !reading.concepts.iter().any(|c| c.words == lemma) {
                reading.concepts.push(Concept {
                    words: lemma.to_string(),
                    weights: self.weights(lemma),
                });
            }
            i += n;
        }
        reading
    }

    /// The `n` single-word lemmas closest to `word` in edit distance (at most a third of its
    /// length, at least 1), nearest first, then those of its length, then alphabetical.
    fn closest(&self, word: &str, n: usize) -> Vec<String> {
        let limit = (word.chars().count() / 3).max(1);
        let mut near: Vec<(usize, usize, &str)> = self
            .lemmas
            .keys()
            .filter(|l| !l.contains('_'))
            .filter(|l| l.len().abs_diff(word.len()) <= limit)
            .filter_map(|l| {
                let d = edit_distance(word, l, limit)?;
                Some((d, l.len().abs_diff(word.len()), l.as_str()))
            })
            .collect();
        near.sort_unstable();
        near.into_iter()
            .take(n)
            .map(|(_, _, l)| l.to_string())
            .collect()
    }
}

impl Reading {
    /// Fails when no word of the query is known, naming the closest known words.
    pub fn require_known(&self) -> Result<(), EngineError> {
        if !self.concepts.is_empty() {
            return Ok(());
        }
        if self.unknown.is_empty() {
            return Err(EngineError::invalid("text search needs at least one word"));
        }
        let parts: Vec<String> = self
            .unknown
            .iter()
            .map(|(w, near)| {
                if near.is_empty() {
                    format!("\"{w}\" (no close word)")
                } else {
                    format!("\"{w}\" (closest: {})", near.join(", "))
                }
            })
            .collect();
        Err(EngineError::invalid(format!(
            "no picture class is known for {}",
            parts.join("; ")
        )))
    }
}

impl Concept {
    /// The probability mass an image's auto-tags put on this concept's classes.
    pub fn score(&self, tags: &[(String, f32)], class_of: &HashMap<&str, u16>) -> f32 {
        tags.iter()
            .filter_map(|(name, p)| Some(self.weights.get(class_of.get(name.as_str())?)? * p))
            .sum()
    }
}

/// Edit distance over characters, a swap of neighbours counting as one edit ("dgo" is one edit
/// from "dog"; optimal string alignment), or `None` once it exceeds `limit`.
fn edit_distance(a: &str, b: &str, limit: usize) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 0..a.len() {
        cur[0] = i + 1;
        let mut row_min = cur[0];
        for j in 0..b.len() {
            let mut d = (prev[j] + usize::from(a[i] != b[j]))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
            if i > 0 && j > 0 && a[i] == b[j - 1] && a[i - 1] == b[j] {
                d = d.min(before[j - 1] + 1);
            }
            cur[j + 1] = d;
            row_min = row_min.min(d);
        }
        if row_min > limit {
            return None;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    (prev[b.len()] <= limit).then_some(prev[b.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex() -> &'static Lexicon {
        lexicon().expect("the committed table parses")
    }

    fn classes(lemma: &str) -> Vec<String> {
        let l = lex();
        let mut names: Vec<String> = l
            .weights(lemma)
            .keys()
            .map(|&c| l.labels[c as usize].clone())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn table_fits_the_default_model() {
        let labels =
            std::fs::read_to_string(embed::default_manifest_path().with_file_name("labels.txt"))
                .expect("default labels");
        let labels: Vec<String> = labels.lines().map(str::to_string).collect();
        assert!(lex().fits(&labels));
        assert!(!lex().fits(&labels[1..]));
    }

    #[test]
    fn meanings_reach_the_classes_below_them() {
        let dogs = classes("dog");
        assert!(dogs.len() > 100, "every breed: {}", dogs.len());
        assert!(dogs.iter().any(|c| c == "golden retriever"));
        assert!(classes("feline").iter().any(|c| c == "tabby"));
        assert!(classes("feline").iter().any(|c| c == "lion"));
        let vehicles = classes("vehicle");
        assert!(vehicles.iter().any(|c| c == "sports car"));
        assert!(vehicles.iter().any(|c| c == "trailer truck"));
        // A word's own meaning weighs 1; a meaning found one step up ("pet" is an animal) 1/2.
        let pet = lex().weights("pet");
        let tabby = lex().labels.iter().position(|l| l == "tabby").unwrap() as u16;
        assert_eq!(pet.get(&tabby), Some(&0.5));
        // "daffodil" has no class of its own: it climbs to the flowers the model knows.
        assert!(classes("daffodil").iter().any(|c| c == "daisy"));
    }

    #[test]
    fn queries_are_read_into_concepts() {
        let r = lex().read("Photos of tiger lilies and a Golden Retriever");
        let words: Vec<&str> = r.concepts.iter().map(|c| c.words.as_str()).collect();
        assert_eq!(words, ["tiger_lily", "golden_retriever"]);
        assert!(r.unknown.is_empty());
        // Multi-word lemmas win over their parts, stop words inside them included.
        let r = lex().read("lily of the valley");
        assert_eq!(r.concepts.len(), 1);
        assert_eq!(r.concepts[0].words, "lily_of_the_valley");
        // Plurals, regular and irregular.
        assert_eq!(lex().read("dogs").concepts[0].words, "dog");
        assert_eq!(lex().read("mice").concepts[0].words, "mouse");
        assert_eq!(lex().read("butterflies").concepts[0].words, "butterfly");
        // Repeated words count once.
        assert_eq!(lex().read("cat cat cats").concepts.len(), 1);
    }

    #[test]
    fn unknown_words_get_the_closest_known_ones() {
        let r = lex().read("feline dgo");
        assert_eq!(r.concepts.len(), 1);
        assert_eq!(r.unknown.len(), 1);
        assert!(r.unknown[0].1.iter().any(|w| w == "dog"), "{:?}", r.unknown);
        assert!(r.require_known().is_ok(), "one known word is enough");
        let err = lex().read("xqzzy felinne").require_known().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"xqzzy\" (no close word)"), "{msg}");
        assert!(msg.contains("feline"), "{msg}");
        let err = lex().read("the of a").require_known().unwrap_err();
        assert!(err.to_string().contains("at least one word"));
    }

    #[test]
    fn images_score_the_probability_on_the_concept() {
        let l = lex();
        let class_of = l.class_of();
        let r = l.read("dog");
        let tags = vec![
            ("golden retriever".to_string(), 0.5),
            ("Labrador retriever".to_string(), 0.25),
            ("tennis ball".to_string(), 0.125),
        ];
        assert_eq!(r.concepts[0].score(&tags, &class_of), 0.75);
        assert_eq!(l.read("cat").concepts[0].score(&tags, &class_of), 0.0);
    }

    #[test]
    fn edit_distance_counts_swaps_once_and_stops_at_the_limit() {
        assert_eq!(edit_distance("kitten", "sitting", 3), Some(3));
        assert_eq!(edit_distance("dgo", "dog", 1), Some(1));
        assert_eq!(edit_distance("abcd", "badc", 2), Some(2));
        assert_eq!(edit_distance("kitten", "sitting", 2), None);
        assert_eq!(edit_distance("dog", "dog", 0), Some(0));
        assert_eq!(edit_distance("", "ab", 2), Some(2));
    }

    #[test]
    fn malformed_tables_are_refused() {
        assert!(
            Lexicon::parse("W\tdog\t0:0\n").is_err(),
            "group out of range"
        );
        assert!(Lexicon::parse("Q\tx\n").is_err(), "unknown section");
        assert!(Lexicon::parse("# only a comment\n").is_err(), "no labels");
        assert!(Lexicon::parse_gz(b"not gzip").is_err());
    }
}
