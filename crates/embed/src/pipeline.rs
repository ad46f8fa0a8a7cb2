//! Many files to embeddings with all cores busy and memory bounded by a chunk size.

use std::path::PathBuf;

use rayon::prelude::*;

use crate::decode::{decode_file_scaled, DecodeLimits};
use crate::embedder::{with_source, Embedder, Embedding};
use crate::EmbedError;

/// Facts about the decoded image, returned with its embedding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// Size after EXIF orientation.
    pub width: u32,
    pub height: u32,
    pub exif_taken: Option<String>,
}

/// Images decoded and preprocessed per round; with a 224 x 224 model each costs ~600 KB of
/// input tensor, so a round stays under ~40 MB whatever the number of paths.
const MIN_CHUNK: usize = 16;

/// Decodes and preprocesses in parallel on the embedder's threads, runs the model in batches,
/// and hands each result to `on_result` as (index into `paths`, result), in no fixed order.
/// Files are processed in rounds of a bounded size, so memory stays flat for any number of
/// paths; a bad file gives its error and the others go on.
pub fn embed_paths(
    embedder: &Embedder,
    paths: &[PathBuf],
    limits: &DecodeLimits,
    on_result: &mut dyn FnMut(usize, Result<(Embedding, ImageInfo), EmbedError>),
) {
    let pre = embedder.preprocessor();
    let len = pre.input_len();
    let threads = embedder.pool.current_num_threads();
    let chunk = (embedder.preferred_batch() * threads * 2).max(MIN_CHUNK);
    for (c, group) in paths.chunks(chunk).enumerate() {
        let base = c * chunk;
        // Decode + preprocess the round in parallel, each image straight into its slot of the
        // round's input tensor; then close the gaps the bad images left.
        let mut input = vec![0f32; len * group.len()];
        let prepared: Vec<Result<ImageInfo, EmbedError>> = embedder.pool.install(|| {
            input
                .par_chunks_mut(len)
                .zip(group.par_iter())
                .map(|(slot, path)| {
                    let (img, (width, height)) =
                        decode_file_scaled(path, limits, pre.min_source_side())?;
                    pre.run(&img.rgb, slot)
                        .map_err(|e| with_source(e, &img.source))?;
                    Ok(ImageInfo {
                        width,
                        height,
                        exif_taken: img.exif_taken,
                    })
                })
                .collect()
        });
        let mut ok_index = Vec::new();
        let mut infos = Vec::new();
        for (i, r) in prepared.into_iter().enumerate() {
            match r {
                Ok(info) => {
                    let kept = ok_index.len();
                    if kept != i {
                        input.copy_within(i * len..(i + 1) * len, kept * len);
                    }
                    ok_index.push(base + i);
                    infos.push(info);
                }
                Err(e) => on_result(base + i, Err(e)),
            }
        }
        input.truncate(ok_index.len() * len);
        if ok_index.is_empty() {
            continue;
        }
        match embedder.run_model(&input, ok_index.len()) {
            Ok(embeddings) => {
                for ((i, e), info) in ok_index.into_iter().zip(embeddings).zip(infos) {
                    on_result(i, Ok((e, info)));
                }
            }
            Err(e) => {
                // A model failure concerns the whole round: report it for every image in it.
                let reason = e.to_string();
                for i in ok_index {
                    on_result(
                        i,
                        Err(EmbedError::Model {
                            reason: reason.clone(),
                        }),
                    );
                }
            }
        }
    }
}
