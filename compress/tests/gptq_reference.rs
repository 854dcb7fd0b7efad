//! Our GPTQ (blocked, lazy batch updates, tch) against a straightforward float64 implementation of
//! the paper's algorithm written here in plain Rust (Frantar et al. 2022, Algorithm 1 without the
//! lazy batching: quantize column j, e = (w_j - q_j) / [H⁻¹]_jj with the upper Cholesky factor of
//! H⁻¹, update every later column at once). Same Hessian, same weights, small layer.
use quantlab_compress::gptq::{
    gptq_quantize, ActOrder, GptqConfig, Hessian, ScaleUpdate, WeightQuant,
};
use quantlab_compress::observer::Observer;
use quantlab_compress::scheme::{Strategy, WeightType};
use tch::{Device, Kind, Tensor};

/// Lower Cholesky factor of a symmetric positive definite n×n matrix (row-major).
fn cholesky(a: &[f64], n: usize) -> Vec<f64> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                assert!(s > 0.0, "reference Cholesky failed");
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    l
}

/// Inverse of an SPD matrix through its Cholesky factor.
fn spd_inverse(a: &[f64], n: usize) -> Vec<f64> {
    let l = cholesky(a, n);
    // Solve L Y = I, then Lᵀ X = Y.
    let mut inv = vec![0.0; n * n];
    for c in 0..n {
        let mut y = vec![0.0; n];
        for i in 0..n {
            let mut s = if i == c { 1.0 } else { 0.0 };
            for k in 0..i {
                s -= l[i * n + k] * y[k];
            }
            y[i] = s / l[i * n + i];
        }
        let mut x = vec![0.0; n];
        for i in (0..n).rev() {
            let mut s = y[i];
            for k in i + 1..n {
                s -= l[k * n + i] * x[k];
            }
            x[i] = s / l[i * n + i];
        }
        for i in 0..n {
            inv[i * n + c] = x[i];
        }
    }
    inv
}

fn bf16_round(x: f32) -> f64 {
    half::bf16::from_f32(x).to_f64()
}

struct RefOut {
    q: Vec<f64>,
    loss: f64,
}

/// Reference GPTQ, symmetric int `bits`, min-max scales (f32 arithmetic, bf16 storage, as the
/// checkpoint stores them), groups of `g` columns (g = cols for per-channel), scales computed
/// either before the sweep or at each group's first column from the current weights; optional
/// act-order by decreasing diag(H) (`weight` flavour: groups of the original columns).
#[allow(clippy::too_many_arguments)]
fn reference(
    w: &[f64],
    h: &[f64],
    rows: usize,
    cols: usize,
    bits: u32,
    g: usize,
    at_boundary: bool,
    actorder: bool,
) -> RefOut {
    let qmax = ((1i64 << (bits - 1)) - 1) as f64;
    let qmin = -qmax - 1.0;
    let mut w = w.to_vec();
    let mut h = h.to_vec();
    let n = cols;
    let perm: Vec<usize> = if actorder {
        let mut p: Vec<usize> = (0..n).collect();
        p.sort_by(|&a, &b| {
            h[b * n + b]
                .partial_cmp(&h[a * n + a])
                .unwrap()
                .then(a.cmp(&b))
        });
        p
    } else {
        (0..n).collect()
    };
    let scale_of = |vals: &[f64]| -> f64 {
        let amax = vals.iter().fold(0.0f64, |m, v| m.max(v.abs())) as f32;
        bf16_round((amax / ((qmax - qmin) as f32 / 2.0)).max(f32::EPSILON))
    };
    // Static scales in the original column order.
    let mut scales = vec![0.0; rows * (n / g)];
    if !at_boundary {
        for r in 0..rows {
            for gi in 0..n / g {
                scales[r * (n / g) + gi] = scale_of(&w[r * n + gi * g..r * n + gi * g + g]);
            }
        }
    }
    // Permute columns of W and rows/cols of H.
    let wp: Vec<f64> = (0..rows)
        .flat_map(|r| perm.iter().map(move |&c| (r, c)))
        .map(|(r, c)| w[r * n + c])
        .collect();
    let hp: Vec<f64> = (0..n)
        .flat_map(|i| perm.iter().map(move |&j| (i, j)))
        .map(|(i, j)| h[perm[i] * n + j])
        .collect();
    w = wp;
    h = hp;
    let mean_diag: f64 = (0..n).map(|i| h[i * n + i]).sum::<f64>() / n as f64;
    for i in 0..n {
        h[i * n + i] += 0.01 * mean_diag;
    }
    let hinv_full = spd_inverse(&h, n);
    let l = cholesky(&hinv_full, n); // H⁻¹ = L Lᵀ; upper factor U = Lᵀ, U[i][j] = L[j][i]
    let u = |i: usize, j: usize| l[j * n + i];
    let mut q = vec![0.0; rows * n];
    let mut loss = 0.0;
    for j in 0..n {
        let orig = perm[j];
        let gi = orig / g;
        if at_boundary && j % g == 0 {
            for r in 0..rows {
                scales[r * (n / g) + gi] = scale_of(&w[r * n + j..r * n + j + g]);
            }
        }
        for r in 0..rows {
            let s = scales[r * (n / g) + gi];
            let wv = w[r * n + j];
            let qv = (wv / s).round_ties_even().clamp(qmin, qmax) * s;
            q[r * n + j] = qv;
            let e = (wv - qv) / u(j, j);
            loss += e * e / 2.0;
            for k in j + 1..n {
                w[r * n + k] -= e * u(j, k);
            }
        }
    }
    // Undo the permutation.
    let mut out = vec![0.0; rows * n];
    for r in 0..rows {
        for (j, &c) in perm.iter().enumerate() {
            out[r * n + c] = q[r * n + j];
        }
    }
    RefOut { q: out, loss }
}

