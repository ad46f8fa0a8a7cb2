//! `imgsearch search IMAGE | --similar-to PATH | --id ID | --text WORDS`

use std::path::PathBuf;

use clap::{ArgGroup, Args};
use engine::{Query, SearchHit};
use vecdb::Filter;

use crate::client;
use crate::config::RawConfig;
use crate::exit::UsageError;
use crate::GlobalArgs;

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("query").required(true).args(["image", "similar_to", "id", "text"])))]
pub struct SearchArgs {
    /// An image file to search with (it need not be indexed)
    #[arg(value_name = "IMAGE")]
    pub image: Option<PathBuf>,
    /// An indexed image to search with; it is left out of the results
    #[arg(long, value_name = "PATH")]
    pub similar_to: Option<PathBuf>,
    /// An indexed image's id to search with; it is left out of the results
    #[arg(long, value_name = "ID")]
    pub id: Option<u64>,
    /// Words, matched by meaning (WordNet) against the images' auto-tags: "dog" finds every breed
    #[arg(long, value_name = "WORDS")]
    pub text: Option<String>,
    /// Number of results (1-1000)
    #[arg(long, short, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub k: u64,
    /// Minimum score (cosine, ip; for --text the minimum tag score) or maximum distance (l2)
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Metadata filter as JSON, e.g. '{"range":{"field":"width","gte":1000}}'
    #[arg(long, value_name = "JSON", value_parser = parse_filter)]
    pub filter: Option<Filter>,
    /// Only images under this folder (recursively); repeat for several (any of them)
    #[arg(long, value_name = "DIR")]
    pub folder: Vec<PathBuf>,
    /// Only images with this auto-tag; repeat to require several
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,
    /// Only images taken (EXIF) on or after this date (YYYY-MM-DD or RFC 3339)
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub taken_after: Option<String>,
    /// Only images taken (EXIF) before this date (YYYY-MM-DD or RFC 3339)
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub taken_before: Option<String>,
    /// Only files of at least this many bytes
    #[arg(long, value_name = "BYTES")]
    pub min_size: Option<u64>,
    /// Print the hits as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

fn parse_filter(s: &str) -> Result<Filter, String> {
    let v: serde_json::Value = serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))?;
    Filter::from_json(&v).map_err(|e| e.to_string())
}

fn parse_date(s: &str) -> Result<String, String> {
    match vecdb::filter::parse_instant(s) {
        Some(_) => Ok(s.to_string()),
        None => Err("expected a date like 2024-05-01 or 2024-05-01T10:00:00Z".into()),
    }
}

impl SearchArgs {
    /// The --filter JSON and the shorthands, combined with `and`.
    fn filter(&self) -> anyhow::Result<Option<Filter>> {
        let mut all: Vec<Filter> = self.filter.iter().cloned().collect();
        if !self.folder.is_empty() {
            let mut any = Vec::new();
            for f in &self.folder {
                let dir = f
                    .canonicalize()
                    .map_err(|e| UsageError(format!("--folder {}: {e}", f.display())))?;
                any.push(Filter::eq("dirs", dir.to_string_lossy().into_owned()));
            }
            all.push(Filter::Or(any));
        }
        for t in &self.tag {
            all.push(Filter::eq("tags", t.to_lowercase()));
        }
        if self.taken_after.is_some() || self.taken_before.is_some() {
            all.push(Filter::Range {
                field: "taken".into(),
                gt: None,
                gte: self.taken_after.clone().map(Into::into),
                lt: self.taken_before.clone().map(Into::into),
                lte: None,
            });
        }
        if let Some(n) = self.min_size {
            all.push(Filter::Range {
                field: "size".into(),
                gt: None,
                gte: Some(n.into()),
                lt: None,
                lte: None,
            });
        }
        Ok(match all.len() {
            0 => None,
            1 => all.pop(),
            _ => Some(Filter::And(all)),
        })
    }
}

