use super::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn m(rows: &[&[f32]]) -> Matrix {
    Matrix::from_rows(rows).unwrap()
}

fn assert_close(a: f32, b: f32, tol: f32) {
    assert!((a - b).abs() <= tol, "{a} vs {b}");
}

#[test]
fn contrastive_hand_computed() {
    // 1-d points 0 and 1 share a label, 0.25 is the other class; margin 1.
    // Positive term: d^2 = 1. Negative pairs: (0, 0.25) -> (1 - 0.25)^2 = 0.5625 and
    // (1, 0.25) -> (1 - 0.75)^2 = 0.0625, mean 0.3125. Total 1.3125.
    let z = m(&[&[0.0], &[1.0], &[0.25]]);
    let out = Loss::Contrastive { margin: 1.0 }
        .compute(&z, &[0, 0, 1])
        .unwrap();
    assert_close(out.loss, 1.3125, 1e-6);
    // dz0 = 2(0 - 1) + 0.5 * (-2 * 0.75 / 0.25) * (0 - 0.25) = -2 + 0.75.
    // dz1 = -2(0 - 1) + 0.5 * (-2 * 0.25 / 0.75) * (1 - 0.25) = 2 - 0.25.
    // dz2 = -0.75 + 0.25.
    assert_eq!(out.grad.rows(), 3);
    assert_close(out.grad.row(0)[0], -1.25, 1e-5);
    assert_close(out.grad.row(1)[0], 1.75, 1e-5);
    assert_close(out.grad.row(2)[0], -0.5, 1e-5);
}

#[test]
fn triplet_hand_computed() {
    // 1-d points 0, 1 (class 0) and 0.4, 3 (class 1), margin 0.2, squared distances.
    let z = m(&[&[0.0], &[1.0], &[0.4], &[3.0]]);
    let labels = [0, 0, 1, 1];
    // Batch-hard: anchor 0: 1 - 0.16 + 0.2 = 1.04; anchor 1: 1 - 0.36 + 0.2 = 0.84;
    // anchor 2: 6.76 - 0.16 + 0.2 = 6.8; anchor 3: 6.76 - 4 + 0.2 = 2.96. Mean 2.91.
    let hard = Loss::Triplet {
        margin: 0.2,
        mining: Mining::BatchHard,
    }
    .compute(&z, &labels)
    .unwrap();
    assert_close(hard.loss, 2.91, 1e-5);
    assert_eq!(hard.active, 4);
    // Semi-hard: (0,1) takes negative 3 (D 9 > 1): 0. (1,0) takes 3 (D 4): 0. (2,3) has no
    // negative beyond 6.76, so takes the farthest, 1 (D 0.36): 6.6. (3,2) takes 0 (D 9): 0.
    let semi = Loss::Triplet {
        margin: 0.2,
        mining: Mining::SemiHard,
    }
    .compute(&z, &labels)
    .unwrap();
    assert_close(semi.loss, 6.6 / 4.0, 1e-5);
    assert_eq!(semi.active, 1);
    // Only triplet (2, 3, 1) is active, weight w = 1/4:
    // dz2 = 2w(z2 - z3) - 2w(z2 - z1) = 0.5 * (-2.6) - 0.5 * (-0.6) = -1.0, dz3 = 1.3, dz1 = -0.3.
    assert_close(semi.grad.row(2)[0], -1.0, 1e-5);
    assert_close(semi.grad.row(3)[0], 1.3, 1e-5);
    assert_close(semi.grad.row(1)[0], -0.3, 1e-5);
    assert_close(semi.grad.row(0)[0], 0.0, 0.0);
}