fn problem(rows: i64, cols: i64, seed: i64) -> (Tensor, Tensor) {
    tch::manual_seed(seed);
    let w = Tensor::randn([rows, cols], (Kind::Double, Device::Cpu)) * 0.05;
    // Correlated inputs with an outlier channel, 4 sequences of 64 tokens.
    let x = Tensor::randn([256, cols], (Kind::Double, Device::Cpu));
    let mix = Tensor::randn([cols, cols], (Kind::Double, Device::Cpu)) * 0.3
        + Tensor::eye(cols, (Kind::Double, Device::Cpu));
    let x = x.mm(&mix);
    let _ = x.narrow(1, 3, 1).g_mul_scalar_(8.0);
    let mut hs = Hessian::new(cols, Kind::Double, Device::Cpu);
    hs.add(&x, 4);
    (w, hs.finish())
}

fn to_vec(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

fn check(bits: u32, strategy: Strategy, block: usize, update: ScaleUpdate, actorder: ActOrder) {
    let (rows, cols) = (12i64, 64i64);
    let (w, h) = problem(rows, cols, 7);
    let q = WeightQuant {
        ty: WeightType::Int { bits },
        strategy,
        symmetric: true,
        observer: Observer::MinMax,
        scale_kind: Kind::BFloat16,
    };
    let cfg = GptqConfig {
        block_size: block,
        actorder,
        scale_update: update,
        ..GptqConfig::default()
    };
    // Both sweeps (on the host, and as tensor operations) against the reference.
    for host in [true, false] {
        let ours =
            quantlab_compress::gptq::gptq_quantize_sweep(&w, &h, &q, &cfg, "test", host).unwrap();
        check_against_reference(&w, &h, &q, &cfg, &ours, bits, strategy, block, host);
    }
    let ours = gptq_quantize(&w, &h, &q, &cfg, "test").unwrap();
    check_against_reference(&w, &h, &q, &cfg, &ours, bits, strategy, block, true);
}

#[allow(clippy::too_many_arguments)]
fn check_against_reference(
    w: &Tensor,
    h: &Tensor,
    q: &WeightQuant,
    cfg: &GptqConfig,
    ours: &quantlab_compress::gptq::GptqOutput,
    bits: u32,
    strategy: Strategy,
    block: usize,
    host: bool,
) {
    let (rows, cols) = (w.size()[0], w.size()[1]);
    let (update, actorder) = (cfg.scale_update, cfg.actorder);
    let g = match strategy {
        Strategy::Group(g) => g,
        _ => cols as usize,
    };
    let r = reference(
        &to_vec(w),
        &to_vec(h),
        rows as usize,
        cols as usize,
        bits,
        g,
        update == ScaleUpdate::GroupBoundary,
        actorder != ActOrder::None,
    );
    let ov = to_vec(&ours.weight);
    let max_diff = ov
        .iter()
        .zip(&r.q)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(max_diff < 1e-5, "bits {bits} {strategy:?} block {block} {update:?} {actorder:?} host sweep {host}: max |ours - reference| = {max_diff}");
    let loss: f64 = ours.row_losses.iter().sum();
    assert!(
        (loss - r.loss).abs() <= 1e-5 * r.loss.max(1.0),
        "loss {loss} vs reference {}",
        r.loss
    );
    // GPTQ must beat round-to-nearest on the layer's output error tr((W-Q) H (W-Q)ᵀ).
    let rtn = quantlab_compress::quantize::quantize_rtn(w, q.ty, strategy, Kind::BFloat16);
    let rtn_w = quantlab_compress::quantize::dequantize(&rtn, strategy).to_kind(Kind::Double);
    let out_err = |x: &Tensor| {
        let d = w - x;
        d.mm(h).mm(&d.tr()).trace().double_value(&[])
    };
    assert!(
        out_err(&ours.weight) < out_err(&rtn_w),
        "GPTQ output error {} not below RTN {}",
        out_err(&ours.weight),
        out_err(&rtn_w)
    );
}

#[test]
fn int4_groups_static_scales_match_reference() {
    check(
        4,
        Strategy::Group(16),
        16,
        ScaleUpdate::Static,
        ActOrder::None,
    );
    check(
        4,
        Strategy::Group(16),
        128,
        ScaleUpdate::Static,
        ActOrder::None,
    );
}

#[test]
fn int4_groups_scales_at_group_boundary_match_reference() {
    // Group 16 inside blocks of 32: the second group of a block sees in-block updates.
    check(
        4,
        Strategy::Group(16),
        32,
        ScaleUpdate::GroupBoundary,
        ActOrder::None,
    );
    check(
        4,
        Strategy::Group(32),
        16,
        ScaleUpdate::GroupBoundary,
        ActOrder::None,
    );
}

#[test]
fn int8_channel_and_weight_act_order_match_reference() {
    check(
        8,
        Strategy::Channel,
        16,
        ScaleUpdate::Static,
        ActOrder::None,
    );
    check(
        4,
        Strategy::Group(16),
        16,
        ScaleUpdate::Static,
        ActOrder::Weight,
    );
    check(
        8,
        Strategy::Channel,
        24,
        ScaleUpdate::Static,
        ActOrder::Weight,
    );
}

#[test]
fn group_act_order_stores_g_idx_and_reproduces_its_weights() {
    let (w, h) = problem(8, 64, 3);
    let q = WeightQuant {
        ty: WeightType::Int { bits: 4 },
        strategy: Strategy::Group(16),
        symmetric: true,
        observer: Observer::MinMax,
        scale_kind: Kind::BFloat16,
    };
    let cfg = GptqConfig {
        block_size: 16,
        actorder: ActOrder::Group,
        scale_update: ScaleUpdate::GroupBoundary,
        ..GptqConfig::default()
    };
    let o = gptq_quantize(&w, &h, &q, &cfg, "t").unwrap();
    let g = o.g_idx.expect("group act-order stores g_idx");
    let gv = Vec::<i64>::try_from(&g).unwrap();
    // 16 columns per group, groups 0..4, not the identity mapping (outlier column 3 goes first).
    for k in 0..4 {
        assert_eq!(gv.iter().filter(|&&x| x == k).count(), 16);
    }
    assert_eq!(gv[3], 0);
    assert_ne!(gv, (0..64).map(|c| c / 16).collect::<Vec<_>>());
    // Every weight is code × its group's scale.
    let s = o.qparams.scale.index_select(1, &g).to_kind(Kind::Double);
    let codes = (&o.weight / &s).round();
    let back = &codes * &s;
    assert!((back - &o.weight).abs().max().double_value(&[]) < 1e-9);
    assert!(codes.max().double_value(&[]) <= 7.0 && codes.min().double_value(&[]) >= -8.0);
}

#[test]
fn dead_columns_and_singular_hessian() {
    let (w, h) = problem(6, 32, 5);
    // Column 5 never sees input: H row/col zero -> weight column zeroed, no NaN.
    let h2 = h.copy();
    let _ = h2.narrow(0, 5, 1).zero_();
    let _ = h2.narrow(1, 5, 1).zero_();
    let q = WeightQuant {
        ty: WeightType::Int { bits: 4 },
        strategy: Strategy::Group(8),
        symmetric: true,
        observer: Observer::MinMax,
        scale_kind: Kind::BFloat16,
    };
    let o = gptq_quantize(&w, &h2, &q, &GptqConfig::default(), "dead").unwrap();
    assert_eq!(
        o.weight
            .narrow(1, 5, 1)
            .abs()
            .sum(Kind::Double)
            .double_value(&[]),
        0.0
    );
    assert!(bool::try_from(o.weight.isfinite().all()).unwrap());
    assert_eq!(o.dampening_used, Some(0.01));
    // A Hessian that is not positive semi-definite: dampening is raised, then RTN is used.
    let bad = Tensor::eye(32, (Kind::Double, Device::Cpu)) * -1.0;
    let o = gptq_quantize(&w, &bad, &q, &GptqConfig::default(), "neg").unwrap();
    assert_eq!(
        o.dampening_used, None,
        "negative definite Hessian must fall back to RTN"
    );
    let rtn = quantlab_compress::quantize::quantize_rtn(&w, q.ty, q.strategy, Kind::BFloat16);
    let rtn_w = quantlab_compress::quantize::dequantize(&rtn, q.strategy).to_kind(Kind::Double);
    assert!(
        (&o.weight - rtn_w).abs().max().double_value(&[]) < 1e-9,
        "fallback must equal RTN"
    );
    // NaN weights are refused with the module's name.
    let nanw = w.copy();
    let _ = nanw.get(0).get(0).fill_(f64::NAN);
    let e = gptq_quantize(
        &nanw,
        &h,
        &q,
        &GptqConfig::default(),
        "model.layers.0.mlp.up_proj",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("model.layers.0.mlp.up_proj") && e.contains("NaN"),
        "{e}"
    );
    // A group size that does not divide the input dimension.
    let q12 = WeightQuant {
        strategy: Strategy::Group(12),
        ..q
    };
    let e = gptq_quantize(&w, &h, &q12, &GptqConfig::default(), "m")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("group size 12 does not divide the input dimension 32"),
        "{e}"
    );
}

