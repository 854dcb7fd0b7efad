//! AWQ, activation-aware weight quantization (Lin et al. 2024, arXiv 2306.00978, §3.2 "searching
//! to scale"), as llm-compressor 0.14 runs it (`modifiers/transform/awq/base.py`, `AWQModifier`).
//!
//! For each mapping (a "smooth" op followed by the Linears it feeds, the "balance" layers), with
//! `X` the balance layers' calibration input `[tokens, in]` and `W` their weights `[out, in]`:
//!
//! - `x_mean[j] = mean_tokens |X[:, j]|` (fp32);
//! - `w_mean[j]` = the mean over all rows of all balance layers of `|W[r, j]| / (max|W[r, group(j)]| + 1e-6)`
//!   (each weight normalised by the max of its quantization group, `[in]`);
//! - for each grid point `(ratio, duo)`: `s = x_mean^ratio / (w_mean^(1-ratio) + 1e-4)` if `duo`,
//!   else `s = x_mean^ratio`; then `s ← max(s, 1e-4)`, `s ← s / sqrt(max(s)·min(s))`, non-finite
//!   entries set to 1;
//! - the loss of `s` is the mean squared error between the parent module's output with the
//!   original weights and with every balance weight replaced by `Q(W·diag(s))·diag(s)⁻¹` (`Q`: the
//!   scheme's fake quantization with min-max qparams), over all calibration tokens and features;
//! - the best `s` is folded in: balance weights `W ← W·diag(s)`, the smooth op's output divided by
//!   `s` (a norm's weight, or the rows of a Linear such as `v_proj` / `up_proj`).
//!
//! Grid (`_get_grid_search_params`): with `duo_scaling` on (the default), `(0, off)` then
//! `(i/(n-2), on)` for `i` in `0..n-1`; off: `(i/(n-1), off)` for `i` in `0..n`; "both":
//! `(i/(n/2-1), off)` and `(i/(n/2-1), on)` for `i` in `0..n/2`.

use crate::quantize::{expand_qparam, fake_quantize, minmax_qparams};
use crate::scheme::{Strategy, WeightType};
use tch::{Kind, Tensor};

/// `duo_scaling` of llm-compressor's `AWQModifier`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuoScaling {
    /// Activations only: `s = x_mean^ratio`.
    Off,
    /// Activations and weights: `s = x_mean^ratio / w_mean^(1-ratio)` (plus the identity point).
    On,
    /// Half the grid each way.
    Both,
}

/// AWQ settings (llm-compressor defaults: `n_grid` 20, `duo_scaling` on).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AwqConfig {
    /// Grid points of the scale search.
    pub n_grid: usize,
    pub duo_scaling: DuoScaling,
}

impl Default for AwqConfig {
    fn default() -> Self {
        AwqConfig {
            n_grid: 20,
            duo_scaling: DuoScaling::On,
        }
    }
}

impl AwqConfig {
    /// The `(ratio, duo)` points searched, in order (see the module doc).
    pub fn grid(&self) -> Vec<(f64, bool)> {
        let n = self.n_grid;
        match self.duo_scaling {
            DuoScaling::Off => (0..n)
                .map(|i| (i as f64 / (n.max(2) - 1) as f64, false))
                .collect(),
            DuoScaling::On => std::iter::once((0.0, false))
                .chain((0..n.saturating_sub(1)).map(|i| (i as f64 / (n.max(3) - 2) as f64, true)))
                .collect(),
            DuoScaling::Both => {
                let h = n / 2;
                (0..h)
                    .flat_map(|i| {
                        let r = i as f64 / (h.max(2) - 1) as f64;
                        [(r, false), (r, true)]
                    })
                    .collect()
            }
        }
    }
}

