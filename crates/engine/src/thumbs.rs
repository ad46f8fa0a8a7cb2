//! JPEG thumbnails, made on first request and cached under `data_dir/thumbnails`.
//!
//! The cache file name holds the image id, the size and the first hex digits of the content hash,
//! so a changed file gets a fresh thumbnail and a stale one is never served.

use std::path::PathBuf;

use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;

use crate::{Engine, EngineError};

/// Thumbnail sizes outside this range are rejected (too small to see, or no longer a thumbnail).
pub const THUMB_SIDES: std::ops::RangeInclusive<u32> = 16..=2048;
const JPEG_QUALITY: u8 = 85;

impl Engine {
    fn thumb_dir(&self) -> PathBuf {
        self.config.data_dir.join("thumbnails")
    }

    /// JPEG bytes of the image scaled to fit `max_side` (never enlarged); `None` if the id is
    /// unknown.
    pub fn thumbnail(&self, id: u64, max_side: u32) -> Result<Option<Vec<u8>>, EngineError> {
        if !THUMB_SIDES.contains(&max_side) {
            return Err(EngineError::invalid(format!(
                "thumbnail size must be between {} and {}, got {max_side}",
                THUMB_SIDES.start(),
                THUMB_SIDES.end()
            )));
        }
        let Some(rec) = self.catalog.by_id(id)? else {
            return Ok(None);
        };
        let dir = self.thumb_dir();
        let hash = rec.hash.get(..16).unwrap_or(&rec.hash);
        let cached = dir.join(format!("{id}-{max_side}-{hash}.jpg"));
        if let Ok(bytes) = std::fs::read(&cached) {
            return Ok(Some(bytes));
        }
        let img = embed::decode_file(std::path::Path::new(&rec.path), &self.config.limits)?;
        let (w, h) = img.rgb.dimensions();
        let rgb = fit(img.rgb, w, h, max_side);
        let mut bytes = Vec::new();
        JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY)
            .encode_image(&rgb)
            .map_err(|e| EngineError::invalid(format!("cannot encode thumbnail: {e}")))?;
        // Written to a temporary name and renamed, so a reader never sees half a file.
        std::fs::create_dir_all(&dir).map_err(|e| EngineError::io(&dir, e))?;
        let tmp = dir.join(format!(".{id}-{max_side}.tmp"));
        std::fs::write(&tmp, &bytes).map_err(|e| EngineError::io(&tmp, e))?;
        std::fs::rename(&tmp, &cached).map_err(|e| EngineError::io(&cached, e))?;
        Ok(Some(bytes))
    }

    /// Deletes cached thumbnails of an id (best effort: a leftover file is only wasted space).
    pub(crate) fn forget_thumbnails(&self, id: u64) {
        let prefix = format!("{id}-");
        if let Ok(entries) = std::fs::read_dir(self.thumb_dir()) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// Scales to fit `max_side` keeping the aspect ratio.
fn fit(rgb: image::RgbImage, w: u32, h: u32, max_side: u32) -> image::RgbImage {
    if w.max(h) <= max_side {
        return rgb;
    }
    let scale = max_side as f64 / w.max(h) as f64;
    let nw = ((w as f64 * scale).round() as u32).max(1);
    let nh = ((h as f64 * scale).round() as u32).max(1);
    image::imageops::resize(&rgb, nw, nh, FilterType::Triangle)
}
