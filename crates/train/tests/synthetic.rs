//! End-to-end training on a synthetic task where the raw features are entangled: the class
//! signal lives in a 4-dimensional subspace, 60 nuisance dimensions with much larger variance
//! drown it, and a random rotation mixes the two. Cosine retrieval on raw features is poor;
//! a trained head must find the signal subspace, and since unseen classes live in the same
//! subspace it must also help on classes it never saw.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use train::{class_retrieval, train_head, Dataset, HeadArch, Loss, Matrix, Mining, TrainConfig};

const DIM: usize = 64;
const SIGNAL: usize = 4;

fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
    // Box-Muller.
    let u1: f32 = rng.gen_range(1e-7..1.0);
    let u2: f32 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

/// A random orthogonal matrix by Gram-Schmidt on Gaussian rows.
fn rotation(rng: &mut ChaCha8Rng) -> Vec<Vec<f32>> {
    let mut rows: Vec<Vec<f32>> = Vec::new();
    while rows.len() < DIM {
        let mut v: Vec<f32> = (0..DIM).map(|_| gaussian(rng)).collect();
        for r in &rows {
            let d: f32 = v.iter().zip(r).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(r).for_each(|(a, b)| *a -= d * b);
        }
        let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
        if n > 1e-3 {
            rows.push(v.into_iter().map(|a| a / n).collect());
        }
    }
    rows
}

struct World {
    rot: Vec<Vec<f32>>,
    offset: Vec<f32>,
    centres: Vec<Vec<f32>>,
}

impl World {
    fn new(classes: usize, rng: &mut ChaCha8Rng) -> Self {
        let centres = (0..classes)
            .map(|_| {
                let mut c: Vec<f32> = (0..SIGNAL).map(|_| gaussian(rng)).collect();
                let n = c.iter().map(|a| a * a).sum::<f32>().sqrt();
                c.iter_mut().for_each(|a| *a /= n);
                c
            })
            .collect();
        Self {
            rot: rotation(rng),
            offset: (0..DIM).map(|_| 1.5 + 0.5 * gaussian(rng)).collect(),
            centres,
        }
    }

    fn sample(&self, class: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
        let mut raw = vec![0.0f32; DIM];
        for (v, c) in raw.iter_mut().zip(&self.centres[class]) {
            *v = c + 0.15 * gaussian(rng);
        }
        for v in raw.iter_mut().skip(SIGNAL) {
            *v = 0.6 * gaussian(rng);
        }
        (0..DIM)
            .map(|i| {
                let r: f32 = self.rot[i].iter().zip(&raw).map(|(a, b)| a * b).sum();
                r + self.offset[i]
            })
            .collect()
    }

    fn dataset(&self, classes: std::ops::Range<usize>, per_class: usize, seed: u64) -> Dataset {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (mut rows, mut labels) = (Vec::new(), Vec::new());
        for c in classes {
            for _ in 0..per_class {
                rows.push(self.sample(c, &mut rng));
                labels.push(c);
            }
        }
        Dataset::new(Matrix::from_rows(&rows).unwrap(), labels).unwrap()
    }
}

fn setup() -> (Dataset, Dataset, Dataset) {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let world = World::new(12, &mut rng);
    let seen = world.dataset(0..8, 40, 1);
    let (train, val) = seen.split_per_class(0.25, 2).unwrap();
    let unseen = world.dataset(8..12, 30, 3);
    (train, val, unseen)
}

fn config(loss: Loss, arch: HeadArch) -> TrainConfig {
    TrainConfig {
        arch,
        loss,
        epochs: 40,
        classes_per_batch: 8,
        samples_per_class: 4,
        patience: 8,
        seed: 7,
        adam: train::AdamConfig {
            learning_rate: 1e-2,
            ..train::AdamConfig::default()
        },
        ..TrainConfig::default()
    }
}

