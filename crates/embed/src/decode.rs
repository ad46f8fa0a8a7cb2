//! Image files to RGB8: format sniffing, limits checked before decoding, EXIF orientation and
//! date, and the colour conversions (grayscale, CMYK, 16-bit, alpha) every model input needs.

use std::io::{Cursor, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use image::{DynamicImage, ImageFormat, ImageReader, RgbImage};

use crate::{EmbedError, ImageInfo};

/// File extensions (lower case) that are treated as images when folders are listed (indexing,
/// evaluation corpora).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"];

/// Bounds on what a single input may cost before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest width x height accepted, read from the header (decompression-bomb guard).
    pub max_pixels: u64,
    /// Largest file accepted, checked before the file is read.
    pub max_file_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_pixels: 100_000_000,
            max_file_bytes: 64 << 20,
        }
    }
}

/// A decoded image, upright (EXIF orientation applied), opaque RGB8.
#[derive(Debug, Clone)]
pub struct DecodedImage {
    pub rgb: RgbImage,
    /// The file path or source label, for error messages and results.
    pub source: String,
    /// EXIF DateTimeOriginal as `YYYY-MM-DDTHH:MM:SS`, followed by the UTC offset
    /// (`+hh:mm`) when the file records OffsetTimeOriginal; a local time otherwise.
    pub exif_taken: Option<String>,
}

/// The formats compiled in; anything else that `image` recognises is reported as unsupported.
const SUPPORTED: [ImageFormat; 6] = [
    ImageFormat::Jpeg,
    ImageFormat::Png,
    ImageFormat::WebP,
    ImageFormat::Gif,
    ImageFormat::Bmp,
    ImageFormat::Tiff,
];

/// Reads and decodes one image file. The size limit is checked on the file's metadata before
/// reading, so an oversized file costs nothing.
pub fn decode_file(path: &Path, limits: &DecodeLimits) -> Result<DecodedImage, EmbedError> {
    decode_file_scaled(path, limits, 0).map(|(img, _)| img)
}

/// Like [`decode_file`], for a model input: a JPEG whose shorter side is at least twice
/// `min_side` may be decoded at 1/2, 1/4 or 1/8 scale in the DCT domain, never below
/// `min_side` (see [`decode_bytes_scaled`]). Also returns the image's full size, upright.
pub fn decode_file_scaled(
    path: &Path,
    limits: &DecodeLimits,
    min_side: u32,
) -> Result<(DecodedImage, (u32, u32)), EmbedError> {
    let source = path.display().to_string();
    let bytes = read_bounded(path, &source, limits)?;
    decode_inner(&bytes, &source, limits, min_side).map(|(img, full, _)| (img, full))
}

/// An image held in memory decoded once for everything a caller that stores it needs: the
/// image for the model (scaled as [`decode_bytes_scaled`] does), its full size and capture time,
/// and the usual file extension of the format its bytes are in (never a client's file name's).
pub fn decode_bytes_info(
    bytes: &[u8],
    source: &str,
    limits: &DecodeLimits,
    min_side: u32,
) -> Result<(DecodedImage, ImageInfo, &'static str), EmbedError> {
    let (img, (width, height), format) = decode_inner(bytes, source, limits, min_side)?;
    let info = ImageInfo {
        width,
        height,
        exif_taken: img.exif_taken.clone(),
    };
    let ext = format.extensions_str().first().copied().unwrap_or("img");
    Ok((img, info, ext))
}

/// Decodes an image for a model whose preprocessing needs a shorter side of `min_side`
/// (`Preprocessor::min_source_side`). A 12-megapixel photo is then decoded at a quarter of its
/// width and height, which skips most of the inverse DCT and colour conversion, and which the
/// antialiased resize to the model's input cannot tell apart from the full decode (the upload
/// latency benchmark halved for such photos). Other formats, smaller JPEGs and JPEGs the scaling decoder
/// cannot read are decoded in full, as by [`decode_bytes`].
pub fn decode_bytes_scaled(
    bytes: &[u8],
    source: &str,
    limits: &DecodeLimits,
    min_side: u32,
) -> Result<DecodedImage, EmbedError> {
    decode_inner(bytes, source, limits, min_side).map(|(img, ..)| img)
}

