//! Seeded draws that reproduce PyTorch bit for bit: `torch.randint` for random-token
//! calibration and `torch.randperm` for shuffling records.
//!
//! tch 0.24 exposes no `torch.Generator`, so both reseed libtorch's process-global default
//! generator with `tch::manual_seed` (CPU and, when present, CUDA) and draw on the CPU. A fresh
//! default generator seeded with `s` produces the same stream as
//! `torch.Generator().manual_seed(s)`, so the results equal
//! `torch.randint(lo, hi, (n, len), generator=torch.Generator().manual_seed(s))` and
//! `torch.randperm(n, generator=torch.Generator().manual_seed(s))`.
//!
//! Side effect: the global generator is left reseeded (at `s`, advanced by the draw). A
//! process-wide mutex keeps two calibration draws from interleaving; other code that draws from
//! the global generator concurrently (none does in quantlab while calibrating) would still
//! disturb it.

use anyhow::{bail, Result};
use std::sync::Mutex;
use tch::{Device, Kind, Tensor};

static TORCH_RNG: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    // A panic while holding the lock leaves no broken state behind: every draw reseeds first.
    TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// `n` rows of `len` ids uniform in `[lo, hi)`, as `torch.randint(lo, hi, (n, len),
/// generator=torch.Generator().manual_seed(seed))` (int64, CPU). Errors: `lo >= hi`, or a seed
/// above `i64::MAX` (torch seeds are signed 64-bit here).
pub fn randint(seed: u64, lo: i64, hi: i64, n: usize, len: usize) -> Result<Vec<Vec<i64>>> {
    if lo >= hi {
        bail!("random token range [{lo}, {hi}) is empty");
    }
    let seed = signed_seed(seed)?;
    let t = {
        let _g = lock();
        tch::manual_seed(seed);
        Tensor::f_randint_low(lo, hi, [n as i64, len as i64], (Kind::Int64, Device::Cpu))?
    };
    let flat = Vec::<i64>::try_from(t.f_reshape([-1])?)?;
    if len == 0 {
        return Ok(vec![Vec::new(); n]);
    }
    Ok(flat.chunks(len).map(<[i64]>::to_vec).collect())
}

/// A permutation of `0..n`, as `torch.randperm(n, generator=torch.Generator().manual_seed(seed))`.
pub fn randperm(seed: u64, n: usize) -> Result<Vec<usize>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let seed = signed_seed(seed)?;
    let t = {
        let _g = lock();
        tch::manual_seed(seed);
        Tensor::f_randperm(n as i64, (Kind::Int64, Device::Cpu))?
    };
    Ok(Vec::<i64>::try_from(t)?
        .into_iter()
        .map(|i| i as usize)
        .collect())
}

fn signed_seed(seed: u64) -> Result<i64> {
    i64::try_from(seed)
        .map_err(|_| anyhow::anyhow!("seed {seed} is too large (at most {})", i64::MAX))
}