#[test]
fn hessian_is_two_xtx_over_sequences_with_symmetric_blocks() {
    tch::manual_seed(11);
    let x = Tensor::randn([300, 1100], (Kind::Double, Device::Cpu));
    let mut h = Hessian::new(1100, Kind::Double, Device::Cpu);
    h.add(&x.narrow(0, 0, 100), 1);
    h.add(&x.narrow(0, 100, 200).view([2, 100, 1100]), 3);
    assert_eq!((h.sequences, h.tokens), (4, 300));
    let want = x.tr().mm(&x) * (2.0 / 4.0);
    let got = h.finish();
    let diff = (&got - &want).abs().max().double_value(&[]);
    assert!(diff < 1e-9, "blocked Hessian differs by {diff}");
    assert!(
        (&got - got.tr()).abs().max().double_value(&[]) == 0.0,
        "not symmetric"
    );
}

/// An indefinite Hessian that the default dampening (0.01 · mean diag) does not fix but ten times
/// it does: GPTQ raises the dampening to 0.1 and gives exactly what it gives when asked for 0.1
/// from the start (the retry dampens the same matrix in place, it does not stack the tries).
#[test]
fn raised_dampening_equals_that_dampening_from_the_start() {
    tch::manual_seed(7);
    let n = 32;
    let (w, _) = problem(6, n, 5);
    // H = Q diag(λ) Qᵀ with λ_0 = -0.05 and the others in [1, 2]: mean diag ≈ 1.45, so
    // 0.01 · 1.45 leaves λ_0 < 0 and 0.1 · 1.45 makes it positive.
    let g = Tensor::randn([n, n], (Kind::Double, Device::Cpu));
    let (qm, _) = Tensor::linalg_qr(&g, "reduced");
    let lam = Tensor::linspace(1.0, 2.0, n, (Kind::Double, Device::Cpu));
    let _ = lam.get(0).fill_(-0.05);
    let h = qm.mm(&lam.diag(0)).mm(&qm.tr());
    let h = (&h + h.tr()) / 2.0;
    let q = WeightQuant {
        ty: WeightType::Int { bits: 4 },
        strategy: Strategy::Group(8),
        symmetric: true,
        observer: Observer::MinMax,
        scale_kind: Kind::BFloat16,
    };
    let raised = gptq_quantize(&w, &h, &q, &GptqConfig::default(), "raised").unwrap();
    assert_eq!(raised.dampening_used, Some(0.1));
    let direct = GptqConfig {
        dampening_frac: 0.1,
        ..GptqConfig::default()
    };
    let from_start = gptq_quantize(&w, &h, &q, &direct, "direct").unwrap();
    assert_eq!(from_start.dampening_used, Some(0.1));
    let d = (&raised.weight - &from_start.weight)
        .abs()
        .max()
        .double_value(&[]);
    assert!(d < 1e-9, "raised vs direct differ by {d}");
    let losses: f64 = raised.row_losses.iter().sum();
    let direct_losses: f64 = from_start.row_losses.iter().sum();
    assert!((losses - direct_losses).abs() <= 1e-9 * direct_losses.abs().max(1.0));
    // and it is not RTN (the Hessian's off-diagonal terms were used)
    let rtn = quantlab_compress::quantize::quantize_rtn(&w, q.ty, q.strategy, Kind::BFloat16);
    let rtn_w = quantlab_compress::quantize::dequantize(&rtn, q.strategy).to_kind(Kind::Double);
    assert!((&raised.weight - rtn_w).abs().max().double_value(&[]) > 1e-6);
}

