//! GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained
//! Transformers", Algorithm 1 and §3.4; llm-compressor `modifiers/quantization/gptq/gptq_quantize.py`).
//!
//! Inputs: a Linear weight `W` `[out, in]` and its Hessian `H = 2 Σ XᵀX / n` `[in, in]` (fp32,
//! accumulated by [`Hessian`] over calibration tokens; `n` counts sequences, llm-compressor's
//! convention). Steps:
//! 1. dead input columns (`H_ii = 0`) get `H_ii = 1` and `W[:, i] = 0`;
//! 2. optional act-order: columns visited by decreasing `H_ii` (`group`: groups are formed in that
//!    order and `g_idx` is stored; `weight`: groups keep the original columns, scales are fixed
//!    first, no `g_idx`);
//! 3. dampening `λ = frac · mean(diag H)` added to the diagonal; `Hinv = chol(H⁻¹)ᵀ` (upper); when
//!    a Cholesky fails the dampening is raised ×10 up to [`GptqConfig::max_dampening_frac`], then
//!    the module falls back to round-to-nearest with a warning naming it;
//! 4. sweep columns in blocks of `block_size`: quantize column `i`, error `e = (w - q) / Hinv_ii`,
//!    update the rest of the block `W[:, i+1:] -= e ⊗ Hinv[i, i+1:]`; after the block, the lazy
//!    batch update `W[:, i2:] -= E · Hinv[i1:i2, i2:]`.
//!
//! The per-column loop of a block runs on the host for integer types on the CPU
//! ([`crate::gptq_sweep`], rows in parallel); on CUDA it is a few tensor operations per column,
//! captured once per block width as a CUDA graph and replayed for every block ([`BlockGraphs`]).
//! The lazy batch update after each block is a matrix product on `W`'s device.
//!
//! Scales: [`ScaleUpdate::Static`] computes them once before the sweep (today's llm-compressor);
//! [`ScaleUpdate::GroupBoundary`] recomputes a group's scale when the sweep reaches its first
//! column, from the weights as updated so far (the GPTQ reference code and the paper-era
//! llm-compressor; the default of the paper presets). We read the freshest values (the in-block
//! updates included), where the reference code reads the block-start copy; the two agree when
//! the group size is a multiple of the block size.
//!
//! Loss per row: `Σ_i (w_i - q_i)² / Hinv_ii² / 2`, llm-compressor's logged "error".
//! Rows are independent given `H`, so Linears sharing an input (q/k/v, gate/up) are swept as one
//! stacked matrix; [`GptqOutput::row_losses`] splits the loss back per module.

use crate::observer::Observer;
use crate::quantize::{fake_quantize, grouped, QParams};
use crate::scheme::{Strategy, WeightType};
use anyhow::Result;
use tch::{Device, Kind, Tensor};

/// Running Hessian `Σ XᵀX` of one Linear input, `[in, in]` fp32 (or f64), and the number of
/// sequences seen.
#[derive(Debug)]
pub struct Hessian {
    sum: Tensor,
    pub sequences: i64,
    pub tokens: i64,
}

impl Hessian {
    /// Zero Hessian for `cols` input features on `device`, accumulated in `kind` (Float).
    pub fn new(cols: i64, kind: Kind, device: tch::Device) -> Self {
        Hessian {
            sum: Tensor::zeros([cols, cols], (kind, device)),
            sequences: 0,
            tokens: 0,
        }
    }

    /// Add the inputs `x` `[tokens, in]` (any float dtype) of `sequences` calibration sequences.
    ///
    /// `XᵀX` is symmetric, so for wide inputs only the blocks on and above the diagonal are
    /// computed (blocks of ≤ 512 columns; about half the flops for 14336 columns); [`finish`]
    /// mirrors them. bf16 inputs into an fp32 Hessian on a CPU with AVX-512 BF16 go through
    /// [`crate::hessian_bf16`] instead (8 × 48 tiles on and above the diagonal;
    /// `QUANTLAB_BF16_HESSIAN=0` takes the fp32 product).
    ///
    /// [`finish`]: Hessian::finish
    pub fn add(&mut self, x: &Tensor, sequences: i64) {
        let n = *x.size().last().unwrap_or(&1);
        let x = x.reshape([-1, n]);
        self.sequences += sequences;
        self.tokens += x.size()[0];
        if self.add_bf16_cpu(&x) {
            return;
        }
        // On CUDA, 16-bit inputs go through cuBLAS with fp32 output (exact products, fp32 sums);
        // elsewhere the inputs are widened to the Hessian's dtype first.
        let cuda16 = x.device().is_cuda()
            && matches!(x.kind(), Kind::BFloat16 | Kind::Half)
            && self.sum.kind() == Kind::Float;
        let x = if cuda16 {
            x
        } else {
            x.to_kind(self.sum.kind())
        };
        for (i0, li) in blocks(n) {
            let xi = x.narrow(1, i0, li);
            let xit = xi.tr();
            for (j0, lj) in blocks(n).into_iter().filter(|(j0, _)| *j0 >= i0) {
                let mut dst = self.sum.narrow(0, i0, li).narrow(1, j0, lj);
                if cuda16 {
                    dst += xit.mm_dtype(&x.narrow(1, j0, lj), Kind::Float);
                } else {
                    let _ = dst.addmm_(&xit, &x.narrow(1, j0, lj));
                }
            }
        }
    }