/// `w_mean` `[in]` fp32 of the balance weights `[out_k, in]` for `strategy` (the chunk that is
/// normalised is the quantization group: a row for channel, `g` columns for group, the whole
/// tensor for tensor). llm-compressor `AWQModifier._compute_layer_means`.
pub fn weight_means(weights: &[&Tensor], strategy: Strategy) -> Tensor {
    let mut sum: Option<Tensor> = None;
    let mut rows = 0i64;
    for w in weights {
        let w = w.to_kind(Kind::Float);
        let (out, inf) = (w.size()[0], w.size()[1]);
        let chunk = match strategy {
            Strategy::Tensor => out * inf,
            Strategy::Channel => inf,
            Strategy::Group(g) => g as i64,
        };
        let a = w.abs().reshape([-1, chunk]);
        let a = &a / (a.amax([1i64].as_slice(), true) + 1e-6);
        let s = a
            .reshape([out, inf])
            .sum_dim_intlist([0i64].as_slice(), false, Kind::Float);
        sum = Some(match sum {
            None => s,
            Some(t) => t + s,
        });
        rows += out;
    }
    sum.expect("at least one balance layer") / rows as f64
}

/// The candidate scales `[in]` fp32 for one grid point (see the module doc).
pub fn candidate_scales(x_mean: &Tensor, w_mean: Option<&Tensor>, ratio: f64, duo: bool) -> Tensor {
    let s = match (duo, w_mean) {
        (true, Some(w)) => (x_mean.pow_tensor_scalar(ratio)
            / (w.pow_tensor_scalar(1.0 - ratio) + 1e-4))
            .clamp_min(1e-4),
        _ => x_mean.pow_tensor_scalar(ratio).clamp_min(1e-4),
    };
    let norm = (s.max() * s.min()).sqrt();
    let s = s / norm;
    let bad = s.isfinite().logical_not();
    s.masked_fill(&bad, 1.0)
}

/// `Q(W·diag(s))·diag(s)⁻¹` for a weight `[out, in]` (fp32 result): the weight as the grid search
/// evaluates it, with min-max qparams of the scaled weight (llm-compressor patches in the
/// `memoryless_minmax` observer for the search).
pub fn scaled_fake_quant(
    w: &Tensor,
    s: &Tensor,
    t: WeightType,
    strategy: Strategy,
    symmetric: bool,
    scale_kind: Kind,
) -> Tensor {
    let ws = w.to_kind(Kind::Float) * s.view([1, -1]);
    let (out, inf) = (ws.size()[0], ws.size()[1]);
    let qp = minmax_qparams(&ws, t, strategy, symmetric, scale_kind);
    let sc = expand_qparam(&qp.scale, strategy, out, inf, None);
    let zp = qp
        .zero_point
        .as_ref()
        .map(|z| expand_qparam(z, strategy, out, inf, None));
    fake_quantize(&ws, &sc, zp.as_ref(), t) / s.view([1, -1])
}

/// Result of one mapping's search.
#[derive(Debug)]
pub struct Search {
    /// Best scales `[in]` fp32.
    pub scales: Tensor,
    /// Best grid point.
    pub ratio: f64,
    pub duo: bool,
    /// Loss of the first grid point (identity scales when `duo_scaling` is on) and the best loss.
    pub initial_loss: f64,
    pub best_loss: f64,
    /// The loss of every grid point, in [`AwqConfig::grid`] order.
    pub losses: Vec<f64>,
}

/// Grid search: `loss(s)` is evaluated for every grid point; the first strictly smaller finite
/// loss wins ties, as llm-compressor's `<` comparison does.
///
/// # Errors
/// When no grid point gives a finite loss (NaN activations or weights).
pub fn search(
    cfg: &AwqConfig,
    x_mean: &Tensor,
    w_mean: Option<&Tensor>,
    mut loss: impl FnMut(&Tensor) -> anyhow::Result<f64>,
) -> anyhow::Result<Search> {
    let mut best: Option<Search> = None;
    let mut losses = Vec::new();
    for (ratio, duo) in cfg.grid() {
        let s = candidate_scales(x_mean, w_mean, ratio, duo);
        let l = loss(&s)?;
        losses.push(l);
        if l.is_finite() && best.as_ref().is_none_or(|b| l < b.best_loss) {
            best = Some(Search {
                scales: s,
                ratio,
                duo,
                initial_loss: 0.0,
                best_loss: l,
                losses: Vec::new(),
            });
        }
    }
    let mut b = best.ok_or_else(|| {
        anyhow::anyhow!("AWQ: no grid point gave a finite loss (NaN or Inf in the activations?)")
    })?;
    b.initial_loss = losses.first().copied().unwrap_or(f64::NAN);
    b.losses = losses;
    Ok(b)
}
