//! Few-shot example selection with lm-evaluation-harness's samplers (`lm_eval/api/samplers.py`):
//!
//! - `first_n` (`FirstNSampler`): the first `n` documents of the few-shot pool, in file order
//!   (MMLU's canonical dev examples).
//! - `default` (`ContextSampler`): `random.Random(seed).sample(pool, n)`, one generator per task,
//!   drawn from once per evaluated document in document order (so `--limit N` gives the same
//!   examples lm-eval gives with the same limit). When the pool is the evaluated split itself, one
//!   extra example is drawn and the evaluated document is dropped from the draw (lm-eval compares
//!   the documents, so an identical copy is dropped as well).
//!
//! The random draw is bit-exact with CPython: [`PyRandom`] is the Mersenne Twister MT19937 seeded
//! like `random.seed(int)` (`init_by_array` over the 32-bit words of the seed), and
//! [`PyRandom::sample`] follows `random.sample`'s two strategies (a shrinking pool for small
//! populations, rejection against a set of chosen indices for large ones) and `_randbelow`
//! (`getrandbits(n.bit_length())`, redrawn while `>= n`).

use serde::{Deserialize, Serialize};

const N: usize = 624;
const M: usize = 397;

/// CPython's `random.Random` (MT19937): only the parts lm-eval's sampler uses.
#[derive(Clone)]
pub struct PyRandom {
    mt: [u32; N],
    idx: usize,
}

impl std::fmt::Debug for PyRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyRandom").field("idx", &self.idx).finish()
    }
}

impl PyRandom {
    /// `random.Random(seed)` for a non-negative integer seed.
    pub fn new(seed: u64) -> PyRandom {
        let mut key: Vec<u32> = Vec::new();
        let mut s = seed;
        while s > 0 {
            key.push(s as u32);
            s >>= 32;
        }
        if key.is_empty() {
            key.push(0);
        }
        let mut r = PyRandom { mt: [0; N], idx: N };
        r.init_genrand(19_650_218);
        let mut i = 1usize;
        let mut j = 0usize;
        for _ in 0..N.max(key.len()) {
            let prev = r.mt[i - 1] ^ (r.mt[i - 1] >> 30);
            r.mt[i] = (r.mt[i] ^ prev.wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                r.mt[0] = r.mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = r.mt[i - 1] ^ (r.mt[i - 1] >> 30);
            r.mt[i] = (r.mt[i] ^ prev.wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                r.mt[0] = r.mt[N - 1];
                i = 1;
            }
        }
        r.mt[0] = 0x8000_0000;
        r
    }

    fn init_genrand(&mut self, s: u32) {
        self.mt[0] = s;
        for i in 1..N {
            let prev = self.mt[i - 1] ^ (self.mt[i - 1] >> 30);
            self.mt[i] = 1_812_433_253u32.wrapping_mul(prev).wrapping_add(i as u32);
        }
        self.idx = N;
    }

    /// The next 32-bit output (`genrand_uint32`).
    pub fn next_u32(&mut self) -> u32 {
        if self.idx >= N {
            for k in 0..N {
                let y = (self.mt[k] & 0x8000_0000) | (self.mt[(k + 1) % N] & 0x7fff_ffff);
                let mut v = self.mt[(k + M) % N] ^ (y >> 1);
                if y & 1 == 1 {
                    v ^= 0x9908_b0df;
                }
                self.mt[k] = v;
            }
            self.idx = 0;
        }
        let mut y = self.mt[self.idx];
        self.idx += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// `random.getrandbits(k)` for `1 <= k <= 32`.
    fn getrandbits(&mut self, k: u32) -> u64 {
        (self.next_u32() >> (32 - k)) as u64
    }

    /// `Random._randbelow(n)` for `1 <= n < 2^32`.
    pub fn randbelow(&mut self, n: u64) -> u64 {
        let k = 64 - n.leading_zeros();
        let mut r = self.getrandbits(k);
        while r >= n {
            r = self.getrandbits(k);
        }
        r
    }

    /// `random.sample(range(n), k)`: `k` distinct indices below `n`, in draw order.
    /// Panics if `k > n` (callers check).
    pub fn sample(&mut self, n: usize, k: usize) -> Vec<usize> {
        assert!(k <= n, "sample larger than population");
        let mut setsize = 21usize;
        if k > 5 {
            let e = ((k as f64 * 3.0).ln() / 4f64.ln()).ceil() as u32;
            setsize += 4usize.pow(e);
        }
        let mut out = Vec::with_capacity(k);
        if n <= setsize {
            let mut pool: Vec<usize> = (0..n).collect();
            for i in 0..k {
                let j = self.randbelow((n - i) as u64) as usize;
                out.push(pool[j]);
                pool[j] = pool[n - i - 1];
            }
        } else {
            let mut selected = std::collections::HashSet::new();
            for _ in 0..k {
                let mut j = self.randbelow(n as u64) as usize;
                while selected.contains(&j) {
                    j = self.randbelow(n as u64) as usize;
                }
                selected.insert(j);
                out.push(j);
            }
        }
        out
    }
}

/// Which lm-eval sampler picks the few-shot examples.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum SamplerKind {
    /// `ContextSampler`: seeded `random.sample` (lm-eval's default).
    #[default]
    Default,
    /// `FirstNSampler`: the first `n` pool documents in order.
    FirstN,
}

/// Picks few-shot examples for one task (or one sub-task), keeping the random state between
/// documents as lm-eval does.
#[derive(Debug, Clone)]
pub struct Sampler {
    kind: SamplerKind,
    rng: PyRandom,
}

impl Sampler {
    /// A sampler of `kind` seeded with `seed` (lm-eval's `fewshot_random_seed`, default 1234).
    pub fn new(kind: SamplerKind, seed: u64) -> Sampler {
        Sampler {
            kind,
            rng: PyRandom::new(seed),
        }
    }