pub fn run(g: &GlobalArgs, args: &SearchArgs) -> anyhow::Result<()> {
    let query = Query {
        k: args.k as usize,
        threshold: args.threshold,
        filter: args.filter()?,
    };
    let settings = g.settings(RawConfig::default())?;
    let hits = match client::for_settings(&settings)? {
        Some(server) => search_through(&server, args, &query)?,
        None => search_direct(&engine::Engine::open(settings.engine)?, args, &query)?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&hits)?);
    } else {
        print_table(&hits);
    }
    Ok(())
}

/// The message of an image given with --similar-to that is not indexed.
fn not_indexed(p: &std::path::Path) -> engine::EngineError {
    engine::EngineError::NotFound {
        what: format!(
            "{} is not indexed (search with it as IMAGE instead of --similar-to)",
            p.display()
        ),
    }
}

/// The search through a running server's API.
fn search_through(
    server: &client::Client,
    args: &SearchArgs,
    query: &Query,
) -> anyhow::Result<Vec<SearchHit>> {
    Ok(if let Some(p) = &args.image {
        server.search_path(p, query)?
    } else if let Some(p) = &args.similar_to {
        let id = server.indexed_id(p)?.ok_or_else(|| not_indexed(p))?;
        server.search_id(id, query)?
    } else if let Some(id) = args.id {
        server.search_id(id, query)?
    } else if let Some(t) = &args.text {
        server.search_text(t, query)?
    } else {
        return Err(UsageError("give IMAGE, --similar-to, --id or --text".into()).into());
    })
}

/// The search on the engine, opened here.
fn search_direct(
    engine: &engine::Engine,
    args: &SearchArgs,
    query: &Query,
) -> anyhow::Result<Vec<SearchHit>> {
    let hits = if let Some(p) = &args.image {
        engine.search_path(p, query)?
    } else if let Some(p) = &args.similar_to {
        let rec = engine.image_by_path(p)?.ok_or_else(|| not_indexed(p))?;
        engine.search_id(rec.id, query)?
    } else if let Some(id) = args.id {
        engine.search_id(id, query)?
    } else if let Some(t) = &args.text {
        engine.search_text(t, query)?
    } else {
        return Err(UsageError("give IMAGE, --similar-to, --id or --text".into()).into());
    };
    Ok(hits)
}

/// Top tags of a hit as "name (score)".
pub fn tags_of(h: &SearchHit) -> String {
    let scores = h.metadata["tag_scores"].as_object();
    let tags = h.metadata["tags"].as_array().cloned().unwrap_or_default();
    tags.iter()
        .take(2)
        .filter_map(|t| t.as_str())
        .map(
            |t| match scores.and_then(|s| s.get(t)).and_then(|v| v.as_f64()) {
                Some(s) => format!("{t} ({s:.2})"),
                None => t.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_table(hits: &[SearchHit]) {
    if hits.is_empty() {
        println!("no matches");
        return;
    }
    println!(
        "{:>3}  {:>8}  {:>6}  {:<50}  tags",
        "#", "score", "id", "path"
    );
    for (i, h) in hits.iter().enumerate() {
        println!(
            "{:>3}  {:>8.4}  {:>6}  {:<50}  {}",
            i + 1,
            h.score,
            h.id,
            h.path.display(),
            tags_of(h)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shorthands_combine_with_and() {
        let args = SearchArgs {
            image: None,
            similar_to: None,
            id: Some(1),
            text: None,
            k: 10,
            threshold: None,
            filter: Some(parse_filter(r#"{"eq":{"field":"width","value":10}}"#).unwrap()),
            folder: vec![],
            tag: vec!["Daisy".into()],
            taken_after: Some("2020-01-01".into()),
            taken_before: None,
            min_size: Some(5),
            json: false,
        };
        let f = serde_json::to_value(args.filter().unwrap().unwrap()).unwrap();
        assert_eq!(f["and"].as_array().unwrap().len(), 4);
        assert_eq!(
            f["and"][1],
            json!({"eq": {"field": "tags", "value": "daisy"}})
        );
        assert!(parse_filter("{\"nope\":1}").is_err());
        assert!(parse_date("yesterday").is_err());
    }
}