    /// bf16 inputs on an AVX-512 BF16 CPU into an fp32 Hessian: [`crate::hessian_bf16`] (exact
    /// products, fp32 sums, about twice the widened fp32 product's speed). `false` when it does not
    /// apply (other device, dtype or CPU, or `QUANTLAB_BF16_HESSIAN=0`).
    fn add_bf16_cpu(&mut self, x: &Tensor) -> bool {
        let n = x.size()[1];
        if x.device() != Device::Cpu
            || x.kind() != Kind::BFloat16
            || self.sum.device() != Device::Cpu
            || self.sum.kind() != Kind::Float
            || self.sum.size() != [n, n]
            || !self.sum.is_contiguous()
            || std::env::var("QUANTLAB_BF16_HESSIAN").is_ok_and(|v| v == "0")
            || !crate::hessian_bf16::available()
        {
            return false;
        }
        let x = x.contiguous();
        let (t, n) = (x.size()[0] as usize, x.size()[1] as usize);
        if t == 0 || n == 0 {
            return true;
        }
        // SAFETY: `x` is a contiguous CPU bf16 tensor of `t * n` elements (2-byte bit patterns),
        // alive for this call; `sum` is a contiguous CPU fp32 `[n, n]` tensor owned by `self`,
        // not aliased elsewhere.
        let xs = unsafe { std::slice::from_raw_parts(x.data_ptr() as *const u16, t * n) };
        let hs = unsafe { std::slice::from_raw_parts_mut(self.sum.data_ptr() as *mut f32, n * n) };
        crate::hessian_bf16::accumulate(xs, n, hs)
    }

    /// `H = 2 Σ XᵀX / n` (`[in, in]`); zeros when nothing was added.
    pub fn finish(&self) -> Tensor {
        if self.sequences == 0 {
            return self.sum.zeros_like();
        }
        // Only blocks on and above the diagonal were accumulated: keep the upper triangle and
        // mirror it, which also makes the result exactly symmetric.
        let upper = self.sum.triu(0);
        let full = &upper + upper.triu(1).tr();
        full * (2.0 / self.sequences as f64)
    }
}

/// Column blocks `(start, len)` of ≤ 512 columns covering `0..n`: one block up to 256 columns,
/// at least two above (for SmolLM2's 576 inputs, the three blocks on and above the diagonal of
/// 288² take 0.18 s where the full 576² product takes 0.22 s on 2 cores).
fn blocks(n: i64) -> Vec<(i64, i64)> {
    if n <= 256 {
        return vec![(0, n)];
    }
    let k = ((n + 511) / 512).max(2);
    let b = (n + k - 1) / k;
    (0..k)
        .map(|i| (i * b, b.min(n - i * b)))
        .filter(|(_, l)| *l > 0)
        .collect()
}

/// Activation ordering (compressed-tensors `ActivationOrdering`; `static` = `weight`,
/// `dynamic` = `group`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActOrder {
    None,
    Group,
    Weight,
}

impl ActOrder {
    /// Parse `none|group|weight|static|dynamic` (case-insensitive).
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "none" | "null" | "false" => Ok(ActOrder::None),
            "group" | "dynamic" => Ok(ActOrder::Group),
            "weight" | "static" => Ok(ActOrder::Weight),
            other => anyhow::bail!("unknown act-order '{other}' (none, group, weight; static = weight, dynamic = group)"),
        }
    }

    /// The spelling written to `quantization_config` (`null` for none).
    pub fn as_json(&self) -> serde_json::Value {
        match self {
            ActOrder::None => serde_json::Value::Null,
            ActOrder::Group => "group".into(),
            ActOrder::Weight => "weight".into(),
        }
    }
}

/// When group scales are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleUpdate {
    /// Once, from the weights before the sweep.
    Static,
    /// At each group's first column, from the weights as updated by the sweep so far.
    GroupBoundary,
}

