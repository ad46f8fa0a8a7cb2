//! The near-duplicate edits used to evaluate robustness: each turns a photo into a copy that a
//! person would call "the same picture". All are deterministic.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::imageops::{self, FilterType};
use image::{ImageFormat, Rgb, RgbImage};

use crate::error::{Result, TrainError};

/// One near-duplicate edit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Edit {
    /// Re-encoded as JPEG at quality 15.
    Jpeg15,
    /// The central 70% of width and height.
    CenterCrop70,
    /// Half the size, then rotated 5 degrees counter-clockwise about the centre (black corners).
    HalfRotate5,
    /// Contrast x1.3 about mid-grey, then brightness +20 levels.
    BrightnessContrast,
    /// Mirrored left to right.
    HorizontalFlip,
}

impl Edit {
    /// Every edit, in report order.
    pub const ALL: [Edit; 5] = [
        Edit::Jpeg15,
        Edit::CenterCrop70,
        Edit::HalfRotate5,
        Edit::BrightnessContrast,
        Edit::HorizontalFlip,
    ];

    /// Stable short name (used in reports and cache keys).
    pub fn name(self) -> &'static str {
        match self {
            Edit::Jpeg15 => "jpeg-q15",
            Edit::CenterCrop70 => "crop-70",
            Edit::HalfRotate5 => "half-rot5",
            Edit::BrightnessContrast => "bright-contrast",
            Edit::HorizontalFlip => "hflip",
        }
    }

    /// Applies the edit to a copy of `img`.
    pub fn apply(self, img: &RgbImage) -> Result<RgbImage> {
        if img.width() == 0 || img.height() == 0 {
            return Err(TrainError::Image {
                reason: "cannot edit an empty image".into(),
            });
        }
        Ok(match self {
            Edit::Jpeg15 => jpeg_roundtrip(img, 15)?,
            Edit::CenterCrop70 => center_crop(img, 0.7),
            Edit::HalfRotate5 => {
                let (w, h) = ((img.width() / 2).max(1), (img.height() / 2).max(1));
                rotate(&imageops::resize(img, w, h, FilterType::Triangle), 5.0)
            }
            Edit::BrightnessContrast => map_levels(img, 1.3, 20.0),
            Edit::HorizontalFlip => imageops::flip_horizontal(img),
        })
    }
}

/// What decides that two files show the same picture: a data set may hold one photo saved twice
/// (flowers17 has 29 such sets by this rule, re-encoded, their pixels a level or two apart), and an
/// evaluation must count such a copy as the original rather than as a distractor. The rule looks
/// only at pixels, never at a model's score: the same width and height, and 32x32 grey
/// thumbnails within 3 levels of each other on average. Re-encodings pass; a crop, a resize, a
/// mirror image or another shot of the same scene does not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PictureSignature {
    width: u32,
    height: u32,
    thumbnail: Vec<u8>,
}

impl PictureSignature {
    const SIDE: u32 = 32;
    /// The largest mean absolute difference, in grey levels, between two thumbnails of one picture.
    const MAX_MEAN_DIFF: u32 = 3;

    pub fn of(img: &RgbImage) -> PictureSignature {
        let grey = imageops::grayscale(img);
        let thumbnail =
            imageops::resize(&grey, Self::SIDE, Self::SIDE, FilterType::Triangle).into_raw();
        PictureSignature {
            width: img.width(),
            height: img.height(),
            thumbnail,
        }
    }

    /// Whether `self` and `other` are the same picture (see [`PictureSignature`]).
    pub fn same_picture(&self, other: &PictureSignature) -> bool {
        let diff: u32 = self
            .thumbnail
            .iter()
            .zip(&other.thumbnail)
            .map(|(a, b)| u32::from(a.abs_diff(*b)))
            .sum();
        (self.width, self.height) == (other.width, other.height)
            && diff <= Self::MAX_MEAN_DIFF * Self::SIDE * Self::SIDE
    }
}

/// Encodes as JPEG at `quality` and decodes again.
pub fn jpeg_roundtrip(img: &RgbImage, quality: u8) -> Result<RgbImage> {
    let mut buf = Vec::new();
    JpegEncoder::new_with_quality(&mut buf, quality)
        .encode_image(img)
        .map_err(|e| TrainError::Image {
            reason: format!("JPEG encoding: {e}"),
        })?;
    let decoded =
        image::load(Cursor::new(buf), ImageFormat::Jpeg).map_err(|e| TrainError::Image {
            reason: format!("JPEG decoding: {e}"),
        })?;
    Ok(decoded.to_rgb8())
}

/// The centred crop keeping `fraction` of each side (at least one pixel).
pub fn center_crop(img: &RgbImage, fraction: f32) -> RgbImage {
    let w = ((img.width() as f32 * fraction).round() as u32).clamp(1, img.width());
    let h = ((img.height() as f32 * fraction).round() as u32).clamp(1, img.height());
    let (x, y) = ((img.width() - w) / 2, (img.height() - h) / 2);
    imageops::crop_imm(img, x, y, w, h).to_image()
}

