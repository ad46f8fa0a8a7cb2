//! The filter flags shared by the commands that search: `--filter` JSON and its shorthands.

use std::path::PathBuf;

use clap::Args;
use vecdb::Filter;

use crate::exit::UsageError;

/// `--filter` and the shorthands, combined with `and`.
#[derive(Args, Debug, Default)]
pub struct FilterArgs {
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

impl FilterArgs {
    /// The --filter JSON and the shorthands, combined with `and`.
    pub fn filter(&self) -> anyhow::Result<Option<Filter>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shorthands_combine_with_and() {
        let args = FilterArgs {
            filter: Some(parse_filter(r#"{"eq":{"field":"width","value":10}}"#).unwrap()),
            folder: vec![],
            tag: vec!["Daisy".into()],
            taken_after: Some("2020-01-01".into()),
            taken_before: None,
            min_size: Some(5),
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