fn read_bounded(path: &Path, source: &str, limits: &DecodeLimits) -> Result<Vec<u8>, EmbedError> {
    let io_err = |e| EmbedError::Io {
        path: source.to_string(),
        source: e,
    };
    let file = std::fs::File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    if len > limits.max_file_bytes {
        return Err(EmbedError::FileTooLarge {
            path: source.to_string(),
            bytes: len,
            max_bytes: limits.max_file_bytes,
        });
    }
    // `take` bounds the read even if the file grows between the stat and the read.
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limits.max_file_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    Ok(bytes)
}

/// The scale denominator (2, 4 or 8) that keeps the shorter side of a `width` x `height` image
/// at least `min_side`, or None when the image is not at least twice that.
fn jpeg_scale(width: u32, height: u32, min_side: u32) -> Option<u32> {
    let shorter = width.min(height);
    if min_side == 0 {
        return None;
    }
    [8, 4, 2].into_iter().find(|d| shorter / d >= min_side)
}

/// A JPEG of full size `size` decoded at 1/`denom` scale by libjpeg-turbo when the `turbojpeg`
/// feature is on; None without it or when libjpeg-turbo fails, and the caller then uses the
/// pure-Rust decoders.
fn decode_jpeg_turbo(bytes: &[u8], size: (u32, u32), denom: u32) -> Option<RgbImage> {
    #[cfg(feature = "turbojpeg")]
    {
        crate::turbo::decode_rgb(bytes, size, denom)
    }
    #[cfg(not(feature = "turbojpeg"))]
    {
        let _ = (bytes, size, denom);
        None
    }
}

/// Decodes a JPEG at 1/`denom` scale in the DCT domain (libjpeg-turbo with the `turbojpeg`
/// feature, else or on its failure jpeg-decoder's scaled IDCT); None when it cannot (a colour
/// model other than RGB or grey, or any decoder error), so the caller decodes in full.
fn decode_jpeg_scaled(
    bytes: &[u8],
    width: u32,
    height: u32,
    denom: u32,
    min_side: u32,
) -> Option<RgbImage> {
    // libjpeg-turbo gives exactly the rounded-up 1/denom size, which `jpeg_scale` chose to keep
    // the shorter side at least `min_side`.
    if let Some(rgb) = decode_jpeg_turbo(bytes, (width, height), denom) {
        return Some(rgb);
    }
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    let want = |full: u32| u16::try_from(full.div_ceil(denom)).ok();
    let (w, h) = decoder.scale(want(width)?, want(height)?).ok()?;
    let (w, h) = (u32::from(w), u32::from(h));
    if w.min(h) < min_side {
        return None;
    }
    let pixels = decoder.decode().ok()?;
    match decoder.info()?.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => RgbImage::from_raw(w, h, pixels),
        jpeg_decoder::PixelFormat::L8 => {
            let grey = image::GrayImage::from_raw(w, h, pixels)?;
            Some(DynamicImage::ImageLuma8(grey).into_rgb8())
        }
        _ => None,
    }
}

/// Decodes an image held in memory; `source` names it in errors.
pub fn decode_bytes(
    bytes: &[u8],
    source: &str,
    limits: &DecodeLimits,
) -> Result<DecodedImage, EmbedError> {
    decode_inner(bytes, source, limits, 0).map(|(img, ..)| img)
}

/// Checks what [`decode_bytes`] checks before it decodes a pixel: size, signature, supported
/// format, a readable header, the pixel limit and (for JPEG) an end-of-image marker. Returns the image's stored width and height
/// (before EXIF orientation). Costs a header parse, not a decode, so callers can refuse a bad
/// input cheaply before storing it.
pub fn probe_bytes(
    bytes: &[u8],
    source: &str,
    limits: &DecodeLimits,
) -> Result<(u32, u32), EmbedError> {
    probe(bytes, source, limits).map(|(_, w, h)| (w, h))
}

