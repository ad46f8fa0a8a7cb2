//! JPEG decoding with libjpeg-turbo's TurboJPEG API (cargo feature `turbojpeg`), linked from the
//! system library (Debian: `libturbojpeg0-dev`). On the benchmark's photos it decodes about 1.2
//! times as fast as the pure-Rust decoder (`bench/embed`), which matters because decoding is the
//! part of indexing that is not the model.
//!
//! Only the five functions used are declared, so no binding generator is needed. Every failure
//! (including libjpeg-turbo's warnings, such as corrupt data it would paper over) returns None,
//! and the caller then decodes with the pure-Rust decoder, which produces the typed error or the
//! image; so the feature changes speed, never which files are accepted.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_ulong, c_void};

use image::RgbImage;

type TjHandle = *mut c_void;

/// `TJPF_RGB` in turbojpeg.h: three bytes per pixel, red first.
const TJPF_RGB: c_int = 0;

#[link(name = "turbojpeg")]
extern "C" {
    fn tjInitDecompress() -> TjHandle;
    fn tjDecompressHeader3(
        handle: TjHandle,
        jpeg_buf: *const u8,
        jpeg_size: c_ulong,
        width: *mut c_int,
        height: *mut c_int,
        jpeg_subsamp: *mut c_int,
        jpeg_colorspace: *mut c_int,
    ) -> c_int;
    fn tjDecompress2(
        handle: TjHandle,
        jpeg_buf: *const u8,
        jpeg_size: c_ulong,
        dst_buf: *mut u8,
        width: c_int,
        pitch: c_int,
        height: c_int,
        pixel_format: c_int,
        flags: c_int,
    ) -> c_int;
    fn tjGetErrorStr2(handle: TjHandle) -> *mut c_char;
    fn tjDestroy(handle: TjHandle) -> c_int;
}

/// One decompressor per thread: creating one allocates libjpeg's state, and a handle must not
/// be used by two threads at once.
struct Decompressor(TjHandle);

impl Drop for Decompressor {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the handle came from tjInitDecompress, is owned by this value alone and
            // is destroyed exactly once, here.
            unsafe { tjDestroy(self.0) };
        }
    }
}

thread_local! {
    static DECOMPRESSOR: RefCell<Option<Decompressor>> = const { RefCell::new(None) };
}

/// Decodes `bytes` to RGB at `1/denom` scale (1, 2, 4 or 8; libjpeg-turbo scales in the DCT
/// domain and rounds up, as `div_ceil` does). `expected` is the full size the caller read from
/// the header and checked against its pixel limit; a file that libjpeg-turbo reads as another
/// size is left to the other decoder, so the limit holds here too. None on any failure; see the
/// module comment.
pub(crate) fn decode_rgb(bytes: &[u8], expected: (u32, u32), denom: u32) -> Option<RgbImage> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            // SAFETY: tjInitDecompress has no preconditions; a null result is checked below.
            let handle = unsafe { tjInitDecompress() };
            if handle.is_null() {
                return None;
            }
            *slot = Some(Decompressor(handle));
        }
        let handle = slot.as_ref()?.0;
        let size = c_ulong::try_from(bytes.len()).ok()?;
        let (mut width, mut height, mut subsamp, mut colorspace) = (0, 0, 0, 0);
        // SAFETY: `handle` is a live decompressor used by this thread only; `bytes` is valid
        // for `size` bytes; the four out-pointers point at locals that outlive the call.
        let rc = unsafe {
            tjDecompressHeader3(
                handle,
                bytes.as_ptr(),
                size,
                &mut width,
                &mut height,
                &mut subsamp,
                &mut colorspace,
            )
        };
        if rc != 0 {
            tracing::debug!(error = %last_error(handle), "turbojpeg header");
            return None;
        }
        if (u32::try_from(width).ok()?, u32::try_from(height).ok()?) != expected {
            return None;
        }
        let (w, h) = (expected.0.div_ceil(denom), expected.1.div_ceil(denom));
        let mut rgb = vec![0u8; (w as usize).checked_mul(h as usize)?.checked_mul(3)?];
        // SAFETY: as above for `handle` and `bytes`; `rgb` holds exactly w * h * 3 bytes, the
        // size TurboJPEG writes for a w x h RGB image with pitch 0 (tightly packed), and w x h
        // is the scaled size it picks for these dimensions (1/denom is one of its factors).
        let rc = unsafe {
            tjDecompress2(
                handle,
                bytes.as_ptr(),
                size,
                rgb.as_mut_ptr(),
                c_int::try_from(w).ok()?,
                0,
                c_int::try_from(h).ok()?,
                TJPF_RGB,
                0,
            )
        };
        if rc != 0 {
            tracing::debug!(error = %last_error(handle), "turbojpeg decode");
            return None;
        }
        RgbImage::from_raw(w, h, rgb)
    })
}

fn last_error(handle: TjHandle) -> String {
    // SAFETY: tjGetErrorStr2 returns a NUL-terminated string owned by the handle (or a static
    // one), valid until the next call on it; it is copied out at once.
    unsafe {
        let text = tjGetErrorStr2(handle);
        if text.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(text)
                .to_string_lossy()
                .into_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        std::fs::read(path).unwrap()
    }

    #[test]
    fn decodes_like_the_pure_rust_decoder() {
        let bytes = fixture("coffee.jpg");
        let theirs = image::load_from_memory(&bytes).unwrap().into_rgb8();
        let ours = decode_rgb(&bytes, theirs.dimensions(), 1).expect("turbojpeg decodes it");
        assert_eq!(ours.dimensions(), theirs.dimensions());
        // The decoders differ only in rounding and chroma upsampling details.
        let diff: u64 = ours
            .as_raw()
            .iter()
            .zip(theirs.as_raw())
            .map(|(a, b)| u64::from(a.abs_diff(*b)))
            .sum();
        let mean = diff as f64 / ours.as_raw().len() as f64;
        assert!(mean < 2.0, "mean absolute difference {mean}");
    }

    #[test]
    fn scales_in_the_dct_domain_rounding_up() {
        let bytes = fixture("coffee.jpg");
        let size = image::load_from_memory(&bytes)
            .unwrap()
            .into_rgb8()
            .dimensions();
        let full = decode_rgb(&bytes, size, 1).unwrap();
        for denom in [2, 4, 8] {
            let scaled = decode_rgb(&bytes, size, denom).unwrap();
            assert_eq!(
                scaled.dimensions(),
                (full.width().div_ceil(denom), full.height().div_ceil(denom))
            );
        }
    }

    #[test]
    fn refuses_what_is_not_a_decodable_jpeg() {
        assert!(decode_rgb(b"", (1, 1), 1).is_none());
        assert!(decode_rgb(b"not a jpeg at all", (1, 1), 1).is_none());
        let bytes = fixture("coffee.jpg");
        let size = image::load_from_memory(&bytes)
            .unwrap()
            .into_rgb8()
            .dimensions();
        // A cut-off scan is a libjpeg-turbo warning, which counts as a failure here.
        assert!(decode_rgb(&bytes[..bytes.len() / 2], size, 1).is_none());
        // A size other than the one the caller checked against its limits is not decoded.
        assert!(decode_rgb(&bytes, (size.0 + 1, size.1), 1).is_none());
        // CMYK cannot be converted to RGB by TurboJPEG; the image crate's decoder handles it.
        assert!(decode_rgb(&fixture("chelsea_small_cmyk.jpg"), (90, 60), 1).is_none());
    }
}
