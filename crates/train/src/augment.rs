//! Augmentations for self-supervised training (SimCLR-style): random resized crop, horizontal
//! flip and colour jitter, and the dataset of embedded views they produce.
//!
//! The crate never runs the embedding model itself: callers pass a closure from image to
//! vector, so `train` does not depend on the runtime.

use image::imageops::{self, FilterType};
use image::RgbImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{invalid, Result, TrainError};
use crate::matrix::Matrix;
use crate::trainer::Dataset;

/// Augmentation strengths.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AugmentConfig {
    /// Side of the square output. The embedder resizes anyway; 256 matches its first resize.
    pub out_size: u32,
    /// Range of the crop's area as a fraction of the image.
    pub scale: (f32, f32),
    /// Range of the crop's aspect ratio (width / height).
    pub ratio: (f32, f32),
    pub flip_probability: f32,
    /// Brightness, contrast and saturation factors are drawn from `1 +- value`.
    pub brightness: f32,
    pub contrast: f32,
    pub saturation: f32,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            out_size: 256,
            scale: (0.3, 1.0),
            ratio: (0.75, 4.0 / 3.0),
            flip_probability: 0.5,
            brightness: 0.3,
            contrast: 0.3,
            saturation: 0.3,
        }
    }
}

impl AugmentConfig {
    pub fn validate(&self) -> Result<()> {
        let (s0, s1) = self.scale;
        let (r0, r1) = self.ratio;
        let jitter_ok = [self.brightness, self.contrast, self.saturation]
            .iter()
            .all(|j| (0.0..1.0).contains(j));
        if self.out_size == 0
            || !(0.0 < s0 && s0 <= s1 && s1 <= 1.0)
            || !(0.0 < r0 && r0 <= r1)
            || !(0.0..=1.0).contains(&self.flip_probability)
            || !jitter_ok
        {
            return Err(invalid(format!("invalid augmentation settings {self:?}")));
        }
        Ok(())
    }
}

/// The random generator for image `index` under `seed`: views of one image do not depend on
/// which other images were processed before it, so caches and parallel callers stay
/// reproducible.
pub fn view_rng(seed: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index);
    rng
}

/// One random view of `img`.
pub fn augment(img: &RgbImage, cfg: &AugmentConfig, rng: &mut ChaCha8Rng) -> Result<RgbImage> {
    cfg.validate()?;
    if img.width() == 0 || img.height() == 0 {
        return Err(TrainError::Image {
            reason: "cannot augment an empty image".into(),
        });
    }
    let mut out = random_resized_crop(img, cfg, rng);
    if rng.gen::<f32>() < cfg.flip_probability {
        imageops::flip_horizontal_in_place(&mut out);
    }
    let b = 1.0 + rng.gen_range(-cfg.brightness..=cfg.brightness);
    let c = 1.0 + rng.gen_range(-cfg.contrast..=cfg.contrast);
    let s = 1.0 + rng.gen_range(-cfg.saturation..=cfg.saturation);
    colour_jitter(&mut out, b, c, s);
    Ok(out)
}

/// Crops a random region of random area and aspect ratio and resizes it to the output square
/// (Szegedy et al.'s "Inception crop"). Falls back to the whole image after ten misses.
pub fn random_resized_crop(img: &RgbImage, cfg: &AugmentConfig, rng: &mut ChaCha8Rng) -> RgbImage {
    let (w, h) = (img.width() as f32, img.height() as f32);
    let mut region = (0, 0, img.width(), img.height());
    for _ in 0..10 {
        let area = w * h * rng.gen_range(cfg.scale.0..=cfg.scale.1);
        let log_ratio = rng.gen_range(cfg.ratio.0.ln()..=cfg.ratio.1.ln());
        let ratio = log_ratio.exp();
        let cw = (area * ratio).sqrt().round();
        let ch = (area / ratio).sqrt().round();
        if cw >= 1.0 && ch >= 1.0 && cw <= w && ch <= h {
            let (cw, ch) = (cw as u32, ch as u32);
            let x = rng.gen_range(0..=img.width() - cw);
            let y = rng.gen_range(0..=img.height() - ch);
            region = (x, y, cw, ch);
            break;
        }
    }
    let crop = imageops::crop_imm(img, region.0, region.1, region.2, region.3).to_image();
    imageops::resize(&crop, cfg.out_size, cfg.out_size, FilterType::Triangle)
}

/// Multiplies brightness by `b`, scales contrast about the image's mean grey by `c` and
/// saturation about each pixel's grey by `s`.
pub fn colour_jitter(img: &mut RgbImage, b: f32, c: f32, s: f32) {
    let grey = |p: [f32; 3]| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
    let n = (img.width() * img.height()).max(1) as f32;
    let mean: f32 = img
        .pixels()
        .map(|p| grey(p.0.map(f32::from)) * b)
        .sum::<f32>()
        / n;
    for p in img.pixels_mut() {
        let mut v = p.0.map(|x| f32::from(x) * b);
        v = v.map(|x| (x - mean) * c + mean);
        let g = grey(v);
        p.0 = v.map(|x| ((x - g) * s + g).round().clamp(0.0, 255.0) as u8);
    }
}

