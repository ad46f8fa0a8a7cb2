//! RGB8 image to the model's input tensor, exactly as the manifest says.
//!
//! The resize runs on the source region that ends up in the centre crop, with fractional
//! bounds: that gives the same pixels as resizing the whole image and cropping afterwards
//! (each output pixel sees the same input window and weights, as in Pillow's `resize(box=...)`),
//! for a fraction of the work.

use std::cell::RefCell;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;

use crate::manifest::{ChannelOrder, Interpolation, Layout, ModelManifest, ResizePolicy};
use crate::EmbedError;

/// Turns images into input tensors for one model; cheap to clone and share.
#[derive(Debug, Clone)]
pub struct Preprocessor {
    size: u32,
    policy: ResizePolicy,
    shorter_side: u32,
    alg: ResizeAlg,
    layout: Layout,
    order: ChannelOrder,
    /// Normalised value of every 0..=255 pixel value, per channel, in RGB order.
    lut: [[f32; 256]; 3],
}

thread_local! {
    // A resizer keeps scratch buffers between calls; one per thread avoids locking.
    static RESIZER: RefCell<Resizer> = RefCell::new(Resizer::new());
}

impl Preprocessor {
    pub fn new(manifest: &ModelManifest) -> Preprocessor {
        let p = &manifest.preprocess;
        let alg = match p.interpolation {
            Interpolation::Nearest => ResizeAlg::Nearest,
            Interpolation::Bilinear => ResizeAlg::Convolution(FilterType::Bilinear),
            // Pillow's bicubic is Keys' kernel with a = -0.5, i.e. Catmull-Rom.
            Interpolation::Bicubic => ResizeAlg::Convolution(FilterType::CatmullRom),
            Interpolation::Lanczos3 => ResizeAlg::Convolution(FilterType::Lanczos3),
        };
        let mut lut = [[0f32; 256]; 3];
        for (c, table) in lut.iter_mut().enumerate() {
            for (v, out) in table.iter_mut().enumerate() {
                *out = (v as f32 / p.pixel_divisor - p.mean[c]) / p.std[c];
            }
        }
        Preprocessor {
            size: manifest.input_size,
            policy: p.resize,
            shorter_side: p.shorter_side.unwrap_or(manifest.input_size),
            alg,
            layout: manifest.layout,
            order: manifest.channel_order,
            lut,
        }
    }

    /// The shorter side a source image needs for this preprocessing to lose nothing when it is
    /// decoded at a reduced scale: twice what the resize produces, so that the antialiased
    /// resize still does the filtering. Larger JPEGs may be decoded smaller (see
    /// [`crate::decode::decode_bytes_scaled`]).
    pub fn min_source_side(&self) -> u32 {
        let produced = match self.policy {
            ResizePolicy::ShorterSideCrop => self.shorter_side,
            ResizePolicy::Squash => self.size,
        };
        produced.saturating_mul(2)
    }

    /// Number of f32 values of one image's input tensor.
    pub fn input_len(&self) -> usize {
        3 * self.size as usize * self.size as usize
    }

    /// Side of the square model input.
    pub fn input_size(&self) -> u32 {
        self.size
    }

    /// The region of a `width` x `height` source that maps onto the model input, as
    /// (left, top, width, height) in source pixels.
    pub fn source_box(&self, width: u32, height: u32) -> (f64, f64, f64, f64) {
        let (w, h) = (f64::from(width), f64::from(height));
        match self.policy {
            ResizePolicy::Squash => (0.0, 0.0, w, h),
            ResizePolicy::ShorterSideCrop => {
                let s = u64::from(self.shorter_side);
                let (rw, rh) = if width <= height {
                    (s, s * u64::from(height) / u64::from(width))
                } else {
                    (s * u64::from(width) / u64::from(height), s)
                };
                let m = u64::from(self.size);
                let (left, top) = ((rw - m) / 2, (rh - m) / 2);
                let (sx, sy) = (w / rw as f64, h / rh as f64);
                (
                    left as f64 * sx,
                    top as f64 * sy,
                    m as f64 * sx,
                    m as f64 * sy,
                )
            }
        }
    }