/// GPTQ settings (llm-compressor `GPTQModifier` field names in parentheses).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GptqConfig {
    /// Columns per lazy batch update (`block_size`), default 128.
    pub block_size: usize,
    /// Dampening as a fraction of mean(diag H) (`dampening_frac`), default 0.01.
    pub dampening_frac: f64,
    /// Largest dampening tried (×10 steps) before falling back to RTN; default 1.0.
    pub max_dampening_frac: f64,
    /// (`actorder`), default none.
    pub actorder: ActOrder,
    /// When scales are chosen.
    pub scale_update: ScaleUpdate,
    /// Quantize a decoder layer sub-block by sub-block (q/k/v, o, gate/up, down), each Hessian
    /// taken with the earlier sub-blocks already quantized: one forward per layer (GPTQ's
    /// `--true-sequential`). `false`: llm-compressor's order, all Hessians from the unquantized
    /// layer, then a second forward through the quantized layer.
    pub true_sequential: bool,
}

impl Default for GptqConfig {
    fn default() -> Self {
        GptqConfig {
            block_size: 128,
            dampening_frac: 0.01,
            max_dampening_frac: 1.0,
            actorder: ActOrder::None,
            scale_update: ScaleUpdate::Static,
            true_sequential: false,
        }
    }
}

/// How the weight is quantized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightQuant {
    pub ty: WeightType,
    pub strategy: Strategy,
    pub symmetric: bool,
    pub observer: Observer,
    /// dtype the scales are stored in (bf16 for bf16 models).
    pub scale_kind: Kind,
}

/// Result of quantizing one (stacked) weight.
#[derive(Debug)]
pub struct GptqOutput {
    /// Fake-quantized weight `[out, in]` in the compute dtype: exactly `(q - zp) · scale`.
    pub weight: Tensor,
    /// qparams `[rows, G]` (original column order; with act-order `group`, `G` indexes `g_idx`).
    pub qparams: QParams,
    /// `[in]` i64 group of each input column, only for act-order `group`.
    pub g_idx: Option<Tensor>,
    /// `[out]` per-row loss (see module doc), f64 on the host.
    pub row_losses: Vec<f64>,
    /// Dampening fraction finally used (`None` when the module fell back to RTN).
    pub dampening_used: Option<f64>,
}

/// `chol(H⁻¹)` upper, with dampening raised ×10 on failure. `None` when every try failed.
///
/// Takes `h` by value and dampens it in place, so that at most two n x n matrices are alive at a
/// time, the output included (each 0.8 GiB in fp32 for Llama-3.1-8B's down_proj, whose Hessian is
/// 14336²): `h` is dropped once its Cholesky factor `L` exists; `H⁻¹` is computed in `L`'s own
/// storage (libtorch's CUDA `cholesky_inverse` solves against the identity with one working
/// copy); `chol(H⁻¹)` is the second matrix. If that second Cholesky fails, the dampened `h` is
/// rebuilt as the inverse of `H⁻¹` for the next try (a rare path; the first Cholesky failing, the
/// usual one, keeps `h` as it was).
/// Whether every element of the float tensor `t` is finite, from its min and max (both propagate
/// NaN): two reductions and no temporary, where `isfinite()` makes an `|t|` copy and two bool
/// masks (1.2 GiB for a 14336² fp32 Hessian). An empty tensor is finite.
pub fn all_finite(t: &Tensor) -> bool {
    if t.numel() == 0 {
        return true;
    }
    let ok = |v: Tensor| f64::try_from(v).map(f64::is_finite).unwrap_or(false);
    ok(t.max()) && ok(t.min())
}

