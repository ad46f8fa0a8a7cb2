use super::*;

fn random_matrix(rows: usize, cols: usize, seed: u64) -> Matrix {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let data = (0..rows * cols).map(|_| rng.gen_range(-1.0..1.0)).collect();
    Matrix::from_vec(rows, cols, data).unwrap()
}

/// Objective `sum(c * z)` for a fixed `c`, whose gradient w.r.t. `z` is `c`.
fn objective(head: &Head, x: &Matrix, c: &Matrix, centred: bool) -> f64 {
    let offset = vec![0.1f32; x.cols()];
    let z = head.forward_centred(x, Some(&offset), centred).output;
    z.as_slice()
        .iter()
        .zip(c.as_slice())
        .map(|(a, b)| f64::from(*a) * f64::from(*b))
        .sum()
}

fn check_head_gradient(arch: HeadArch, centred: bool) {
    let x = random_matrix(4, 6, 1);
    let mut head = Head::init(arch, 6, "m", 3).unwrap();
    // Non-zero biases so the bias gradient is exercised away from the initial point.
    for layer in head.layers_mut() {
        for (i, b) in layer.bias.iter_mut().enumerate() {
            *b = 0.05 * i as f32;
        }
    }
    let c = random_matrix(4, head.output_dim(), 2);
    let offset = vec![0.1f32; 6];
    let cache = head.forward_centred(&x, Some(&offset), centred);
    let grads = head.backward(&cache, &c);
    let h = 1e-3f32;
    let mut worst = 0.0f64;
    for (l, grad) in grads.iter().enumerate() {
        let nw = head.layers()[l].weight.as_slice().len();
        for idx in 0..nw + head.layers()[l].bias.len() {
            let mut plus = head.clone();
            let mut minus = head.clone();
            if idx < nw {
                plus.layers_mut()[l].weight.as_mut_slice()[idx] += h;
                minus.layers_mut()[l].weight.as_mut_slice()[idx] -= h;
            } else {
                plus.layers_mut()[l].bias[idx - nw] += h;
                minus.layers_mut()[l].bias[idx - nw] -= h;
            }
            let numeric = (objective(&plus, &x, &c, centred) - objective(&minus, &x, &c, centred))
                / (2.0 * f64::from(h));
            let analytic = if idx < nw {
                grad.weight.as_slice()[idx]
            } else {
                grad.bias[idx - nw]
            };
            let err = (numeric - f64::from(analytic)).abs() / (1e-2 + f64::from(analytic).abs());
            worst = worst.max(err);
        }
    }
    assert!(
        worst < 2e-2,
        "{arch:?}: worst relative gradient error {worst}"
    );
}

#[test]
fn linear_gradient_matches_finite_differences() {
    check_head_gradient(HeadArch::Linear { out: 3 }, false);
}

#[test]
fn mlp_gradient_matches_finite_differences() {
    check_head_gradient(HeadArch::Mlp { hidden: 5, out: 3 }, false);
}

#[test]
fn mlp_gradient_with_batch_centring_matches_finite_differences() {
    check_head_gradient(HeadArch::Mlp { hidden: 5, out: 3 }, true);
}

#[test]
fn folding_reproduces_centred_forward_passes() {
    let x = random_matrix(5, 6, 4);
    let head = Head::init(HeadArch::Mlp { hidden: 7, out: 3 }, 6, "m", 2).unwrap();
    let offset = vec![0.05f32; 6];
    // On the full set, batch centring equals centring on the set's mean, so the folded head
    // must give the same outputs as the centred pass.
    let centred = head.forward_centred(&x, Some(&offset), true).output;
    let folded = head.fold_offset(&offset).fold_hidden_means(&x);
    let plain = folded.apply_matrix(&x).unwrap();
    for (a, b) in centred.as_slice().iter().zip(plain.as_slice()) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn saved_form_matches_batched_forward_and_is_unit_length() {
    // The engine applies the saved form (`embed::Head`) one vector at a time; it must give what
    // training's batched forward pass gave.
    let head = Head::init(HeadArch::Mlp { hidden: 8, out: 4 }, 6, "m", 9).unwrap();
    let saved = head.to_inference().unwrap();
    let x = random_matrix(3, 6, 5);
    let batch = head.apply_matrix(&x).unwrap();
    for r in 0..3 {
        let one = saved.apply(x.row(r)).unwrap();
        for (a, b) in one.iter().zip(batch.row(r)) {
            assert!((a - b).abs() < 1e-5);
        }
        let norm: f32 = one.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}

#[test]
fn wrong_input_dimension_is_a_typed_error() {
    let head = Head::init(HeadArch::Linear { out: 4 }, 6, "m", 1).unwrap();
    assert!(matches!(
        head.apply_matrix(&Matrix::zeros(2, 7)),
        Err(TrainError::WrongDimension {
            expected: 6,
            got: 7
        })
    ));
}

#[test]
fn new_rejects_inconsistent_layers() {
    let l1 = Dense {
        weight: Matrix::zeros(3, 4),
        bias: vec![0.0; 3],
    };
    let l2 = Dense {
        weight: Matrix::zeros(2, 5),
        bias: vec![0.0; 2],
    };
    assert!(Head::new(HeadKind::Mlp, "m", "", vec![l1.clone(), l2]).is_err());
    assert!(Head::new(HeadKind::Linear, "m", "", vec![l1.clone(), l1.clone()]).is_err());
    let bad_bias = Dense {
        weight: Matrix::zeros(3, 4),
        bias: vec![0.0; 2],
    };
    assert!(Head::new(HeadKind::Linear, "m", "", vec![bad_bias]).is_err());
    assert!(Head::init(HeadArch::Linear { out: 0 }, 4, "m", 0).is_err());
}

#[test]
fn square_linear_head_starts_as_identity() {
    let head = Head::init(HeadArch::Linear { out: 5 }, 5, "m", 0).unwrap();
    let x = [3.0, 0.0, 4.0, 0.0, 0.0];
    let y = head.to_inference().unwrap().apply(&x).unwrap();
    let want = [0.6, 0.0, 0.8, 0.0, 0.0];
    assert!(
        y.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
        "{y:?}"
    );
}
