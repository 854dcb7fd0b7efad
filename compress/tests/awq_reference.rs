//! AWQ's scale search against a float64 reference written here from the formulas of
//! llm-compressor 0.14 `AWQModifier` (`_get_grid_search_params`, `_compute_layer_means`,
//! `_compute_best_scale`, `_compute_loss`), on one Linear with outlier input channels.
use quantlab_compress::awq::{
    candidate_scales, scaled_fake_quant, search, weight_means, AwqConfig, DuoScaling,
};
use quantlab_compress::scheme::{Strategy, WeightType};
use tch::{Kind, Tensor};

fn vec2(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

/// Round an f64 to the nearest bfloat16 (ties to even), as the stored scale dtype does.
fn bf16(x: f64) -> f64 {
    let b = (x as f32).to_bits();
    let r = b.wrapping_add(0x7FFF + ((b >> 16) & 1)) & 0xFFFF_0000;
    f32::from_bits(r) as f64
}

/// Deterministic pseudo-random numbers in [-1, 1).
fn lcg(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// int4 asymmetric group fake quantization in f64 (compressed-tensors' formulas, bf16 scales).
fn fq_ref(w: &[f64], out: usize, inf: usize, g: usize) -> Vec<f64> {
    let (qmin, qmax) = (-8.0f64, 7.0f64);
    let mut r = vec![0.0; w.len()];
    for o in 0..out {
        for gi in 0..inf / g {
            let xs = &w[o * inf + gi * g..o * inf + (gi + 1) * g];
            let mn = xs.iter().cloned().fold(f64::INFINITY, f64::min).min(0.0);
            let mx = xs
                .iter()
                .cloned()
                .fold(f64::NEG_INFINITY, f64::max)
                .max(0.0);
            let scale = bf16(((mx - mn) / (qmax - qmin)).max(f32::EPSILON as f64));
            let zp = (qmin - (mn / scale).round_ties_even()).clamp(qmin, qmax);
            for (j, x) in xs.iter().enumerate() {
                let q = ((x / scale).round_ties_even() + zp).clamp(qmin, qmax);
                r[o * inf + gi * g + j] = (q - zp) * scale;
            }
        }
    }
    r
}

#[test]
fn grid_is_llm_compressors() {
    let g = AwqConfig::default().grid();
    assert_eq!(g.len(), 20);
    assert_eq!(g[0], (0.0, false));
    assert_eq!(g[1], (0.0, true));
    assert_eq!(g[10], (9.0 / 18.0, true));
    assert_eq!(g[19], (1.0, true));
    let off = AwqConfig {
        n_grid: 20,
        duo_scaling: DuoScaling::Off,
    }
    .grid();
    assert_eq!(off.len(), 20);
    assert_eq!(off[19], (1.0, false));
    assert_eq!(off[1], (1.0 / 19.0, false));
    let both = AwqConfig {
        n_grid: 20,
        duo_scaling: DuoScaling::Both,
    }
    .grid();
    assert_eq!(both.len(), 20);
    assert_eq!(
        &both[..4],
        &[
            (0.0, false),
            (0.0, true),
            (1.0 / 9.0, false),
            (1.0 / 9.0, true)
        ]
    );
}

#[test]
fn search_matches_float64_reference() {
    let (tokens, inf, out, g) = (96usize, 32usize, 12usize, 8usize);
    // Activations with three outlier channels, weights with a few large entries.
    let mut x = lcg(tokens * inf, 1);
    for t in 0..tokens {
        for c in [3usize, 17, 30] {
            x[t * inf + c] *= 25.0;
        }
    }
    let mut w: Vec<f64> = lcg(out * inf, 2).iter().map(|v| v * 0.05).collect();
    w[5] = 0.9;
    w[inf + 20] = -0.7;
    let xt = Tensor::from_slice(&x)
        .view([tokens as i64, inf as i64])
        .to_kind(Kind::Float);
    let wt = Tensor::from_slice(&w)
        .view([out as i64, inf as i64])
        .to_kind(Kind::Float);
    // f32 copies of the inputs, so both sides start from the same numbers.
    let x = vec2(&xt);
    let w = vec2(&wt);

    // x_mean and w_mean.
    let x_mean: Vec<f64> = (0..inf)
        .map(|c| (0..tokens).map(|t| x[t * inf + c].abs()).sum::<f64>() / tokens as f64)
        .collect();
    let mut w_mean = vec![0.0; inf];
    for o in 0..out {
        for gi in 0..inf / g {
            let row = &w[o * inf + gi * g..o * inf + (gi + 1) * g];
            let m = row.iter().fold(0.0f64, |a, v| a.max(v.abs())) + 1e-6;
            for (j, v) in row.iter().enumerate() {
                w_mean[gi * g + j] += v.abs() / m / out as f64;
            }
        }
    }
    let wm = weight_means(&[&wt], Strategy::Group(g));
    for (a, b) in vec2(&wm).iter().zip(&w_mean) {
        assert!((a - b).abs() < 1e-5, "w_mean {a} vs {b}");
    }
    let xm = xt.abs().mean_dim([0i64].as_slice(), false, Kind::Float);

    // Reference loss of every grid point.
    let cfg = AwqConfig::default();
    let y_fp: Vec<f64> = (0..tokens * out)
        .map(|i| {
            let (t, o) = (i / out, i % out);
            (0..inf).map(|c| x[t * inf + c] * w[o * inf + c]).sum()
        })
        .collect();
    let mut ref_losses = Vec::new();
    for (ratio, duo) in cfg.grid() {
        let mut s: Vec<f64> = (0..inf)
            .map(|c| {
                let v = if duo {
                    x_mean[c].powf(ratio) / (w_mean[c].powf(1.0 - ratio) + 1e-4)
                } else {
                    x_mean[c].powf(ratio)
                };
                v.max(1e-4)
            })
            .collect();
        let norm = (s.iter().cloned().fold(f64::MIN, f64::max)
            * s.iter().cloned().fold(f64::MAX, f64::min))
        .sqrt();
        s.iter_mut().for_each(|v| *v /= norm);
        let ours = vec2(&candidate_scales(&xm, Some(&wm), ratio, duo));
        for (a, b) in ours.iter().zip(&s) {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                "ratio {ratio}: scale {a} vs {b}"
            );
        }
        // Use our (f32) scales from here on so that the quantization grid is the same.
        let s = ours;
        let ws: Vec<f64> = (0..out * inf).map(|i| w[i] * s[i % inf]).collect();
        let q = fq_ref(&ws, out, inf, g);
        let wq: Vec<f64> = (0..out * inf).map(|i| q[i] / s[i % inf]).collect();
        let sfq = scaled_fake_quant(
            &wt,
            &Tensor::from_slice(&s).to_kind(Kind::Float),
            WeightType::Int { bits: 4 },
            Strategy::Group(g),
            false,
            Kind::BFloat16,
        );
        for (a, b) in vec2(&sfq).iter().zip(&wq) {
            assert!((a - b).abs() < 1e-5, "ratio {ratio}: Q(W·s)/s {a} vs {b}");
        }
        let loss: f64 = (0..tokens * out)
            .map(|i| {
                let (t, o) = (i / out, i % out);
                let y: f64 = (0..inf).map(|c| x[t * inf + c] * wq[o * inf + c]).sum();
                (y - y_fp[i]).powi(2)
            })
            .sum::<f64>()
            / (tokens * out) as f64;
        ref_losses.push(loss);
    }
    let best_ref =
        ref_losses.iter().enumerate().fold(
            (0, f64::INFINITY),
            |b, (i, l)| if *l < b.1 { (i, *l) } else { b },
        );

    let y_fp_t = xt.matmul(&wt.tr());
    let found = search(&cfg, &xm, Some(&wm), |s| {
        let wq = scaled_fake_quant(
            &wt,
            s,
            WeightType::Int { bits: 4 },
            Strategy::Group(g),
            false,
            Kind::BFloat16,
        );
        Ok((xt.matmul(&wq.tr()) - &y_fp_t)
            .square()
            .mean(Kind::Double)
            .double_value(&[]))
    })
    .unwrap();
    let (ratio, duo) = cfg.grid()[best_ref.0];
    assert_eq!(
        (found.ratio, found.duo),
        (ratio, duo),
        "reference losses {ref_losses:?}"
    );
    assert!(
        (found.best_loss - best_ref.1).abs() < 1e-4 * best_ref.1,
        "{} vs {}",
        found.best_loss,
        best_ref.1
    );
    assert!((found.initial_loss - ref_losses[0]).abs() < 1e-4 * ref_losses[0]);
    // The outlier channels make scaling worthwhile: the search beats identity scales clearly.
    assert!(found.best_loss < 0.8 * found.initial_loss, "{found:?}");
    assert!(found.ratio > 0.0);
}
