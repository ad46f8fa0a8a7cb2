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

    /// The cached thumbnail, if one was made already: a file read, no decoding. `None` when it
    /// is not cached yet or the id is unknown; [`Engine::thumbnail`] then makes it.
    pub fn cached_thumbnail(&self, id: u64, max_side: u32) -> Result<Option<Vec<u8>>, EngineError> {
        let Some(rec) = self.catalog.by_id(id)? else {
            return Ok(None);
        };
        Ok(std::fs::read(self.thumb_path(id, max_side, &rec.hash)).ok())
    }

    fn thumb_path(&self, id: u64, max_side: u32, hash: &str) -> PathBuf {
        let hash = hash.get(..16).unwrap_or(hash);
        self.thumb_dir().join(format!("{id}-{max_side}-{hash}.jpg"))
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
        let cached = self.thumb_path(id, max_side, &rec.hash);
        if let Ok(bytes) = std::fs::read(&cached) {
            return Ok(Some(bytes));
        }
        // A JPEG is decoded at the smallest DCT scale that still covers the thumbnail.
        let decoded = embed::decode_file_scaled(
            std::path::Path::new(&rec.path),
            &self.config.limits,
            max_side,
        );
        let img = match decoded {
            Ok((img, _)) => img,
            // The image was removed (and an upload's file deleted) while this ran: it is gone,
            // not broken.
            Err(_) if self.catalog.by_id(id)?.is_none() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let (w, h) = img.rgb.dimensions();
        let rgb = fit(img.rgb, w, h, max_side);
        let mut bytes = Vec::new();
        JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY)
            .encode_image(&rgb)
            .map_err(|e| EngineError::invalid(format!("cannot encode thumbnail: {e}")))?;
        std::fs::create_dir_all(&dir).map_err(|e| EngineError::io(&dir, e))?;
        crate::files::write_durable(&cached, &bytes).map_err(|e| EngineError::io(&cached, e))?;
        // A `remove` of this id may have run while the thumbnail was made, after its own
        // cleanup: the catalog no longer has the record, so the file must go. (A `remove` that
        // runs after this check deletes the file itself, as it was written before.)
        let still = self.catalog.by_id(id)?;
        if still.is_none_or(|r| r.hash != rec.hash) {
            let _ = std::fs::remove_file(&cached);
        }
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