/// For debug logs: `, peak P GiB` (the CUDA allocator's peak so far), empty off CUDA.
fn peak_note(device: tch::Device) -> String {
    match device {
        tch::Device::Cuda(i) => quantlab_model::cuda_graph::peak_allocated_gib(i)
            .map(|g| format!(", peak {g:.2} GiB"))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

fn inverse_hessian_cholesky(h: Tensor, cfg: &GptqConfig) -> Option<(Tensor, f64)> {
    let n = h.size()[0];
    let mean_diag = h.diagonal(0, 0, 1).mean(h.kind());
    let mut frac = cfg.dampening_frac;
    let mut applied = 0.0; // dampening fraction currently added to `h`'s diagonal
    let mut h = h;
    loop {
        let _ = h.diagonal(0, 0, 1).g_add_(&(&mean_diag * (frac - applied)));
        applied = frac;
        let (l, info) = h.linalg_cholesky_ex(false, false);
        if i64::try_from(&info).unwrap_or(1) == 0 {
            drop(h);
            let hi = l.cholesky_inverse_out(&l, false);
            drop(l);
            let (u, info) = hi.linalg_cholesky_ex(true, false);
            let ok = i64::try_from(&info).unwrap_or(1) == 0 && all_finite(&u) && u.size() == [n, n];
            if ok {
                return Some((u, frac));
            }
            drop(u);
            let hd = hi.inverse();
            h = (&hd + hd.tr()) * 0.5;
        }
        frac *= 10.0;
        if frac > cfg.max_dampening_frac * (1.0 + 1e-9) {
            return None;
        }
    }
}

/// The column loop of one block on preallocated tensors (all on one device): `w1` `[rows, count]`
/// the block's weights, updated in place; `h1` `[count, count]` its `Hinv` block; `s` (and `z`)
/// `[rows, count]` the scale (zero point) of each column's group; writes the fake-quantized
/// columns to `q1` and the negated scaled errors `(q - w) / Hinv_ii` to `err1` (`[rows, count]`).
/// A few small kernels per column and no host synchronisation, so a CUDA graph can capture it.
fn block_loop(
    w1: &Tensor,
    h1: &Tensor,
    s: &Tensor,
    z: Option<&Tensor>,
    ty: WeightType,
    q1: &Tensor,
    err1: &Tensor,
) {
    let kind = w1.kind();
    let count = w1.size()[1];
    for i in 0..count {
        let wc = w1.select(1, i);
        let zc = z.map(|z| z.select(1, i));
        let qc = fake_quantize(&wc, &s.select(1, i), zc.as_ref(), ty).to_kind(kind);
        q1.select(1, i).copy_(&qc);
        let d = h1.get(i).get(i);
        // Negated error (q - w) / d, so that the rank-1 update is an `addr_`.
        let e = (&qc - &wc) / &d;
        err1.select(1, i).copy_(&e);
        if i + 1 < count {
            let mut rest = w1.narrow(1, i + 1, count - i - 1);
            let _ = rest.addr_(&e, &h1.get(i).narrow(0, i + 1, count - i - 1));
        }
    }
}

/// Buffers and captured graph of [`block_loop`] for one block width.
struct BlockGraph {
    graph: quantlab_model::cuda_graph::Graph,
    w1: Tensor,
    h1: Tensor,
    s: Tensor,
    z: Option<Tensor>,
    q1: Tensor,
    err1: Tensor,
}

/// CUDA graphs of the block loop, one per block width, for one module's sweep: the ~1,400
/// kernels of a 128-column block become one replay (the loop is otherwise bound by the host
/// launching kernels). Used on CUDA when this build has CUDA-graph support and
/// `QUANTLAB_GPTQ_GRAPH` is not `0`; a failed capture warns and sweeps eagerly.
#[derive(Default)]
struct BlockGraphs {
    enabled: bool,
    graphs: std::collections::HashMap<i64, BlockGraph>,
}

impl BlockGraphs {
    fn new(device: tch::Device) -> Self {
        let wanted = std::env::var("QUANTLAB_GPTQ_GRAPH")
            .map(|v| v != "0")
            .unwrap_or(true);
        BlockGraphs {
            enabled: device.is_cuda() && wanted && quantlab_model::cuda_graph::available(),
            graphs: Default::default(),
        }
    }

    /// Run the block loop on inputs `w1`, `h1`, `s`, `z` (copied into the graph's buffers):
    /// `Some((q1, err1))` (views of the buffers, valid until the next call), or `None` when
    /// graphs are off or the capture failed (the caller sweeps eagerly).
    fn run(
        &mut self,
        w1: &Tensor,
        h1: &Tensor,
        s: &Tensor,
        z: Option<&Tensor>,
        ty: WeightType,
    ) -> Option<(Tensor, Tensor)> {
        if !self.enabled {
            return None;
        }
        let count = w1.size()[1];
        if let Some(g) = self.graphs.get_mut(&count) {
            g.w1.copy_(w1);
            g.h1.copy_(h1);
            g.s.copy_(s);
            if let (Some(gz), Some(z)) = (g.z.as_mut(), z) {
                gz.copy_(z);
            }
            if let Err(e) = g.graph.replay() {
                tracing::warn!("GPTQ without CUDA graphs: {e}");
                self.enabled = false;
                return None;
            }
            return Some((g.q1.shallow_clone(), g.err1.shallow_clone()));
        }
        let Device::Cuda(dev) = w1.device() else {
            return None;
        };
        let graph = match quantlab_model::cuda_graph::Graph::new(dev) {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!("GPTQ without CUDA graphs: {e}");
                self.enabled = false;
                return None;
            }
        };
        let mut g = BlockGraph {
            graph,
            w1: w1.copy(),
            h1: h1.copy(),
            s: s.copy(),
            z: z.map(Tensor::copy),
            q1: w1.zeros_like(),
            err1: w1.zeros_like(),
        };
        // The warm-up run inside `capture` sweeps this block for real (into the buffers).
        let (w1b, h1b, sb, zb, q1b, e1b) = (
            g.w1.shallow_clone(),
            g.h1.shallow_clone(),
            g.s.shallow_clone(),
            g.z.as_ref().map(Tensor::shallow_clone),
            g.q1.shallow_clone(),
            g.err1.shallow_clone(),
        );
        let captured = g
            .graph
            .capture(&mut || block_loop(&w1b, &h1b, &sb, zb.as_ref(), ty, &q1b, &e1b));
        if let Err(e) = captured {
            tracing::warn!("GPTQ without CUDA graphs: {e}");
            self.enabled = false;
            return None;
        }
        tracing::debug!("GPTQ: captured the {count}-column block loop as a CUDA graph");
        let out = (g.q1.shallow_clone(), g.err1.shallow_clone());
        self.graphs.insert(count, g);
        Some(out)
    }
}

/// One block `[i1, i1 + count)` of the sweep as tensor operations on `w`'s device
/// ([`block_loop`], as a CUDA-graph replay when [`BlockGraphs`] allows): returns `(q1, err1)`
/// `[rows, count]` as [`host_block`] does.
#[allow(clippy::too_many_arguments)]
fn tensor_block(
    w: &Tensor,
    hinv: &Tensor,
    i1: i64,
    count: i64,
    col_group: &[i64],
    static_qp: Option<&QParams>,
    dynamic: (&Tensor, Option<&Tensor>),
    ty: WeightType,
    graphs: &mut BlockGraphs,
) -> (Tensor, Tensor) {
    let dev = w.device();
    let gidx = Tensor::from_slice(col_group).to_device(dev);
    let (scale, zp) = match static_qp {
        Some(qp) => (&qp.scale, qp.zero_point.as_ref()),
        None => dynamic,
    };
    let s = scale.index_select(1, &gidx);
    let z = zp.map(|z| z.index_select(1, &gidx));
    let w1 = w.narrow(1, i1, count);
    let h1 = hinv.narrow(0, i1, count).narrow(1, i1, count);
    if let Some(out) = graphs.run(&w1, &h1, &s, z.as_ref(), ty) {
        return out;
    }
    let w1 = w1.copy();
    let q1 = w1.zeros_like();
    let err1 = w1.zeros_like();
    block_loop(&w1, &h1, &s, z.as_ref(), ty, &q1, &err1);
    (q1, err1)
}

/// Whether the per-column loop runs on the host ([`crate::gptq_sweep`]): on the CPU by default;
/// on CUDA the tensor loop stays (measured on an H200 at Llama-3.1-8B shapes: 6–7 s a layer with
/// the host sweep, the block copies dominating; 3 s for the eager tensor loop, 0.7 s as CUDA-graph
/// replays).
/// `QUANTLAB_GPTQ_HOST_SWEEP=0|1` overrides, for benchmarks.
fn host_sweep_enabled(device: tch::Device) -> bool {
    match std::env::var("QUANTLAB_GPTQ_HOST_SWEEP").as_deref() {
        Ok("0") => false,
        Ok("1") => true,
        _ => device == tch::Device::Cpu,
    }
}

/// One block `[i1, i1 + count)` of the sweep on the host ([`crate::gptq_sweep`]): copies the
/// block's weights, `Hinv` block and the qparams of the groups it touches (static ones, else the
/// dynamic ones chosen so far) to the host, sweeps, and returns `(q1, err1)` `[rows, count]` on
/// `w`'s device in `w`'s dtype.
#[allow(clippy::too_many_arguments)]
fn host_block(
    w: &Tensor,
    hinv: &Tensor,
    i1: i64,
    count: i64,
    col_group: &[i64],
    static_qp: Option<(&Tensor, Option<&Tensor>)>,
    dynamic: (&Tensor, Option<&Tensor>),
    ty: WeightType,
) -> Result<(Tensor, Tensor)> {
    let WeightType::Int { bits } = ty else {
        anyhow::bail!("host GPTQ sweep: integer types only");
    };
    let (qmin, qmax) = crate::quantize::int_range(bits);
    let kind = w.kind();
    let dev = w.device();
    let rows = w.size()[0];
    let (scale, zp) = static_qp.unwrap_or(dynamic);
    // The distinct groups of the block, in first-use order, and each column's index among them.
    let mut groups: Vec<i64> = Vec::new();
    let col_g: Vec<usize> = col_group
        .iter()
        .map(|g| match groups.iter().position(|x| x == g) {
            Some(p) => p,
            None => {
                groups.push(*g);
                groups.len() - 1
            }
        })
        .collect();
    let k = groups.len();
    let idx = Tensor::from_slice(&groups).to_device(scale.device());
    let host = |t: &Tensor| -> Tensor {
        t.to_kind(kind)
            .to_device(tch::Device::Cpu)
            .contiguous()
            .view([-1])
    };
    // Per-tensor qparams are `[1, 1]`: the sweep reads one row of qparams per weight row.
    let s_h = host(&scale.index_select(1, &idx).expand([rows, -1], false));
    let z_h = zp.map(|z| host(&z.index_select(1, &idx).expand([rows, -1], false)));
    let w_h = host(&w.narrow(1, i1, count));
    let hinv_h = host(&hinv.narrow(0, i1, count).narrow(1, i1, count));
    let n = count as usize;
    macro_rules! run {
        ($t:ty) => {{
            let mut w1 = Vec::<$t>::try_from(&w_h)?;
            let h1 = Vec::<$t>::try_from(&hinv_h)?;
            let s1 = Vec::<$t>::try_from(&s_h)?;
            let z1 = match &z_h {
                Some(z) => Some(Vec::<$t>::try_from(z)?),
                None => None,
            };
            let mut q1 = vec![0 as $t; w1.len()];
            let mut e1 = vec![0 as $t; w1.len()];
            crate::gptq_sweep::sweep_block(
                &mut w1,
                &h1,
                n,
                &s1,
                z1.as_deref(),
                k,
                &col_g,
                qmin,
                qmax,
                &mut q1,
                &mut e1,
            );
            (Tensor::from_slice(&q1), Tensor::from_slice(&e1))
        }};
    }
    let (q1, e1) = match kind {
        Kind::Double => run!(f64),
        _ => run!(f32),
    };
    Ok((
        q1.view([rows, count]).to_device(dev),
        e1.view([rows, count]).to_device(dev),
    ))
}

/// Quantize `w` `[out, in]` with GPTQ given `h` `[in, in]`. Computation runs in `w`'s dtype
/// (fp32 in production; tests use f64) on `w`'s device. `name` is used in warnings.
///
/// Errors: shapes that disagree, a group size that does not divide `in`, non-finite weights or
/// Hessian.
pub fn gptq_quantize(
    w: &Tensor,
    h: &Tensor,
    q: &WeightQuant,
    cfg: &GptqConfig,
    name: &str,
) -> Result<GptqOutput> {
    gptq_quantize_sweep(w, h, q, cfg, name, host_sweep_enabled(w.device()))
}

/// [`gptq_quantize`] taking the Hessian by value: it is modified in place and freed as soon as it
/// is no longer needed (the pipeline's way, one n x n matrix less on the device).
pub fn gptq_quantize_owned(
    w: &Tensor,
    h: Tensor,
    q: &WeightQuant,
    cfg: &GptqConfig,
    name: &str,
) -> Result<GptqOutput> {
    gptq_quantize_impl(w, h, q, cfg, name, host_sweep_enabled(w.device()))
}

/// [`gptq_quantize`] with the block sweep chosen by the caller: `host` sweeps integer types on
/// the host ([`crate::gptq_sweep`]), otherwise as tensor operations on `w`'s device. Both compute
/// the same GPTQ; tests run each against the reference.
pub fn gptq_quantize_sweep(
    w: &Tensor,
    h: &Tensor,
    q: &WeightQuant,
    cfg: &GptqConfig,
    name: &str,
    host: bool,
) -> Result<GptqOutput> {
    gptq_quantize_impl(w, h.copy(), q, cfg, name, host)
}

fn gptq_quantize_impl(
    w: &Tensor,
    h: Tensor,
    q: &WeightQuant,
    cfg: &GptqConfig,
    name: &str,
    host: bool,
) -> Result<GptqOutput> {
    let (rows, cols) = (w.size()[0], w.size()[1]);
    let t_prep = std::time::Instant::now();
    if h.size() != [cols, cols] {
        anyhow::bail!(
            "{name}: Hessian is {:?}, expected [{cols}, {cols}]",
            h.size()
        );
    }
    if let Strategy::Group(g) = q.strategy {
        if g == 0 || cols % g as i64 != 0 {
            anyhow::bail!("{name}: group size {g} does not divide the input dimension {cols}");
        }
    }
    if !all_finite(w) {
        anyhow::bail!("{name}: the weight holds NaN or Inf values; refusing to quantize it");
    }
    if !all_finite(&h) {
        anyhow::bail!(
            "{name}: the Hessian holds NaN or Inf values (non-finite activations in calibration?)"
        );
    }
    let kind = w.kind();
    let mut w = w.copy();
    // `h` is ours (the caller's copy, or the pipeline's Hessian handed over): edited in place.
    let mut h = if h.kind() == kind { h } else { h.to_kind(kind) };
    // 1. dead columns
    let dead = h.diagonal(0, 0, 1).eq(0.0);
    if bool::try_from(dead.any())? {
        let _ = h.diagonal(0, 0, 1).masked_fill_(&dead, 1.0);
        let _ = w.masked_fill_(&dead.unsqueeze(0), 0.0);
    }
    let group = match q.strategy {
        Strategy::Group(g) => Some(g as i64),
        _ => None,
    };
    let mut scale_update = cfg.scale_update;
    if group.is_none() || cfg.actorder == ActOrder::Weight {
        // Channel/tensor scales cover whole rows; `weight` act-order fixes groups first.
        scale_update = ScaleUpdate::Static;
    }
    // Static qparams in the original column order (before any permutation).
    let static_qp = if scale_update == ScaleUpdate::Static && cfg.actorder != ActOrder::Group {
        Some(q.observer.qparams(
            &grouped(&w.to_kind(Kind::Float), q.strategy),
            q.ty,
            q.symmetric,
            q.scale_kind,
        ))
    } else {
        None
    };
    // 2. act-order
    let perm = if cfg.actorder != ActOrder::None {
        let p = h.diagonal(0, 0, 1).argsort(0, true);
        w = w.index_select(1, &p);
        // One permuted copy at a time (two n x n matrices alive, not three).
        h = h.index_select(0, &p);
        h = h.index_select(1, &p);
        Some(p)
    } else {
        None
    };
    // With act-order `group`, static scales are computed on the permuted weight.
    let static_qp = match static_qp {
        Some(s) => Some(s),
        None if scale_update == ScaleUpdate::Static => Some(q.observer.qparams(
            &grouped(&w.to_kind(Kind::Float), q.strategy),
            q.ty,
            q.symmetric,
            q.scale_kind,
        )),
        None => None,
    };
    // Group of each (swept) column: identity, or for `weight` the permuted original groups.
    let col_group: Vec<i64> = match (group, &perm, cfg.actorder) {
        (Some(g), Some(p), ActOrder::Weight) => {
            let pv: Vec<i64> = Vec::<i64>::try_from(p.to_device(tch::Device::Cpu))?;
            pv.iter().map(|c| c / g).collect()
        }
        (Some(g), _, _) => (0..cols).map(|c| c / g).collect(),
        (None, _, _) => vec![0; cols as usize],
    };
    // 3. inverse Hessian
    let chol = inverse_hessian_cholesky(h, cfg);
    let (hinv, damp) = match chol {
        Some((u, f)) => (u, Some(f)),
        None => {
            tracing::warn!(
                "{name}: the Hessian is not positive definite even with dampening {}; quantizing this module with round-to-nearest",
                cfg.max_dampening_frac
            );
            (Tensor::eye(cols, (kind, w.device())), None)
        }
    };
    // Dynamic per-group qparams, filled as the sweep reaches each group ([rows, G]).
    let ngroups = group.map(|g| cols / g).unwrap_or(1);
    let dyn_scale = Tensor::zeros([rows, ngroups], (Kind::Float, w.device()));
    let dyn_zp = if q.symmetric || q.ty == WeightType::Fp8E4M3 {
        None
    } else {
        Some(Tensor::zeros([rows, ngroups], (Kind::Float, w.device())))
    };
    let mut losses = Tensor::zeros([rows], (kind, w.device()));
    let bs = cfg.block_size.max(1) as i64;
    // Integer types in f32/f64 sweep each block on the host (`gptq_sweep`); fp8 keeps the
    // tensor loop below.
    let host = host
        && matches!(q.ty, WeightType::Int { .. })
        && matches!(kind, Kind::Float | Kind::Double);
    let mut graphs = BlockGraphs::new(w.device());
    if tracing::enabled!(tracing::Level::DEBUG) {
        let _ = hinv.sum(Kind::Float).double_value(&[]); // wait for the device
        tracing::debug!(
            "{name}: prepared in {:.3} s{}",
            t_prep.elapsed().as_secs_f64(),
            peak_note(w.device())
        );
    }
    let t_sweep = std::time::Instant::now();
    let mut i1 = 0;
    while i1 < cols {
        let mut i2 = (i1 + bs).min(cols);
        if scale_update == ScaleUpdate::GroupBoundary {
            // Blocks also end at group starts, so a group's scale is always chosen at a block
            // start, from the weights with every earlier column's update applied.
            let g = group.unwrap_or(cols);
            i2 = i2.min((i1 / g + 1) * g);
            if i1 % g == 0 {
                let gi = col_group[i1 as usize];
                let cur = w.narrow(1, i1, g.min(cols - i1)).to_kind(Kind::Float);
                let qp = q
                    .observer
                    .qparams(&cur.unsqueeze(1), q.ty, q.symmetric, q.scale_kind);
                dyn_scale.narrow(1, gi, 1).copy_(&qp.scale);
                if let (Some(dz), Some(z)) = (&dyn_zp, &qp.zero_point) {
                    dz.narrow(1, gi, 1).copy_(z);
                }
            }
        }
        let count = i2 - i1;
        let cols_g = &col_group[i1 as usize..i2 as usize];
        let (q1, err1) = if host {
            host_block(
                &w,
                &hinv,
                i1,
                count,
                cols_g,
                static_qp
                    .as_ref()
                    .map(|qp| (&qp.scale, qp.zero_point.as_ref())),
                (&dyn_scale, dyn_zp.as_ref()),
                q.ty,
            )?
        } else {
            tensor_block(
                &w,
                &hinv,
                i1,
                count,
                cols_g,
                static_qp.as_ref(),
                (&dyn_scale, dyn_zp.as_ref()),
                q.ty,
                &mut graphs,
            )
        };
        w.narrow(1, i1, count).copy_(&q1);
        losses += err1
            .square()
            .sum_dim_intlist([1i64].as_slice(), false, kind)
            / 2.0;
        if i2 < cols {
            let mut rest = w.narrow(1, i2, cols - i2);
            rest += err1.mm(&hinv.narrow(0, i1, count).narrow(1, i2, cols - i2));
        }
        i1 = i2;
    }
    if tracing::enabled!(tracing::Level::DEBUG) {
        let _ = w.sum(Kind::Float).double_value(&[]); // wait for the device
        tracing::debug!(
            "{name}: {rows}x{cols} swept in {:.3} s (graphs {}){}",
            t_sweep.elapsed().as_secs_f64(),
            graphs.enabled,
            peak_note(w.device())
        );
    }
    // Undo the permutation.
    let (qparams, g_idx) = match (&perm, cfg.actorder) {
        (Some(p), ActOrder::Group) => {
            let inv = p.argsort(0, false);
            w = w.index_select(1, &inv);
            let qp = static_qp.unwrap_or(QParams {
                scale: dyn_scale,
                zero_point: dyn_zp,
            });
            let gcol = Tensor::from_slice(&col_group).to_device(w.device());
            (qp, group.map(|_| gcol.index_select(0, &inv)))
        }
        (Some(p), _) => {
            let inv = p.argsort(0, false);
            w = w.index_select(1, &inv);
            (
                static_qp.expect("weight act-order uses static qparams"),
                None,
            )
        }
        (None, _) => (
            static_qp.unwrap_or(QParams {
                scale: dyn_scale,
                zero_point: dyn_zp,
            }),
            None,
        ),
    };
    let row_losses: Vec<f64> =
        Vec::<f64>::try_from(losses.to_kind(Kind::Double).to_device(tch::Device::Cpu))?;
    Ok(GptqOutput {
        weight: w,
        qparams,
        g_idx,
        row_losses,
        dampening_used: damp,
    })
}

#[cfg(test)]
mod tests {
    use super::all_finite;
    use tch::{Kind, Tensor};

    #[test]
    fn all_finite_sees_nan_and_both_infinities() {
        let t = |v: &[f32]| Tensor::from_slice(v);
        assert!(all_finite(&t(&[1.0, -2.5, 0.0])));
        assert!(all_finite(&t(&[])));
        assert!(!all_finite(&t(&[1.0, f32::INFINITY])));
        assert!(!all_finite(&t(&[f32::NEG_INFINITY, 0.0])));
        assert!(!all_finite(&t(&[0.0, f32::NAN, 3.0])));
        assert!(!all_finite(&t(&[f32::NAN, 0.0])));
        assert!(!all_finite(&t(&[0.0, f32::NAN]).to_kind(Kind::BFloat16)));
        assert!(all_finite(&t(&[3.0e38, -3.0e38]).view([1, 2])));
    }
}
