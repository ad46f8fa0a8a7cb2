//! `imgsearch eval --data DIR [--classes ...] [--edits] [--head FILE] [--json] [--seed N]`
//!
//! Measures retrieval quality on a labelled folder (one sub-folder per class): leave-one-out
//! class retrieval (every image queries all the others; same folder = relevant), and with
//! `--edits` near-duplicate retrieval, where edited copies of some images query the originals.
//! Embeddings are cached in a file (keyed by path, size and mtime, and by edit), so a second
//! run costs seconds instead of minutes. The use cases are the train crate's (`train::learn`).

use std::path::PathBuf;

use clap::Args;
use train::learn::{list_corpus, pick};
use train::metrics::{class_retrieval, near_duplicate, EditReport, RetrievalReport};
use train::Matrix;

use crate::progress::Bar;
use crate::GlobalArgs;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Folder with one sub-folder of images per class
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Only these classes (sub-folder names, comma separated) [default: all]
    #[arg(long, value_delimiter = ',', value_name = "C1,C2,...")]
    pub classes: Vec<String>,
    /// Also measure near-duplicate retrieval with the built-in edits
    #[arg(long)]
    pub edits: bool,
    /// Images used as near-duplicate originals, picked at random with --seed (0 = all)
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub edit_images: usize,
    /// Project every embedding with this head file (made by `imgsearch train`) [default: the
    /// head the model's manifest names, if any]
    #[arg(long, value_name = "FILE")]
    pub head: Option<PathBuf>,
    #[command(flatten)]
    pub common: super::LearnArgs,
    /// Seed for picking the near-duplicate originals
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Everything `eval` measured.
struct Results {
    images: usize,
    classes: usize,
    head: Option<String>,
    retrieval: RetrievalReport,
    edits: Vec<EditReport>,
    /// Other files of the data set showing the same picture as a near-duplicate original; an
    /// edited query that finds one of them first has found its original.
    same_picture_copies: usize,
}

pub fn run(g: &GlobalArgs, args: &EvalArgs) -> anyhow::Result<()> {
    let mut wb = super::workbench(g, &args.common)?;
    let corpus = list_corpus(&args.data, &args.classes)?;
    if let Some(p) = &args.head {
        wb.use_head(p)?;
    }
    let embedded = wb.embed_files(&corpus.paths, &Bar::new(g.quiet))?;
    wb.save_cache()?;
    let ok: Vec<usize> = (0..embedded.len())
        .filter(|&i| embedded[i].is_some())
        .collect();
    let rows: Vec<Vec<f32>> = ok
        .iter()
        .map(|&i| embedded[i].clone().expect("filtered"))
        .collect();
    let labels: Vec<usize> = ok.iter().map(|&i| corpus.labels[i]).collect();
    let retrieval = class_retrieval(&wb.project(&rows)?, &labels)?;
    let mut same_picture_copies = 0;
    let edits = if args.edits {
        // Positions in `rows` of the picked originals, and their file indices.
        let picked_rows = pick(rows.len(), args.edit_images, args.seed);
        let picked: Vec<usize> = picked_rows.iter().map(|&r| ok[r]).collect();
        let result = wb.edit_queries(&corpus.paths, &picked, &Bar::new(g.quiet));
        wb.save_cache()?;
        let queries = result?;
        let projected: Vec<(String, Matrix)> = queries
            .into_iter()
            .map(|(name, rows)| Ok((name, wb.project(&rows)?)))
            .collect::<anyhow::Result<_>>()?;
        let answers = wb.same_picture_answers(&corpus.paths, &ok, &rows, &picked_rows)?;
        same_picture_copies = answers.iter().map(|a| a.len() - 1).sum();
        near_duplicate(&wb.project(&rows)?, &projected, &answers)?
    } else {
        Vec::new()
    };
    let results = Results {
        images: rows.len(),
        classes: corpus.classes.len(),
        head: wb
            .encoder
            .head()
            .map(|h| format!("{} ({})", h.kind().name(), h.description())),
        retrieval,
        edits,
        same_picture_copies,
    };
    if args.common.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&results))?);
    } else {
        print_table(&results);
    }
    Ok(())
}

fn print_table(r: &Results) {
    println!(
        "{} images, {} classes{}",
        r.images,
        r.classes,
        r.head
            .as_ref()
            .map_or(String::new(), |h| format!(", head: {h}"))
    );
    let q = &r.retrieval;
    println!("class retrieval (leave-one-out, {} queries)", q.queries);
    println!("  mAP@R    mAP      R@1      R@5      R@10     P@10");
    println!(
        "  {:<8.4} {:<8.4} {:<8.4} {:<8.4} {:<8.4} {:<8.4}",
        q.map_at_r, q.map, q.recall_at_1, q.recall_at_5, q.recall_at_10, q.precision_at_10
    );
    if !r.edits.is_empty() {
        println!(
            "near-duplicate retrieval ({} edited queries per edit, all {} images as database)",
            r.edits[0].queries, r.images
        );
        if r.same_picture_copies > 0 {
            println!(
                "  ({} other files show the same picture as an original; finding one counts as finding it)",
                r.same_picture_copies
            );
        }
        println!("  {:<16} {:<8} {:<8}", "edit", "R@1", "mAP");
        for e in &r.edits {
            println!("  {:<16} {:<8.4} {:<8.4}", e.edit, e.recall_at_1, e.map);
        }
    }
}

fn to_json(r: &Results) -> serde_json::Value {
    let q = &r.retrieval;
    serde_json::json!({
        "images": r.images,
        "classes": r.classes,
        "head": r.head,
        "class_retrieval": {
            "queries": q.queries, "map_at_r": q.map_at_r, "map": q.map,
            "recall_at_1": q.recall_at_1, "recall_at_5": q.recall_at_5,
            "recall_at_10": q.recall_at_10, "precision_at_10": q.precision_at_10,
        },
        "near_duplicate": r.edits.iter().map(|e| serde_json::json!({
            "edit": e.edit, "queries": e.queries, "recall_at_1": e.recall_at_1, "map": e.map,
        })).collect::<Vec<_>>(),
        "same_picture_copies": r.same_picture_copies,
    })
}