#[test]
fn info_nce_hand_computed() {
    // z0 = z1 = e1 (same label), z2 = e2 (alone, so only a negative). t = 0.5.
    // Anchors 0 and 1: L = -2 + ln(e^2 + 1) = ln(1 + e^-2). Gradient with q = 1/(1 + e^2):
    // dz0 = dz1 = (-2q) e1 + q e2 ... see the derivation in the module docs.
    let z = m(&[&[1.0, 0.0], &[1.0, 0.0], &[0.0, 1.0]]);
    let out = Loss::InfoNce { temperature: 0.5 }
        .compute(&z, &[0, 0, 1])
        .unwrap();
    let expected = (1.0f64 + (-2.0f64).exp()).ln() as f32;
    assert_close(out.loss, expected, 1e-6);
    assert_eq!(out.active, 2);
    let q = (1.0 / (1.0 + 2.0f64.exp())) as f32;
    // G01 = G10 = -q, G02 = G12 = q, G2. = 0 (w = 1/2 and 1/t = 2 cancel).
    // dz0 = (G01 + G10) z1 + (G02 + G20) z2 = -2q e1 + q e2.
    assert_close(out.grad.row(0)[0], -2.0 * q, 1e-6);
    assert_close(out.grad.row(0)[1], q, 1e-6);
    // dz2 = (G20 + G02) z0 + (G21 + G12) z1 = 2q e1.
    assert_close(out.grad.row(2)[0], 2.0 * q, 1e-6);
    assert_close(out.grad.row(2)[1], 0.0, 1e-6);
}

fn random_batch(seed: u64, n: usize, dim: usize) -> Matrix {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut z = Matrix::zeros(n, dim);
    for v in z.as_mut_slice() {
        *v = rng.gen_range(-1.0..1.0);
    }
    z.normalize_rows();
    z
}

/// Central differences of the loss against the analytic gradient, on every coordinate.
fn check_gradient(loss: Loss, seed: u64) {
    let labels = [0, 0, 1, 1, 1, 2, 2, 3];
    let z = random_batch(seed, labels.len(), 5);
    let analytic = loss.compute(&z, &labels).unwrap();
    assert!(
        analytic.active > 0,
        "{loss:?}: nothing active, test is vacuous"
    );
    let h = 1e-3f32;
    let mut worst = 0.0f32;
    for idx in 0..z.as_slice().len() {
        let mut zp = z.clone();
        zp.as_mut_slice()[idx] += h;
        let mut zm = z.clone();
        zm.as_mut_slice()[idx] -= h;
        let lp = loss.compute(&zp, &labels).unwrap().loss;
        let lm = loss.compute(&zm, &labels).unwrap().loss;
        let numeric = (lp - lm) / (2.0 * h);
        let a = analytic.grad.as_slice()[idx];
        worst = worst.max((numeric - a).abs() / (1e-2 + a.abs()));
    }
    assert!(
        worst < 2e-2,
        "{loss:?}: worst relative gradient error {worst}"
    );
}

#[test]
fn finite_difference_contrastive() {
    for seed in 0..3 {
        check_gradient(Loss::Contrastive { margin: 1.2 }, seed);
    }
}

#[test]
fn finite_difference_triplet() {
    for seed in 0..3 {
        for mining in [Mining::BatchHard, Mining::SemiHard] {
            check_gradient(
                Loss::Triplet {
                    margin: 0.5,
                    mining,
                },
                seed,
            );
        }
    }
}

#[test]
fn finite_difference_info_nce() {
    for seed in 0..3 {
        check_gradient(Loss::InfoNce { temperature: 0.2 }, seed);
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let z = m(&[&[1.0], &[0.0]]);
    assert!(matches!(
        Loss::InfoNce { temperature: 0.0 }.compute(&z, &[0, 0]),
        Err(TrainError::InvalidConfig { .. })
    ));
    assert!(matches!(
        Loss::Contrastive { margin: 1.0 }.compute(&z, &[0]),
        Err(TrainError::WrongDimension { .. })
    ));
    let nan = m(&[&[f32::NAN], &[0.0]]);
    assert!(matches!(
        Loss::Contrastive { margin: 1.0 }.compute(&nan, &[0, 0]),
        Err(TrainError::NonFinite { .. })
    ));
}

#[test]
fn batch_without_positives_gives_zero_loss_for_info_nce_and_triplet() {
    let z = random_batch(7, 3, 4);
    for loss in [
        Loss::InfoNce { temperature: 0.1 },
        Loss::Triplet {
            margin: 0.2,
            mining: Mining::BatchHard,
        },
    ] {
        let out = loss.compute(&z, &[0, 1, 2]).unwrap();
        assert_eq!(out.loss, 0.0);
        assert!(out.grad.as_slice().iter().all(|&g| g == 0.0));
    }
}
