//! One door for every search: the input (examples or words), the order of the results and the
//! pages they are read in.
//!
//! A search ranks its hits best first (score order, the default) and answers `k` of them at a
//! time; [`SearchPage::next`] continues where a page ended, so that every image within a
//! threshold can be read page by page. With `Order::Date` the relevant set is every hit within
//! the threshold (a threshold is then required), ordered newest first by the date the photo was
//! taken (EXIF), else by its modification time. Either way a ranking holds at most
//! [`MAX_RANKED`] hits, which bounds the work and memory of one request: a deeper page is empty.
//!
//! A cursor is the order and the number of hits before the page (`score:40`): the next page
//! re-ranks and skips those. Images added or removed between two pages shift the ranking by as
//! many places, as with any offset.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::examples::Examples;
use crate::{Engine, EngineError, Query, SearchHit};

/// The most hits one ranking holds (score order: the deepest page ends there; date order: the
/// relevant set is cut there, best scores kept).
pub const MAX_RANKED: usize = 10_000;

/// The order of a search's results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Most similar first.
    #[default]
    Score,
    /// Newest first (EXIF date taken, else modification time), among the hits within the
    /// threshold.
    Date,
}

impl Order {
    fn name(self) -> &'static str {
        match self {
            Order::Score => "score",
            Order::Date => "date",
        }
    }
}

impl FromStr for Order {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, EngineError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "score" => Ok(Order::Score),
            "date" => Ok(Order::Date),
            other => Err(EngineError::invalid(format!(
                "sort {other:?} is not one of score, date"
            ))),
        }
    }
}

/// Where the next page of a search starts (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchCursor {
    pub order: Order,
    /// Hits before the page.
    pub offset: usize,
}

impl fmt::Display for SearchCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.order.name(), self.offset)
    }
}

impl FromStr for SearchCursor {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self, EngineError> {
        let bad = || EngineError::invalid(format!("search cursor {s:?} is not ORDER:OFFSET"));
        let (order, offset) = s.split_once(':').ok_or_else(bad)?;
        let offset: usize = offset.parse().map_err(|_| bad())?;
        if offset > MAX_RANKED {
            return Err(bad());
        }
        Ok(SearchCursor {
            order: order.parse().map_err(|_| bad())?,
            offset,
        })
    }
}

/// What a search looks for.
#[derive(Clone, Copy, Debug)]
pub enum SearchInput<'a> {
    /// Images like some examples and unlike others.
    Examples(&'a Examples),
    /// Words, matched against the images' auto-tags.
    Text(&'a str),
}

/// One page of a search.
#[derive(Clone, Debug)]
pub struct SearchPage {
    pub hits: Vec<SearchHit>,
    /// Where the next page starts; `None` when this page holds the last hits.
    pub next: Option<SearchCursor>,
}

impl Engine {
    /// One page of the hits for `input`, in `q.order`, from `q.cursor` on.
    pub fn search(&self, input: SearchInput<'_>, q: &Query) -> Result<SearchPage, EngineError> {
        self.check_query(q)?;
        let offset = match q.cursor {
            None => 0,
            Some(c) if c.order == q.order => c.offset,
            Some(c) => {
                return Err(EngineError::invalid(format!(
                    "the cursor {c} continues a search sorted by {}, not by {}",
                    c.order.name(),
                    q.order.name()
                )))
            }
        };
        let end = (offset + q.k).min(MAX_RANKED);
        // One hit more than the page shows, to know whether another page follows.
        let want =
            match q.order {
                Order::Score => end + 1,
                Order::Date if q.threshold.is_none() => return Err(EngineError::invalid(
                    "sorting by date needs a threshold: the images within it are ordered by date",
                )),
                Order::Date => MAX_RANKED,
            };
        let mut ranked = match input {
            SearchInput::Examples(examples) => self.rank_examples(examples, q, want)?,
            SearchInput::Text(words) => self.rank_text(words, q, want)?,
        };
        if q.order == Order::Date {
            ranked.sort_by_cached_key(|h| (std::cmp::Reverse(date_of(h)), h.id));
        }
        let more = ranked.len() > end && end < MAX_RANKED;
        let hits: Vec<SearchHit> = ranked
            .drain(offset.min(ranked.len())..end.min(ranked.len()))
            .collect();
        Ok(SearchPage {
            hits,
            next: more.then_some(SearchCursor {
                order: q.order,
                offset: end,
            }),
        })
    }
}

/// When a hit's photo was taken (EXIF), else when its file last changed, in nanoseconds.
fn date_of(h: &SearchHit) -> i128 {
    let taken = h.metadata["taken"]
        .as_str()
        .and_then(vecdb::filter::parse_instant);
    taken.unwrap_or_else(|| i128::from(h.metadata["mtime_ns"].as_i64().unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = SearchCursor {
            order: Order::Date,
            offset: 40,
        };
        assert_eq!(c.to_string(), "date:40");
        assert_eq!("date:40".parse::<SearchCursor>().unwrap(), c);
        for bad in [
            "",
            "40",
            "score:",
            "score:-1",
            "size:4",
            "score:10001",
            "score:1:2",
        ] {
            assert!(bad.parse::<SearchCursor>().is_err(), "{bad}");
        }
        assert_eq!("Date".parse::<Order>().unwrap(), Order::Date);
        assert!("newest".parse::<Order>().is_err());
    }

    #[test]
    fn the_date_taken_wins_over_the_file_time() {
        let hit = |taken: serde_json::Value, mtime_ns: i64| SearchHit {
            id: 1,
            path: "a.jpg".into(),
            score: 0.5,
            metadata: serde_json::json!({"taken": taken, "mtime_ns": mtime_ns}),
        };
        let taken = hit("2020-01-02T00:00:00Z".into(), 5);
        assert_eq!(date_of(&taken), 1_577_923_200_000_000_000);
        assert_eq!(date_of(&hit(serde_json::Value::Null, 5)), 5);
    }
}