/// Builds the self-supervised dataset: every image contributes `views_per_image` embedded
/// views that share its label (its insertion order).
pub struct ViewDatasetBuilder {
    cfg: AugmentConfig,
    views_per_image: usize,
    seed: u64,
    rows: Vec<f32>,
    labels: Vec<usize>,
    dim: Option<usize>,
    images: usize,
}

impl ViewDatasetBuilder {
    pub fn new(cfg: AugmentConfig, views_per_image: usize, seed: u64) -> Result<Self> {
        cfg.validate()?;
        if views_per_image < 2 {
            return Err(invalid(
                "self-supervised training needs at least 2 views per image",
            ));
        }
        Ok(Self {
            cfg,
            views_per_image,
            seed,
            rows: Vec::new(),
            labels: Vec::new(),
            dim: None,
            images: 0,
        })
    }

    /// The augmented views the next `add_image` call will embed; useful to callers that cache
    /// embeddings or handle embedding errors themselves, then call [`Self::add_views`].
    pub fn next_views(&self, img: &RgbImage) -> Result<Vec<RgbImage>> {
        let mut rng = view_rng(self.seed, self.images as u64);
        (0..self.views_per_image)
            .map(|_| augment(img, &self.cfg, &mut rng))
            .collect()
    }

    /// Augments `img`, embeds each view with `embed` and adds the views as one class.
    pub fn add_image(
        &mut self,
        img: &RgbImage,
        embed: &dyn Fn(&RgbImage) -> Vec<f32>,
    ) -> Result<()> {
        let views = self.next_views(img)?;
        self.add_views(views.iter().map(embed).collect())
    }

    /// Adds already embedded views of one image as one class.
    pub fn add_views(&mut self, views: Vec<Vec<f32>>) -> Result<()> {
        if views.len() != self.views_per_image {
            return Err(TrainError::WrongDimension {
                expected: self.views_per_image,
                got: views.len(),
            });
        }
        let dim = *self.dim.get_or_insert(views[0].len());
        if let Some(bad) = views.iter().find(|v| v.len() != dim || v.is_empty()) {
            return Err(TrainError::WrongDimension {
                expected: dim,
                got: bad.len(),
            });
        }
        for v in views {
            self.rows.extend_from_slice(&v);
            self.labels.push(self.images);
        }
        self.images += 1;
        Ok(())
    }

    /// The dataset of all views added so far.
    pub fn finish(self) -> Result<Dataset> {
        let dim = self.dim.unwrap_or(0);
        Dataset::new(
            Matrix::from_vec(self.labels.len(), dim, self.rows)?,
            self.labels,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn card() -> RgbImage {
        RgbImage::from_fn(80, 60, |x, y| Rgb([(x * 3) as u8, (y * 4) as u8, 100]))
    }

    #[test]
    fn views_are_deterministic_per_seed_and_image() {
        let cfg = AugmentConfig {
            out_size: 32,
            ..AugmentConfig::default()
        };
        let a = augment(&card(), &cfg, &mut view_rng(1, 0)).unwrap();
        let b = augment(&card(), &cfg, &mut view_rng(1, 0)).unwrap();
        let c = augment(&card(), &cfg, &mut view_rng(1, 1)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.dimensions(), (32, 32));
    }

    #[test]
    fn jitter_identity_and_greyscale() {
        let mut img = card();
        let orig = img.clone();
        colour_jitter(&mut img, 1.0, 1.0, 1.0);
        assert_eq!(img, orig);
        colour_jitter(&mut img, 1.0, 1.0, 0.0);
        let p = img.get_pixel(10, 10).0;
        assert!(
            p[0].abs_diff(p[1]) <= 1 && p[1].abs_diff(p[2]) <= 1,
            "{p:?}"
        );
    }

    #[test]
    fn builder_labels_views_by_image_and_checks_dimensions() {
        let cfg = AugmentConfig {
            out_size: 16,
            ..AugmentConfig::default()
        };
        let mut b = ViewDatasetBuilder::new(cfg, 3, 5).unwrap();
        // A toy "embedding": mean colour of the view.
        let embed = |v: &RgbImage| {
            let n = (v.width() * v.height()) as f32;
            (0..3)
                .map(|k| v.pixels().map(|p| f32::from(p.0[k])).sum::<f32>() / n)
                .collect::<Vec<f32>>()
        };
        b.add_image(&card(), &embed).unwrap();
        b.add_image(&card(), &embed).unwrap();
        assert!(matches!(
            b.add_views(vec![vec![1.0; 2]; 3]),
            Err(TrainError::WrongDimension { .. })
        ));
        assert!(b.add_views(vec![vec![1.0; 3]; 2]).is_err());
        let ds = b.finish().unwrap();
        assert_eq!(ds.labels, vec![0, 0, 0, 1, 1, 1]);
        assert_eq!(ds.dim(), 3);
        assert!(ViewDatasetBuilder::new(cfg, 1, 0).is_err());
    }
}