    /// Resizes `img` to the model's input square (RGB8), without normalising.
    pub fn resize(&self, img: &RgbImage) -> Result<RgbImage, EmbedError> {
        let (width, height) = img.dimensions();
        let err = |reason: String| EmbedError::Decode {
            path: String::new(),
            reason,
        };
        let src = ImageRef::new(width, height, img.as_raw(), PixelType::U8x3)
            .map_err(|e| err(e.to_string()))?;
        let mut dst = Image::new(self.size, self.size, PixelType::U8x3);
        let (left, top, bw, bh) = self.source_box(width, height);
        let options = ResizeOptions::new()
            .resize_alg(self.alg)
            .crop(left, top, bw, bh);
        RESIZER
            .with(|r| r.borrow_mut().resize(&src, &mut dst, &options))
            .map_err(|e| err(format!("resize failed: {e}")))?;
        RgbImage::from_raw(self.size, self.size, dst.into_vec())
            .ok_or_else(|| err("resize buffer size".into()))
    }

    /// Writes the normalised input tensor of one image into `out` (`input_len` values).
    pub fn run(&self, img: &RgbImage, out: &mut [f32]) -> Result<(), EmbedError> {
        if out.len() != self.input_len() {
            return Err(EmbedError::WrongDimension {
                output: "input".into(),
                expected: self.input_len(),
                got: out.len(),
            });
        }
        let small = self.resize(img)?;
        let plane = self.size as usize * self.size as usize;
        let channels: [usize; 3] = match self.order {
            ChannelOrder::Rgb => [0, 1, 2],
            ChannelOrder::Bgr => [2, 1, 0],
        };
        let src = small.as_raw();
        // The layout is matched once, outside the per-pixel loops, and each loop reads one
        // lookup table: this is the hot loop of preprocessing after the resize.
        match self.layout {
            Layout::Nchw => {
                for (slot, dst) in out.chunks_exact_mut(plane).enumerate() {
                    let c = channels[slot];
                    let table = &self.lut[c];
                    for (d, px) in dst.iter_mut().zip(src.chunks_exact(3)) {
                        *d = table[usize::from(px[c])];
                    }
                }
            }
            Layout::Nhwc => {
                for (d, px) in out.chunks_exact_mut(3).zip(src.chunks_exact(3)) {
                    for (slot, &c) in channels.iter().enumerate() {
                        d[slot] = self.lut[c][usize::from(px[c])];
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A 4 x 4 input, resized to a shorter side of 8 and centre-cropped, normalised with mean
    /// 127 and standard deviation 128, in `layout` and `order`.
    fn manifest(layout: Layout, order: ChannelOrder) -> ModelManifest {
        let mut m = ModelManifest::parse(crate::manifest::tests::GOOD, Path::new(".")).unwrap();
        m.input_size = 4;
        m.preprocess.shorter_side = Some(8);
        m.layout = layout;
        m.channel_order = order;
        m
    }

    #[test]
    fn crop_box_matches_resize_then_centre_crop() {
        let p = Preprocessor::new(&manifest(Layout::Nchw, ChannelOrder::Rgb));
        // 20 x 10 -> 16 x 8, crop 4 at (6, 2), scale 1.25 in both axes.
        assert_eq!(p.source_box(20, 10), (7.5, 2.5, 5.0, 5.0));
        // 10 x 25 -> 8 x 20, crop at (2, 8).
        assert_eq!(p.source_box(10, 25), (2.5, 10.0, 5.0, 5.0));
    }

    #[test]
    fn constant_image_normalises_exactly_in_both_layouts() {
        let img = RgbImage::from_pixel(13, 7, image::Rgb([255, 127, 0]));
        for (layout, at) in [(Layout::Nchw, [0usize, 16, 32]), (Layout::Nhwc, [0, 1, 2])] {
            let p = Preprocessor::new(&manifest(layout, ChannelOrder::Rgb));
            let mut out = vec![0f32; p.input_len()];
            p.run(&img, &mut out).unwrap();
            assert_eq!(
                [out[at[0]], out[at[1]], out[at[2]]],
                [1.0, 0.0, -127.0 / 128.0]
            );
        }
        let p = Preprocessor::new(&manifest(Layout::Nchw, ChannelOrder::Bgr));
        let mut out = vec![0f32; p.input_len()];
        p.run(&img, &mut out).unwrap();
        assert_eq!([out[0], out[32]], [-127.0 / 128.0, 1.0]);
    }
}
