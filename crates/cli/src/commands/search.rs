//! `imgsearch search IMAGE... | --similar-to PATH | --id ID | --text WORDS`, with `--not` for
//! counter-examples.

use std::path::{Path, PathBuf};

use clap::{ArgGroup, Args};
use engine::{Example, Examples, Order, Query, SearchHit, SearchInput, SearchPage, Strategy};

use super::filters::FilterArgs;
use crate::client;
use crate::config::RawConfig;
use crate::GlobalArgs;

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("query").required(true).multiple(true).args(["image", "similar_to", "id", "text"])))]
pub struct SearchArgs {
    /// Image files to search with (they need not be indexed); several find images like all of them
    #[arg(value_name = "IMAGE")]
    pub image: Vec<PathBuf>,
    /// An indexed image to search with, left out of the results; repeatable
    #[arg(long, value_name = "PATH")]
    pub similar_to: Vec<PathBuf>,
    /// An indexed image's id to search with, left out of the results; repeatable
    #[arg(long, value_name = "ID")]
    pub id: Vec<u64>,
    /// Words, matched by meaning (WordNet) against the images' auto-tags: "dog" finds every breed
    #[arg(long, value_name = "WORDS", conflicts_with_all = ["image", "similar_to", "id", "not", "not_id"])]
    pub text: Option<String>,
    /// An image file the results should not look like; repeatable
    #[arg(long, value_name = "IMAGE")]
    pub not: Vec<PathBuf>,
    /// An indexed image's id the results should not look like (left out of them); repeatable
    #[arg(long, value_name = "ID")]
    pub not_id: Vec<u64>,
    /// How several examples combine: average (one search with the mean, pushed away from the
    /// counter-examples) or best-score (each image scored by its closest example)
    #[arg(long, default_value = "average", value_parser = parse_strategy)]
    pub strategy: Strategy,
    /// Number of results (1-1000)
    #[arg(long, short, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub k: u64,
    /// Every image within --threshold (at most 10,000), instead of the best k
    #[arg(long, requires = "threshold", conflicts_with = "k")]
    pub all: bool,
    /// The order of the results: score (most similar first) or date (newest first, by the date
    /// taken, else the file's time; needs --threshold: the images within it are ordered)
    #[arg(long, default_value = "score", value_parser = parse_order, requires_if("date", "threshold"))]
    pub sort: Order,
    /// Minimum score (cosine, ip; for --text the minimum tag score) or maximum distance (l2)
    #[arg(long, allow_negative_numbers = true)]
    pub threshold: Option<f32>,
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Print the hits as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

fn parse_order(s: &str) -> Result<Order, String> {
    s.parse().map_err(|e: engine::EngineError| e.to_string())
}

fn parse_strategy(s: &str) -> Result<Strategy, String> {
    s.parse().map_err(|e: engine::EngineError| e.to_string())
}

pub fn run(g: &GlobalArgs, args: &SearchArgs) -> anyhow::Result<()> {
    let mut query = Query {
        k: if args.all {
            engine::MAX_K
        } else {
            args.k as usize
        },
        threshold: args.threshold,
        filter: args.filters.filter()?,
        order: args.sort,
        cursor: None,
    };
    let settings = g.settings(RawConfig::default())?;
    let backend = match client::for_settings(&settings)? {
        Some(server) => Backend::Server(server),
        None => Backend::Local(Box::new(engine::Engine::open(settings.engine)?)),
    };
    let examples = match &args.text {
        Some(_) => None,
        None => Some(args.examples(|p| backend.indexed_id(p))?),
    };
    let input = match (&args.text, &examples) {
        (Some(words), _) => SearchInput::Text(words),
        (None, Some(examples)) => SearchInput::Examples(examples),
        (None, None) => unreachable!("examples are made when there are no words"),
    };
    // One page, or with --all every page until the ranking ends.
    let mut hits: Vec<SearchHit> = Vec::new();
    loop {
        let page = backend.search(input, &query)?;
        hits.extend(page.hits);
        match page.next {
            Some(next) if args.all => query.cursor = Some(next),
            _ => break,
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&hits)?);
    } else {
        print_table(&hits);
    }
    Ok(())
}

/// Where the search runs: a running server holding the data directory, or the engine opened
/// here.
enum Backend {
    Server(client::Client),
    Local(Box<engine::Engine>),
}

impl Backend {
    fn search(&self, input: SearchInput<'_>, q: &Query) -> anyhow::Result<SearchPage> {
        match self {
            Backend::Server(server) => server.search(input, q),
            Backend::Local(engine) => Ok(engine.search(input, q)?),
        }
    }

    fn indexed_id(&self, path: &Path) -> anyhow::Result<Option<u64>> {
        match self {
            Backend::Server(server) => server.indexed_id(path),
            Backend::Local(engine) => Ok(engine.image_by_path(path)?.map(|r| r.id)),
        }
    }
}

impl SearchArgs {
    /// The image examples, each `--similar-to` path looked up by `indexed_id`.
    fn examples(
        &self,
        indexed_id: impl Fn(&Path) -> anyhow::Result<Option<u64>>,
    ) -> anyhow::Result<Examples> {
        let mut positive: Vec<Example> = self.image.iter().cloned().map(Example::File).collect();
        for p in &self.similar_to {
            let id = indexed_id(p)?.ok_or_else(|| not_indexed(p))?;
            positive.push(Example::Id(id));
        }
        positive.extend(self.id.iter().copied().map(Example::Id));
        let files = self.not.iter().cloned().map(Example::File);
        let negative = files.chain(self.not_id.iter().copied().map(Example::Id));
        Ok(Examples {
            positive,
            negative: negative.collect(),
            strategy: self.strategy,
        })
    }
}

/// The message of an image given with --similar-to that is not indexed.
fn not_indexed(p: &Path) -> engine::EngineError {
    engine::EngineError::NotFound {
        what: format!(
            "{} is not indexed (search with it as IMAGE instead of --similar-to)",
            p.display()
        ),
    }
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