    /// Indices into a pool of `pool_len` documents of the examples for one document.
    /// `same_split`: the pool is the evaluated split, so `n + 1` are drawn and those for which
    /// `is_doc` holds (the evaluated document or an identical copy) dropped (lm-eval
    /// `get_context`). Err when the pool is too small.
    pub fn pick(
        &mut self,
        pool_len: usize,
        is_doc: impl Fn(usize) -> bool,
        n: usize,
        same_split: bool,
    ) -> Result<Vec<usize>, String> {
        let draw = if same_split { n + 1 } else { n };
        if draw > pool_len {
            return Err(format!(
                "{draw} few-shot examples requested from a pool of {pool_len} documents"
            ));
        }
        let idx: Vec<usize> = match self.kind {
            SamplerKind::FirstN => (0..draw).collect(),
            SamplerKind::Default => self.rng.sample(pool_len, draw),
        };
        Ok(idx
            .into_iter()
            .filter(|&i| !same_split || !is_doc(i))
            .take(n)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mersenne_twister_matches_cpython() {
        // CPython 3.11: r = random.Random(1234); [r.getrandbits(32) for _ in range(3)]
        let mut r = PyRandom::new(1234);
        let got: Vec<u32> = (0..3).map(|_| r.next_u32()).collect();
        assert_eq!(got, [4_150_886_329, 3_342_196_574, 1_892_932_127]);
    }

    #[test]
    fn sample_matches_cpython() {
        // CPython 3.11: random.Random(1234).sample(range(10), 3) and .sample(range(1000), 6)
        let mut r = PyRandom::new(1234);
        assert_eq!(r.sample(10, 3), [7, 1, 0]);
        let mut r = PyRandom::new(1234);
        assert_eq!(r.sample(1000, 6), [989, 796, 451, 119, 7, 92]);
        // one generator drawn from twice (state kept between documents); .sample(range(40), 6) x2
        let mut r = PyRandom::new(1234);
        assert_eq!(r.sample(40, 6), [28, 7, 0, 5, 2, 36]);
        assert_eq!(r.sample(40, 6), [6, 22, 15, 1, 36, 35]);
        // a seed wider than 32 bits: random.Random(2**40 + 5).sample(range(100), 3)
        let mut r = PyRandom::new((1u64 << 40) + 5);
        assert_eq!(r.sample(100, 3), [64, 66, 34]);
    }
}