/// `v -> (v - 128) * contrast + 128 + brightness`, clamped to 0..=255, on every channel.
pub fn map_levels(img: &RgbImage, contrast: f32, brightness: f32) -> RgbImage {
    let mut out = img.clone();
    for p in out.pixels_mut() {
        for c in p.0.iter_mut() {
            *c = ((f32::from(*c) - 128.0) * contrast + 128.0 + brightness)
                .round()
                .clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// Rotates counter-clockwise by `degrees` about the centre on a canvas of the same size, with
/// bilinear sampling; pixels that come from outside the source are black.
pub fn rotate(img: &RgbImage, degrees: f32) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let (s, c) = degrees.to_radians().sin_cos();
    let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
    RgbImage::from_fn(w, h, |x, y| {
        // Inverse mapping: where in the source does output pixel (x, y) come from? In image
        // coordinates y points down, so a counter-clockwise turn on screen uses +s here.
        let (dx, dy) = (x as f32 - cx, y as f32 - cy);
        let sx = c * dx - s * dy + cx;
        let sy = s * dx + c * dy + cy;
        bilinear(img, sx, sy)
    })
}

fn bilinear(img: &RgbImage, x: f32, y: f32) -> Rgb<u8> {
    let (w, h) = (img.width() as f32, img.height() as f32);
    if x < -0.5 || y < -0.5 || x > w - 0.5 || y > h - 0.5 {
        return Rgb([0, 0, 0]);
    }
    let x = x.clamp(0.0, w - 1.0);
    let y = y.clamp(0.0, h - 1.0);
    let (x0, y0) = (x.floor() as u32, y.floor() as u32);
    let (x1, y1) = (
        (x0 + 1).min(img.width() - 1),
        (y0 + 1).min(img.height() - 1),
    );
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let mut out = [0u8; 3];
    for (k, o) in out.iter_mut().enumerate() {
        let p = |xx, yy| f32::from(img.get_pixel(xx, yy).0[k]);
        let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
        let bottom = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
        *o = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
    }
    Rgb(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth test card: red grows to the right, green downwards, blue constant.
    fn card(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            Rgb([(x * 255 / (w - 1)) as u8, (y * 255 / (h - 1)) as u8, 90])
        })
    }

    fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
        let s: f64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).abs())
            .sum();
        s / a.as_raw().len() as f64
    }

    #[test]
    fn a_re_encoding_is_the_same_picture_and_an_edit_or_another_picture_is_not() {
        let img = card(96, 64);
        let sig = PictureSignature::of(&img);
        assert!(sig.same_picture(&PictureSignature::of(&img)));
        let reencoded = jpeg_roundtrip(&img, 90).unwrap();
        assert!(sig.same_picture(&PictureSignature::of(&reencoded)));
        for e in [
            Edit::CenterCrop70,
            Edit::HalfRotate5,
            Edit::HorizontalFlip,
            Edit::BrightnessContrast,
        ] {
            let edited = PictureSignature::of(&e.apply(&img).unwrap());
            assert!(!sig.same_picture(&edited), "{}", e.name());
        }
        // The same size and a different picture.
        let other = RgbImage::from_fn(96, 64, |x, y| Rgb([(y * 4) as u8, (x * 2) as u8, 200]));
        assert!(!sig.same_picture(&PictureSignature::of(&other)));
    }

    #[test]
    fn every_edit_is_deterministic_and_changes_the_image() {
        let img = card(64, 48);
        for e in Edit::ALL {
            let a = e.apply(&img).unwrap();
            assert_eq!(a, e.apply(&img).unwrap(), "{}", e.name());
            assert_ne!(a, img, "{} left the image unchanged", e.name());
        }
    }

    #[test]
    fn geometry_of_crop_flip_and_half_rotate() {
        let img = card(64, 48);
        let crop = Edit::CenterCrop70.apply(&img).unwrap();
        // round(0.7 * 64) = 45, round(0.7 * 48) = 34; offsets (64-45)/2 = 9, (48-34)/2 = 7.
        assert_eq!(crop.dimensions(), (45, 34));
        assert_eq!(crop.get_pixel(0, 0), img.get_pixel(9, 7));
        let flip = Edit::HorizontalFlip.apply(&img).unwrap();
        assert_eq!(flip.get_pixel(0, 5), img.get_pixel(63, 5));
        let rot = Edit::HalfRotate5.apply(&img).unwrap();
        assert_eq!(rot.dimensions(), (32, 24));
        // The corner is outside the rotated source, the centre is not.
        assert_eq!(rot.get_pixel(0, 0), &Rgb([0, 0, 0]));
        assert_eq!(rot.get_pixel(16, 12).0[2], 90);
    }

    #[test]
    fn rotation_by_zero_is_identity_and_direction_is_counter_clockwise() {
        let img = card(21, 21);
        assert_eq!(rotate(&img, 0.0), img);
        // A 90 degree counter-clockwise turn brings the right edge (high red) to the top.
        let r = rotate(&img, 90.0);
        assert!(r.get_pixel(10, 0).0[0] > 240, "{:?}", r.get_pixel(10, 0));
    }

    #[test]
    fn level_mapping_by_hand() {
        let img = RgbImage::from_pixel(2, 2, Rgb([100, 128, 250]));
        let out = Edit::BrightnessContrast.apply(&img).unwrap();
        // (100-128)*1.3+148 = 111.6 -> 112; 128 -> 148; (250-128)*1.3+148 = 306.6 -> 255.
        assert_eq!(out.get_pixel(1, 1), &Rgb([112, 148, 255]));
    }

    #[test]
    fn jpeg_q15_is_lossy_but_close() {
        let img = card(64, 48);
        let out = Edit::Jpeg15.apply(&img).unwrap();
        assert_eq!(out.dimensions(), img.dimensions());
        let d = mean_abs_diff(&img, &out);
        assert!(d > 0.0 && d < 12.0, "mean abs diff {d}");
    }

    #[test]
    fn empty_image_is_an_error() {
        assert!(Edit::Jpeg15.apply(&RgbImage::new(0, 0)).is_err());
    }
}