fn probe(
    bytes: &[u8],
    source: &str,
    limits: &DecodeLimits,
) -> Result<(ImageFormat, u32, u32), EmbedError> {
    let path = || source.to_string();
    if bytes.is_empty() {
        return Err(EmbedError::Empty { path: path() });
    }
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(EmbedError::FileTooLarge {
            path: path(),
            bytes: bytes.len() as u64,
            max_bytes: limits.max_file_bytes,
        });
    }
    let format = image::guess_format(bytes).map_err(|_| EmbedError::Unsupported {
        path: path(),
        reason: "unrecognised file signature".into(),
    })?;
    if !SUPPORTED.contains(&format) {
        return Err(EmbedError::Unsupported {
            path: path(),
            reason: format!("{format:?} is not supported"),
        });
    }
    let decode_err = |reason: String| EmbedError::Decode {
        path: path(),
        reason,
    };
    let (width, height) =
        guarded(|| ImageReader::with_format(Cursor::new(bytes), format).into_dimensions())
            .map_err(&decode_err)?
            .map_err(|e| decode_err(e.to_string()))?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(EmbedError::TooLarge {
            path: path(),
            width,
            height,
            max_pixels: limits.max_pixels,
        });
    }
    if pixels == 0 {
        return Err(decode_err("image has no pixels".into()));
    }
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(decode_err(
            "truncated JPEG: no end-of-image marker after the last scan".into(),
        ));
    }
    Ok((format, width, height))
}

/// Decodes `bytes`, at a reduced scale when `min_side` allows (see [`decode_bytes_scaled`]);
/// returns the image and its full size after EXIF orientation.
fn decode_inner(
    bytes: &[u8],
    source: &str,
    limits: &DecodeLimits,
    min_side: u32,
) -> Result<(DecodedImage, (u32, u32), ImageFormat), EmbedError> {
    let path = || source.to_string();
    let decode_err = |reason: String| EmbedError::Decode {
        path: path(),
        reason,
    };
    let (format, width, height) = probe(bytes, source, limits)?;
    let pixels = u64::from(width) * u64::from(height);
    let scaled = match (format, jpeg_scale(width, height, min_side)) {
        (ImageFormat::Jpeg, Some(denom)) => {
            guarded(|| decode_jpeg_scaled(bytes, width, height, denom, min_side))
                .ok()
                .flatten()
                .map(DynamicImage::ImageRgb8)
        }
        (ImageFormat::Jpeg, None) => {
            decode_jpeg_turbo(bytes, (width, height), 1).map(DynamicImage::ImageRgb8)
        }
        _ => None,
    };
    let mut img = match scaled {
        Some(img) => img,
        None => {
            let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
            let mut image_limits = image::Limits::default();
            image_limits.max_image_width = Some(width);
            image_limits.max_image_height = Some(height);
            // 16 bytes per pixel covers RGBA16 output plus the decoder's working buffers.
            image_limits.max_alloc = Some(pixels.saturating_mul(16).max(64 << 20));
            reader.limits(image_limits);
            guarded(|| reader.decode())
                .map_err(&decode_err)?
                .map_err(|e| decode_err(e.to_string()))?
        }
    };
    let exif = read_exif(bytes);
    let mut full = (width, height);
    if let Some(orientation) = exif.as_ref().and_then(exif_orientation) {
        img.apply_orientation(orientation);
        use image::metadata::Orientation as O;
        if matches!(
            orientation,
            O::Rotate90 | O::Rotate270 | O::Rotate90FlipH | O::Rotate270FlipH
        ) {
            full = (height, width);
        }
    }
    let decoded = DecodedImage {
        rgb: to_rgb8(img),
        source: source.to_string(),
        exif_taken: exif.as_ref().and_then(exif_taken),
    };
    Ok((decoded, full, format))
}

