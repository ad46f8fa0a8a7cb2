//! Writes a format fixture like the one `tests/it/fixture.rs` reads: a small database in the
//! current on-disk formats. The committed `tests/fixtures/v1` was written by this program when the
//! formats were config format 1, record version 1 and snapshot version 1; run today it writes
//! format 2 (records version 2, `vectors.bin`, snapshot version 2).
//!
//! Run once per format version and commit the output, so later builds prove they still read
//! files written by this one. redb files are mostly runs of equal bytes, so each is stored as
//! `points.redb.rle` (see `rle`), which the test expands; the snapshots are stored as is:
//! `cargo run -p imgsearch-vecdb --example make_fixture -- crates/vecdb/tests/fixtures/v1`

use serde_json::json;
use vecdb::{CollectionConfig, Database, IndexSpec, Metric, Point};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: make_fixture <empty dir>")?;
    let db = Database::open(dir.as_ref())?;
    for (name, metric, index) in [
        ("flat_l2", Metric::L2, IndexSpec::Flat),
        ("hnsw_cos", Metric::Cosine, IndexSpec::default_hnsw()),
    ] {
        let c = db.create_collection(CollectionConfig {
            name: name.into(),
            dim: 4,
            metric,
            index,
        })?;
        let points: Vec<Point> = (0..20u64)
            .map(|id| {
                let v = vec![id as f32, 1.0, (id % 3) as f32, -(id as f32) / 2.0];
                Point::with_metadata(
                    id,
                    v,
                    json!({"n": id, "tags": ["a", format!("t{}", id % 4)]}),
                )
            })
            .collect();
        c.insert(&points)?;
        c.delete(&[3, 7])?;
        c.save_index()?;
    }
    drop(db);
    // Compaction shrinks each redb file from megabytes of preallocated pages to what the data
    // needs, so the fixture is small enough to commit.
    for name in ["flat_l2", "hnsw_cos"] {
        let path = std::path::Path::new(&dir).join(name).join("points.redb");
        let mut file = redb::Database::open(&path)?;
        while file.compact()? {}
        drop(file);
        let raw = std::fs::read(&path)?;
        std::fs::write(path.with_extension("redb.rle"), rle(&raw))?;
        std::fs::remove_file(&path)?;
    }
    Ok(())
}

/// Run-length encoding: a sequence of `[u8 byte][u32 LE run][u32 LE n][n literal bytes]`, meaning
/// `run` copies of `byte` followed by the literal bytes. The test crate has the matching decoder.
fn rle(data: &[u8]) -> Vec<u8> {
    const MIN_RUN: usize = 16;
    let run_at = |i: usize| {
        let b = data[i];
        data[i..].iter().take_while(|&&x| x == b).count()
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let (byte, run) = match run_at(i) {
            r if r >= MIN_RUN => (data[i], r),
            _ => (0, 0),
        };
        i += run;
        // The literal stretch ends where the next long run starts.
        let mut end = i;
        while end < data.len() && run_at(end) < MIN_RUN {
            end += 1;
        }
        out.push(byte);
        out.extend_from_slice(&(run as u32).to_le_bytes());
        out.extend_from_slice(&((end - i) as u32).to_le_bytes());
        out.extend_from_slice(&data[i..end]);
        i = end;
    }
    out
}