#[test]
fn every_loss_separates_entangled_classes_including_unseen_ones() {
    let (train, val, unseen) = setup();
    let raw = class_retrieval(&unseen.x, &unseen.labels).unwrap().map_at_r;
    let raw_seen = class_retrieval(&val.x, &val.labels).unwrap().map_at_r;
    assert!(raw < 0.5, "task too easy: raw unseen mAP@R {raw}");
    let losses = [
        Loss::Contrastive { margin: 1.0 },
        Loss::Triplet {
            margin: 0.2,
            mining: Mining::BatchHard,
        },
        Loss::Triplet {
            margin: 0.2,
            mining: Mining::SemiHard,
        },
        Loss::InfoNce { temperature: 0.1 },
    ];
    for loss in losses {
        for arch in [
            HeadArch::Linear { out: 16 },
            HeadArch::Mlp {
                hidden: 32,
                out: 16,
            },
        ] {
            let (head, report) =
                train_head(&train, Some(&val), "synthetic", &config(loss, arch)).unwrap();
            let seen = report.best_val_map_at_r.unwrap();
            let emb = head.apply_matrix(&unseen.x).unwrap();
            let trained = class_retrieval(&emb, &unseen.labels).unwrap().map_at_r;
            eprintln!(
                "{} {arch:?}: seen {raw_seen:.3} -> {seen:.3}, unseen {raw:.3} -> {trained:.3} (best epoch {})",
                loss.name(),
                report.best_epoch
            );
            assert!(
                seen > raw_seen + 0.25,
                "{}: seen classes {raw_seen} -> {seen}",
                loss.name()
            );
            assert!(
                trained > raw + 0.2,
                "{}: unseen classes {raw} -> {trained}",
                loss.name()
            );
        }
    }
}

#[test]
fn training_is_deterministic_for_a_seed() {
    let (train, val, _) = setup();
    let cfg = TrainConfig {
        epochs: 3,
        ..config(
            Loss::InfoNce { temperature: 0.1 },
            HeadArch::Linear { out: 8 },
        )
    };
    let (a, ra) = train_head(&train, Some(&val), "m", &cfg).unwrap();
    let (b, rb) = train_head(&train, Some(&val), "m", &cfg).unwrap();
    assert_eq!(a, b);
    assert_eq!(ra, rb);
    let (c, _) = train_head(&train, Some(&val), "m", &TrainConfig { seed: 8, ..cfg }).unwrap();
    assert_ne!(a, c);
}

#[test]
fn early_stopping_returns_the_best_epoch() {
    let (train, val, _) = setup();
    let cfg = TrainConfig {
        epochs: 60,
        patience: 2,
        ..config(
            Loss::Contrastive { margin: 1.0 },
            HeadArch::Linear { out: 8 },
        )
    };
    let (head, report) = train_head(&train, Some(&val), "m", &cfg).unwrap();
    let best = report.best_val_map_at_r.unwrap();
    // The returned head scores exactly the best recorded validation figure.
    let again = class_retrieval(&head.apply_matrix(&val.x).unwrap(), &val.labels)
        .unwrap()
        .map_at_r;
    assert!((again - best).abs() < 1e-9);
    let max_seen = report
        .epochs
        .iter()
        .filter_map(|e| e.val_map_at_r)
        .fold(report.initial_val_map_at_r.unwrap(), f64::max);
    assert_eq!(best, max_seen);
    if report.stopped_early {
        assert!(report.epochs.len() < 60);
        assert_eq!(report.epochs.len(), report.best_epoch + 2);
    }
}

#[test]
fn too_little_data_is_a_typed_error() {
    let one_class = Dataset::new(
        Matrix::from_rows(&[[1.0, 0.0], [0.9, 0.1]]).unwrap(),
        vec![0, 0],
    )
    .unwrap();
    let err = train_head(&one_class, None, "m", &TrainConfig::default()).unwrap_err();
    assert!(
        matches!(err, train::TrainError::NotEnoughData { .. }),
        "{err}"
    );
    let bad = TrainConfig {
        epochs: 0,
        ..TrainConfig::default()
    };
    assert!(train_head(&one_class, None, "m", &bad).is_err());
}