/// The JPEG decoder fills a truncated scan with grey instead of failing, which would put a
/// half-grey image into the index; a complete file has an end-of-image marker (FF D9) after
/// its last start-of-scan (FF DA). Entropy-coded data escapes every FF byte, so neither marker
/// can occur inside a scan, and an EXIF thumbnail's markers come before the main image's scans.
///
/// The check looks for the last end-of-image marker from the back (in a complete file it sits in
/// the last bytes), then for a start-of-scan before it from the front (the first one follows the
/// headers) and for none after it: the whole entropy-coded data is never scanned byte by byte.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let is = |marker: u8| move |w: &[u8]| w == [0xFF, marker];
    let Some(end) = bytes.windows(2).rposition(is(0xD9)) else {
        return false;
    };
    let scan_before = bytes[..end].windows(2).any(is(0xDA));
    let scan_after = bytes[end..].windows(2).any(is(0xDA));
    scan_before && !scan_after
}

/// Runs a decoder call, turning a panic inside a third-party decoder into an error, so one
/// hostile file cannot take down a batch ingest.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| "the decoder panicked on this data".to_string())
}

/// Converts any colour type to opaque RGB8. Images with alpha are composited on white, so
/// transparent logos and icons look as a browser shows them rather than turning black.
fn to_rgb8(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
        let a = u32::from(src[3]);
        for c in 0..3 {
            // Rounded c*a + 255*(255-a), divided by 255.
            dst[c] = ((u32::from(src[c]) * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    out
}

fn read_exif(bytes: &[u8]) -> Option<exif::Exif> {
    // Most files have no EXIF and some have broken EXIF: neither is an error for decoding.
    guarded(|| {
        exif::Reader::new()
            .read_from_container(&mut Cursor::new(bytes))
            .ok()
    })
    .ok()
    .flatten()
}

fn exif_orientation(exif: &exif::Exif) -> Option<image::metadata::Orientation> {
    let field = exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY)?;
    let value = field.value.get_uint(0)?;
    image::metadata::Orientation::from_exif(u8::try_from(value).ok()?)
}

fn ascii(exif: &exif::Exif, tag: exif::Tag) -> Option<Vec<u8>> {
    match &exif.get_field(tag, exif::In::PRIMARY)?.value {
        exif::Value::Ascii(parts) => parts.first().cloned(),
        _ => None,
    }
}

fn exif_taken(exif: &exif::Exif) -> Option<String> {
    let mut dt = exif::DateTime::from_ascii(&ascii(exif, exif::Tag::DateTimeOriginal)?).ok()?;
    let valid = (1..=12).contains(&dt.month)
        && (1..=31).contains(&dt.day)
        && dt.hour < 24
        && dt.minute < 60
        && dt.second < 61;
    if !valid {
        return None;
    }
    if let Some(offset) = ascii(exif, exif::Tag::OffsetTimeOriginal) {
        // A malformed offset leaves the time local rather than dropping the date.
        let _ = dt.parse_offset(&offset);
    }
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second
    );
    if let Some(off) = dt.offset {
        let sign = if off < 0 { '-' } else { '+' };
        let off = off.unsigned_abs();
        s.push_str(&format!("{sign}{:02}:{:02}", off / 60, off % 60));
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_completeness_looks_after_the_last_scan() {
        assert!(jpeg_is_complete(&[
            0xFF, 0xD8, 0xFF, 0xDA, 1, 2, 0xFF, 0x00, 0xFF, 0xD9
        ]));
        assert!(jpeg_is_complete(&[
            0xFF, 0xD8, 0xFF, 0xDA, 1, 0xFF, 0xD9, 0, 0, 0
        ]));
        // A thumbnail's end marker before the main scan does not count.
        assert!(!jpeg_is_complete(&[
            0xFF, 0xD8, 0xFF, 0xDA, 0xFF, 0xD9, 0xFF, 0xDA, 1, 2, 3
        ]));
        assert!(!jpeg_is_complete(&[0xFF, 0xD8, 0xFF, 0xE0]));
    }

    #[test]
    fn alpha_is_composited_on_white() {
        let mut rgba = image::RgbaImage::new(2, 1);
        rgba.put_pixel(0, 0, image::Rgba([0, 0, 0, 0]));
        rgba.put_pixel(1, 0, image::Rgba([255, 0, 0, 128]));
        let rgb = to_rgb8(DynamicImage::ImageRgba8(rgba));
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(1, 0).0, [255, 127, 127]);
    }
}