/// Per-tensor int8 (one scale for the whole weight): the host sweep reads that scale for every
/// row (it indexed a `[1, 1]` scale as `[rows, 1]` and panicked), equals the tensor sweep, and
/// beats round-to-nearest on the layer's output error.
#[test]
fn int8_per_tensor_host_sweep_equals_the_tensor_sweep() {
    let (w, h) = problem(12, 64, 5);
    let q = WeightQuant {
        ty: WeightType::Int { bits: 8 },
        strategy: Strategy::Tensor,
        symmetric: true,
        observer: Observer::MinMax,
        scale_kind: Kind::BFloat16,
    };
    let cfg = GptqConfig {
        block_size: 16,
        ..GptqConfig::default()
    };
    let host = quantlab_compress::gptq::gptq_quantize_sweep(&w, &h, &q, &cfg, "t", true).unwrap();
    let dev = quantlab_compress::gptq::gptq_quantize_sweep(&w, &h, &q, &cfg, "t", false).unwrap();
    let diff = (&host.weight - &dev.weight).abs().max().double_value(&[]);
    assert!(diff < 1e-12, "host and tensor sweeps differ by {diff}");
    assert_eq!(host.qparams.scale.numel(), 1, "one scale for the tensor");
    let scale = host.qparams.scale.double_value(&[0, 0]);
    // Every weight is on the one integer grid.
    let steps = &host.weight / scale;
    let off = (&steps - steps.round()).abs().max().double_value(&[]);
    assert!(off < 1e-9, "weights off the per-tensor grid by {off} steps");
    let rtn = quantlab_compress::quantize::quantize_rtn(&w, q.ty, Strategy::Tensor, Kind::BFloat16);
    let rtn_w =
        quantlab_compress::quantize::dequantize(&rtn, Strategy::Tensor).to_kind(Kind::Double);
    let out_err = |x: &Tensor| {
        let d = &w - x;
        d.mm(&h).mm(&d.tr()).trace().double_value(&[])
    };
    assert!(out_err(&host.weight) < out_err(&rtn_w));
}
