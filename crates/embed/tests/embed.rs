//! Integration tests of the embed crate: decoding of every format and malformed input, and the
//! model's outputs against reference embeddings computed by Python onnxruntime + Pillow.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use embed::{
    decode_bytes, decode_file, default_manifest_path, embed_paths, DecodeLimits, EmbedError,
    Embedder, RuntimeConfig,
};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn embedder() -> &'static Embedder {
    static E: OnceLock<Embedder> = OnceLock::new();
    E.get_or_init(|| {
        Embedder::load(&default_manifest_path(), &RuntimeConfig::default())
            .expect("default model loads")
    })
}

fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

struct Reference {
    embedding: Vec<f32>,
    /// Labels whose reference score is within 0.05 of the best: a tie the two runtimes may
    /// break either way (chelsea is 0.379 tiger cat against 0.375 Egyptian cat).
    top: Vec<String>,
}

fn references() -> Vec<(String, Reference)> {
    let text = std::fs::read_to_string(fixture("reference.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json.as_object()
        .unwrap()
        .iter()
        .map(|(name, v)| {
            let embedding = v["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            let top5 = v["top5"].as_array().unwrap();
            let best = top5[0][1].as_f64().unwrap();
            let top = top5
                .iter()
                .filter(|l| l[1].as_f64().unwrap() > best - 0.05)
                .map(|l| l[0].as_str().unwrap().to_string())
                .collect();
            (name.clone(), Reference { embedding, top })
        })
        .collect()
}

// ------------------------------------------------------------------ model

#[test]
fn tract_matches_python_onnxruntime_reference() {
    let e = embedder();
    assert_eq!(e.dim(), 1280);
    assert!(
        e.model_id().starts_with("efficientnet-lite0@"),
        "{}",
        e.model_id()
    );
    assert_eq!(e.model_id().len(), "efficientnet-lite0@".len() + 12);
    let refs = references();
    assert_eq!(refs.len(), 4);
    for (name, r) in refs {
        let img = decode_file(&fixture(&name), &DecodeLimits::default()).unwrap();
        let emb = e.embed(&img).unwrap();
        let norm: f32 = emb.vector.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{name}: norm {norm}");
        let cos = cosine(&emb.vector, &r.embedding);
        eprintln!("{name}: cosine {cos:.6} with the Python onnxruntime reference");
        assert!(cos >= 0.999, "{name}: cosine {cos} with the reference");
        assert_eq!(emb.labels.len(), 5);
        assert!(
            r.top.contains(&emb.labels[0].name),
            "{name}: {:?} not in {:?}",
            emb.labels[0],
            r.top
        );
    }
}

#[test]
fn known_photos_get_the_right_label() {
    let e = embedder();
    let top = |name: &str| {
        let img = decode_file(&fixture(name), &DecodeLimits::default()).unwrap();
        e.embed(&img).unwrap().labels
    };
    let cat = top("chelsea.png");
    assert!(
        ["tabby", "tiger cat", "Egyptian cat"].contains(&cat[0].name.as_str()),
        "{cat:?}"
    );
    let coffee = top("coffee.jpg");
    assert!(
        ["espresso", "cup"].contains(&coffee[0].name.as_str()),
        "{coffee:?}"
    );
    assert!(
        coffee[0].score > 0.5 && coffee[0].score <= 1.0,
        "{coffee:?}"
    );
    assert!(coffee.windows(2).all(|w| w[0].score >= w[1].score));
}

#[test]
fn batch_equals_single_and_embed_paths_reports_every_file() {
    let e = embedder();
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    let paths = vec![
        fixture("coffee.jpg"),
        empty,
        fixture("chelsea.png"),
        dir.path().join("missing.png"),
    ];
    let mut results = vec![None, None, None, None];
    embed_paths(e, &paths, &DecodeLimits::default(), &mut |i, r| {
        assert!(results[i].is_none(), "index {i} reported twice");
        results[i] = Some(r);
    });
    let results: Vec<_> = results
        .into_iter()
        .map(|r| r.expect("every index reported"))
        .collect();
    assert!(matches!(results[1], Err(EmbedError::Empty { .. })));
    assert!(matches!(results[3], Err(EmbedError::Io { .. })));
    let imgs: Vec<_> = [&paths[0], &paths[2]]
        .iter()
        .map(|p| decode_file(p, &DecodeLimits::default()).unwrap())
        .collect();
    let batch = e.embed_batch(&imgs).unwrap();
    for (k, i) in [0usize, 2].into_iter().enumerate() {
        let (emb, info) = results[i].as_ref().unwrap();
        assert_eq!((info.width, info.height), imgs[k].rgb.dimensions());
        assert!(cosine(&emb.vector, &batch[k].vector) > 0.99999);
        assert!(cosine(&batch[k].vector, &e.embed(&imgs[k]).unwrap().vector) > 0.99999);
    }
}

#[test]
fn manifest_that_disagrees_with_the_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let default = default_manifest_path();
    let model_dir = default.parent().unwrap().canonicalize().unwrap();
    let text = std::fs::read_to_string(&default)
        .unwrap()
        .replace(
            "onnx = \"model.onnx\"",
            &format!("onnx = {:?}", model_dir.join("model.onnx")),
        )
        .replace(
            "labels = \"labels.txt\"",
            &format!("labels = {:?}", model_dir.join("labels.txt")),
        );
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let wrong_dim = write(
        "dim.toml",
        &text.replace("dimension = 1280", "dimension = 512"),
    );
    let err = Embedder::load(&wrong_dim, &RuntimeConfig::default()).unwrap_err();
    assert!(
        matches!(
            err,
            EmbedError::WrongDimension {
                expected: 512,
                got: 1280,
                ..
            }
        ),
        "{err}"
    );
    let missing = write(
        "missing.toml",
        &text.replace(
            &format!("{:?}", model_dir.join("model.onnx")),
            "\"nope.onnx\"",
        ),
    );
    let err = Embedder::load(&missing, &RuntimeConfig::default()).unwrap_err();
    assert!(matches!(err, EmbedError::Manifest { .. }), "{err}");
    let bad_input = write(
        "input.toml",
        &text.replace("input = \"input\"", "input = \"pixels\""),
    );
    let err = Embedder::load(&bad_input, &RuntimeConfig::default()).unwrap_err();
    assert!(matches!(err, EmbedError::Model { .. }), "{err}");
}

#[cfg(not(feature = "ort"))]
#[test]
fn ort_without_the_feature_is_a_typed_error() {
    let cfg = RuntimeConfig {
        kind: embed::RuntimeKind::Ort,
        ..RuntimeConfig::default()
    };
    let err = Embedder::load(&default_manifest_path(), &cfg).unwrap_err();
    assert!(
        matches!(err, EmbedError::Runtime { runtime: "ort", .. }),
        "{err}"
    );
}

/// Needs libonnxruntime.so: run scripts/fetch-onnxruntime.sh, then
/// `cargo test -p imgsearch-embed --features ort`.
#[cfg(feature = "ort")]
#[test]
fn ort_matches_tract() {
    let cfg = RuntimeConfig {
        kind: embed::RuntimeKind::Ort,
        threads: 2,
        ..RuntimeConfig::default()
    };
    let ort = Embedder::load(&default_manifest_path(), &cfg).expect("onnxruntime loads");
    assert_eq!(ort.model_id(), embedder().model_id());
    let imgs: Vec<_> = ["chelsea.png", "coffee.jpg", "rocket.jpg"]
        .iter()
        .map(|n| decode_file(&fixture(n), &DecodeLimits::default()).unwrap())
        .collect();
    let a = ort.embed_batch(&imgs).unwrap();
    let b = embedder().embed_batch(&imgs).unwrap();
    for (x, y) in a.iter().zip(&b) {
        let max = x
            .vector
            .iter()
            .zip(&y.vector)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(max < 1e-4, "max difference {max}");
        assert_eq!(x.labels[0].name, y.labels[0].name);
    }

    // One image per call: the three batches run side by side on the per-thread sessions.
    let per_thread = Embedder::load(
        &default_manifest_path(),
        &RuntimeConfig {
            batch: 1,
            ..cfg.clone()
        },
    )
    .expect("onnxruntime loads");
    let paths: Vec<_> = ["chelsea.png", "coffee.jpg", "rocket.jpg"]
        .iter()
        .map(|n| fixture(n))
        .collect();
    let mut seen = 0;
    embed::embed_paths(
        &per_thread,
        &paths,
        &DecodeLimits::default(),
        &mut |i, r| {
            let (emb, _) = r.expect("fixture embeds");
            let max = emb
                .vector
                .iter()
                .zip(&b[i].vector)
                .map(|(p, q)| (p - q).abs())
                .fold(0f32, f32::max);
            assert!(max < 1e-4, "{}: max difference {max}", paths[i].display());
            seen += 1;
        },
    );
    assert_eq!(seen, 3);
}

// ------------------------------------------------------------------ decoding: formats and colours

#[test]
fn every_supported_format_decodes() {
    let mut img = RgbImage::new(8, 6);
    for (x, y, p) in img.enumerate_pixels_mut() {
        *p = Rgb([(x * 30) as u8, (y * 40) as u8, 200]);
    }
    for format in [
        ImageFormat::Png,
        ImageFormat::Bmp,
        ImageFormat::Tiff,
        ImageFormat::WebP,
        ImageFormat::Gif,
    ] {
        let bytes = encode(DynamicImage::ImageRgb8(img.clone()), format);
        let d = decode_bytes(&bytes, "x", &DecodeLimits::default())
            .unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_eq!(d.rgb.dimensions(), (8, 6), "{format:?}");
        if format != ImageFormat::Gif {
            // GIF quantises to a palette; the lossless formats give the pixels back exactly.
            assert_eq!(d.rgb, img, "{format:?}");
        }
    }
    let jpeg = encode(DynamicImage::ImageRgb8(img), ImageFormat::Jpeg);
    assert_eq!(
        decode_bytes(&jpeg, "x.jpg", &DecodeLimits::default())
            .unwrap()
            .rgb
            .dimensions(),
        (8, 6)
    );
}

#[test]
fn gif_gives_its_first_frame() {
    use image::codecs::gif::GifEncoder;
    use image::{Delay, Frame, Rgba, RgbaImage};
    let mut bytes = Vec::new();
    {
        let mut enc = GifEncoder::new(&mut bytes);
        for colour in [[255, 0, 0, 255], [0, 0, 255, 255]] {
            let frame = Frame::from_parts(
                RgbaImage::from_pixel(4, 4, Rgba(colour)),
                0,
                0,
                Delay::from_numer_denom_ms(100, 1),
            );
            enc.encode_frame(frame).unwrap();
        }
    }
    let d = decode_bytes(&bytes, "anim.gif", &DecodeLimits::default()).unwrap();
    assert_eq!(d.rgb.get_pixel(1, 1).0, [255, 0, 0]);
}

#[test]
fn grayscale_16_bit_and_alpha_become_rgb8() {
    let gray = image::GrayImage::from_pixel(3, 2, image::Luma([77]));
    let d = decode_bytes(
        &encode(DynamicImage::ImageLuma8(gray), ImageFormat::Png),
        "g",
        &Default::default(),
    )
    .unwrap();
    assert_eq!(d.rgb.get_pixel(2, 1).0, [77, 77, 77]);

    let deep = image::ImageBuffer::<Rgb<u16>, _>::from_pixel(3, 2, Rgb([65535u16, 0, 32896]));
    let d = decode_bytes(
        &encode(DynamicImage::ImageRgb16(deep), ImageFormat::Png),
        "d",
        &Default::default(),
    )
    .unwrap();
    assert_eq!(d.rgb.get_pixel(0, 0).0, [255, 0, 128]);

    let mut rgba = image::RgbaImage::from_pixel(2, 1, image::Rgba([0, 0, 0, 0]));
    rgba.put_pixel(1, 0, image::Rgba([0, 0, 255, 255]));
    let d = decode_bytes(
        &encode(DynamicImage::ImageRgba8(rgba), ImageFormat::Png),
        "a",
        &Default::default(),
    )
    .unwrap();
    assert_eq!(
        d.rgb.get_pixel(0, 0).0,
        [255, 255, 255],
        "transparent pixels composite on white"
    );
    assert_eq!(d.rgb.get_pixel(1, 0).0, [0, 0, 255]);

    let la =
        image::ImageBuffer::<image::LumaA<u16>, _>::from_pixel(1, 1, image::LumaA([0u16, 65535]));
    let d = decode_bytes(
        &encode(DynamicImage::ImageLumaA16(la), ImageFormat::Png),
        "la",
        &Default::default(),
    )
    .unwrap();
    assert_eq!(d.rgb.get_pixel(0, 0).0, [0, 0, 0]);
}

#[test]
fn cmyk_jpeg_decodes_to_the_right_colours() {
    let rgb = decode_file(&fixture("chelsea_small_rgb.png"), &DecodeLimits::default())
        .unwrap()
        .rgb;
    let cmyk = decode_file(&fixture("chelsea_small_cmyk.jpg"), &DecodeLimits::default())
        .unwrap()
        .rgb;
    assert_eq!(rgb.dimensions(), cmyk.dimensions());
    let diff: f64 = rgb
        .as_raw()
        .iter()
        .zip(cmyk.as_raw())
        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs())
        .sum::<f64>()
        / rgb.as_raw().len() as f64;
    assert!(diff < 12.0, "mean absolute difference {diff}");
}

/// A JPEG with an APP1 EXIF segment: Orientation, DateTimeOriginal and OffsetTimeOriginal.
fn jpeg_with_exif(img: &RgbImage, orientation: u16) -> Vec<u8> {
    let jpeg = encode(DynamicImage::ImageRgb8(img.clone()), ImageFormat::Jpeg);
    let mut tiff: Vec<u8> = b"II*\0\x08\0\0\0".to_vec();
    let entry = |t: &mut Vec<u8>, tag: u16, typ: u16, count: u32, value: u32| {
        t.extend(tag.to_le_bytes());
        t.extend(typ.to_le_bytes());
        t.extend(count.to_le_bytes());
        t.extend(value.to_le_bytes());
    };
    // IFD0 at 8: 2 entries (12 bytes each) + next-IFD 0 => Exif IFD at 8 + 2 + 24 + 4 = 38.
    tiff.extend(2u16.to_le_bytes());
    entry(&mut tiff, 0x0112, 3, 1, u32::from(orientation));
    entry(&mut tiff, 0x8769, 4, 1, 38);
    tiff.extend(0u32.to_le_bytes());
    // Exif IFD at 38: 2 entries => data at 38 + 2 + 24 + 4 = 68.
    tiff.extend(2u16.to_le_bytes());
    entry(&mut tiff, 0x9003, 2, 20, 68);
    entry(&mut tiff, 0x9011, 2, 7, 88);
    tiff.extend(0u32.to_le_bytes());
    tiff.extend(b"2021:03:04 05:06:07\0+02:00\0");
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend([0xFF, 0xE1]);
    out.extend(((app1.len() + 2) as u16).to_be_bytes());
    out.extend(app1);
    out.extend(&jpeg[2..]);
    out
}

#[test]
fn exif_orientation_is_applied_and_date_read() {
    // Left half red, right half blue; orientation 6 means "rotate 90 degrees clockwise to view".
    let img = RgbImage::from_fn(32, 16, |x, _| {
        if x < 16 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    });
    let d = decode_bytes(
        &jpeg_with_exif(&img, 6),
        "rot.jpg",
        &DecodeLimits::default(),
    )
    .unwrap();
    assert_eq!(d.rgb.dimensions(), (16, 32));
    let top = d.rgb.get_pixel(8, 4).0;
    let bottom = d.rgb.get_pixel(8, 27).0;
    assert!(top[0] > 200 && top[2] < 60, "top should be red: {top:?}");
    assert!(
        bottom[2] > 200 && bottom[0] < 60,
        "bottom should be blue: {bottom:?}"
    );
    assert_eq!(d.exif_taken.as_deref(), Some("2021-03-04T05:06:07+02:00"));
    let upright =
        decode_bytes(&jpeg_with_exif(&img, 1), "up.jpg", &DecodeLimits::default()).unwrap();
    assert_eq!(upright.rgb.dimensions(), (32, 16));
    let plain = decode_bytes(
        &encode(DynamicImage::ImageRgb8(img), ImageFormat::Png),
        "p",
        &Default::default(),
    )
    .unwrap();
    assert_eq!(plain.exif_taken, None);
}

// ------------------------------------------------------------------ decoding: bad input

#[test]
fn malformed_files_give_typed_errors_naming_the_file() {
    let limits = DecodeLimits::default();
    let coffee = std::fs::read(fixture("coffee.jpg")).unwrap();
    let chelsea = std::fs::read(fixture("chelsea.png")).unwrap();

    let err = decode_bytes(b"", "empty.jpg", &limits).unwrap_err();
    assert!(
        matches!(&err, EmbedError::Empty { path } if path == "empty.jpg"),
        "{err}"
    );

    let err = decode_bytes(b"hello, I am a text file\n", "notes.txt", &limits).unwrap_err();
    assert!(
        matches!(&err, EmbedError::Unsupported { path, .. } if path == "notes.txt"),
        "{err}"
    );

    // A format `image` knows but this crate does not decode (binary PPM).
    let err = decode_bytes(b"P6\n1 1\n255\n\x00\x00\x00", "x.ppm", &limits).unwrap_err();
    assert!(matches!(&err, EmbedError::Unsupported { .. }), "{err}");

    for (name, bytes) in [
        ("half.png", &chelsea[..chelsea.len() / 2]),
        ("header.jpg", &coffee[..300]),
    ] {
        let err = decode_bytes(bytes, name, &limits).unwrap_err();
        assert!(
            matches!(&err, EmbedError::Decode { path, .. } if path == name),
            "{name}: {err}"
        );
    }

    // Valid signature and header, garbage after: corrupt.
    let mut corrupt = chelsea[..64].to_vec();
    corrupt.extend((0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let err = decode_bytes(&corrupt, "corrupt.png", &limits).unwrap_err();
    assert!(matches!(&err, EmbedError::Decode { .. }), "{err}");
    assert!(err.to_string().contains("corrupt.png"));
}

#[test]
fn truncated_jpeg_is_an_error_not_a_grey_image() {
    let coffee = std::fs::read(fixture("coffee.jpg")).unwrap();
    for cut in [coffee.len() / 2, coffee.len() - 2] {
        let result = decode_bytes(&coffee[..cut], "half.jpg", &DecodeLimits::default());
        assert!(
            matches!(&result, Err(EmbedError::Decode { .. })),
            "cut at {cut}: {:?}",
            result.map(|d| d.source)
        );
    }
}

#[test]
fn limits_are_checked_before_decoding() {
    // A BMP whose header claims 60000 x 60000 pixels but holds almost no data.
    let mut bomb = encode(
        DynamicImage::ImageRgb8(RgbImage::new(1, 1)),
        ImageFormat::Bmp,
    );
    bomb[18..22].copy_from_slice(&60_000i32.to_le_bytes());
    bomb[22..26].copy_from_slice(&60_000i32.to_le_bytes());
    let err = decode_bytes(&bomb, "bomb.bmp", &DecodeLimits::default()).unwrap_err();
    assert!(
        matches!(
            err,
            EmbedError::TooLarge {
                width: 60_000,
                height: 60_000,
                max_pixels: 100_000_000,
                ..
            }
        ),
        "{err}"
    );

    let small = DecodeLimits {
        max_pixels: 1000,
        ..DecodeLimits::default()
    };
    let err = decode_file(&fixture("chelsea.png"), &small).unwrap_err();
    assert!(
        matches!(
            err,
            EmbedError::TooLarge {
                width: 451,
                height: 300,
                ..
            }
        ),
        "{err}"
    );

    let tiny = DecodeLimits {
        max_file_bytes: 1000,
        ..DecodeLimits::default()
    };
    let err = decode_file(&fixture("coffee.jpg"), &tiny).unwrap_err();
    assert!(
        matches!(
            err,
            EmbedError::FileTooLarge {
                max_bytes: 1000,
                ..
            }
        ),
        "{err}"
    );
    let err = decode_bytes(&[0u8; 2000], "b", &tiny).unwrap_err();
    assert!(
        matches!(err, EmbedError::FileTooLarge { bytes: 2000, .. }),
        "{err}"
    );
}

#[test]
fn missing_file_is_an_io_error() {
    let err = decode_file(
        Path::new("/nonexistent/photo.jpg"),
        &DecodeLimits::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, EmbedError::Io { path, .. } if path == "/nonexistent/photo.jpg"),
        "{err}"
    );
}

/// A large JPEG is decoded at a reduced scale for the model, and the embedding cannot tell:
/// the same vector (cosine >= 0.999) and label as from the full decode; the pipeline still
/// reports the image's full size.
#[test]
fn large_jpegs_decode_scaled_with_the_same_embedding() {
    let small = decode_file(&fixture("coffee.jpg"), &DecodeLimits::default()).unwrap();
    let (w, h) = (small.rgb.width() * 5, small.rgb.height() * 5);
    let big = image::imageops::resize(&small.rgb, w, h, image::imageops::FilterType::CatmullRom);
    let mut bytes = Vec::new();
    DynamicImage::ImageRgb8(big)
        .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Jpeg)
        .unwrap();
    let e = embedder();
    let min_side = e.preprocessor().min_source_side();
    assert_eq!(min_side, 512);
    let limits = DecodeLimits::default();
    let full = embed::decode_bytes(&bytes, "big", &limits).unwrap();
    let scaled = embed::decode_bytes_scaled(&bytes, "big", &limits, min_side).unwrap();
    assert_eq!((full.rgb.width(), full.rgb.height()), (w, h));
    assert!(
        scaled.rgb.width() <= w / 2 && scaled.rgb.width().min(scaled.rgb.height()) >= min_side,
        "scaled to {}x{}",
        scaled.rgb.width(),
        scaled.rgb.height()
    );
    let a = e.embed(&full).unwrap();
    let b = e.embed(&scaled).unwrap();
    let c = cosine(&a.vector, &b.vector);
    assert!(c >= 0.999, "cosine {c}");
    assert_eq!(a.labels[0].name, b.labels[0].name);

    // A photo below twice the needed size decodes exactly as before.
    let bytes_small = std::fs::read(fixture("coffee.jpg")).unwrap();
    let same = embed::decode_bytes_scaled(&bytes_small, "coffee", &limits, min_side).unwrap();
    assert_eq!(same.rgb, small.rgb);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.jpg");
    std::fs::write(&path, &bytes).unwrap();
    let mut info = None;
    embed::embed_paths(e, std::slice::from_ref(&path), &limits, &mut |_, r| {
        info = Some(r.unwrap().1);
    });
    let info = info.unwrap();
    assert_eq!((info.width, info.height), (w, h));
}
