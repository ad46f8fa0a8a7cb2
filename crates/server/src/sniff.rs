//! Recognises image formats by their leading bytes, never by file names.
//!
//! Uploads are checked before they reach the engine so that a text file or an archive gets a
//! clear "not an image" answer, and originals are served with the content type their bytes
//! have, whatever their extension says.

/// The MIME type of an image format imgsearch reads, from the file's first bytes.
pub fn image_mime(bytes: &[u8]) -> Option<&'static str> {
    const SIGNATURES: &[(&[u8], &str)] = &[
        (b"\xFF\xD8\xFF", "image/jpeg"),
        (b"\x89PNG\r\n\x1A\n", "image/png"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"BM", "image/bmp"),
        (b"II*\x00", "image/tiff"),
        (b"MM\x00*", "image/tiff"),
    ];
    if let Some((_, mime)) = SIGNATURES.iter().find(|(sig, _)| bytes.starts_with(sig)) {
        return Some(mime);
    }
    // WebP is a RIFF container whose form type sits after the 4-byte length.
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Some("image/webp");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::image_mime;

    #[test]
    fn recognises_common_formats_and_rejects_others() {
        assert_eq!(image_mime(b"\xFF\xD8\xFF\xE0rest"), Some("image/jpeg"));
        assert_eq!(image_mime(b"\x89PNG\r\n\x1A\n...."), Some("image/png"));
        assert_eq!(
            image_mime(b"RIFF\x10\x00\x00\x00WEBPVP8 "),
            Some("image/webp")
        );
        assert_eq!(image_mime(b"RIFF\x10\x00\x00\x00WAVEfmt "), None);
        assert_eq!(image_mime(b"hello, world"), None);
        assert_eq!(image_mime(b""), None);
    }
}
