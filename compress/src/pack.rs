//! Integer weight packing of the compressed-tensors `pack-quantized` format
//! (compressed-tensors 0.19 `compressors/pack_quantized/helpers.py::pack_to_int32`).
//!
//! A `b`-bit value `v` in `[-2^(b-1), 2^(b-1) - 1]` is stored as `v + 2^(b-1)` (unsigned, `b`
//! bits). Packing is dense along one dimension with no padding bits: element `i` of a row
//! occupies the global bit positions `[i·b, i·b + b)` of the row's int32 words, lowest bit first,
//! and is split across two words when it straddles a word boundary (b = 3, 5, 6, 7). A row of
//! `n` values takes `ceil(n·b / 32)` words. For b = 4 that is eight values per word, the first in
//! the lowest nibble; for b = 8, four per word.
//!
//! - Weights `[out, in]` are packed along the input dimension: `weight_packed` `[out, ceil(in·b/32)]`.
//! - Asymmetric zero points `[out, G]` are packed along the *output* dimension (`packed_dim=0`):
//!   `weight_zero_point` `[ceil(out·b/32), G]`.
//!
//! The inverse is `quantlab_model::quant::unpack_bits`.

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

/// Pack `b`-bit signed codes `[rows, cols]` (any integer dtype) along dim 1 into
/// `[rows, ceil(cols·b/32)]` int32.
///
/// # Errors
/// `bits` outside 1..=8, a tensor that is not 2-D, or a code outside the `b`-bit range.
pub fn pack_bits(codes: &Tensor, bits: u32) -> Result<Tensor> {
    if !(1..=8).contains(&bits) {
        bail!("cannot pack {bits}-bit values: pack-quantized holds 1 to 8 bits");
    }
    if codes.dim() != 2 {
        bail!("packing expects a 2-D tensor, got shape {:?}", codes.size());
    }
    let (rows, cols) = (codes.size()[0], codes.size()[1]);
    let offset = 1i64 << (bits - 1);
    let per_word = 32 / bits as i64;
    if 32 % bits == 0 && cols % per_word == 0 {
        return pack_words(codes, bits);
    }
    let vals: Vec<i64> = Vec::<i64>::try_from(
        codes
            .to_device(tch::Device::Cpu)
            .to_kind(Kind::Int64)
            .contiguous()
            .view([-1]),
    )?;
    if let Some(v) = vals.iter().find(|v| **v < -offset || **v >= offset) {
        bail!(
            "code {v} does not fit in {bits} bits (range [{}, {}])",
            -offset,
            offset - 1
        );
    }
    let words = (cols * bits as i64 + 31) / 32;
    let mut out = vec![0u32; (rows * words) as usize];
    let b = bits as i64;
    for r in 0..rows as usize {
        let row = &vals[r * cols as usize..(r + 1) * cols as usize];
        let dst = &mut out[r * words as usize..(r + 1) * words as usize];
        for (i, v) in row.iter().enumerate() {
            let u = (*v + offset) as u64;
            let bit = i as i64 * b;
            let (w, off) = ((bit / 32) as usize, (bit % 32) as u32);
            let shifted = u << off;
            dst[w] |= shifted as u32;
            if off + bits > 32 {
                dst[w + 1] |= (shifted >> 32) as u32;
            }
        }
    }
    let out: Vec<i32> = out.into_iter().map(|x| x as i32).collect();
    Ok(Tensor::from_slice(&out).view([rows, words]))
}

/// [`pack_bits`] for widths that divide 32 and rows that fill whole words, as tensor operations
/// on the codes' device (no copy of the codes to the host): word `j` of a row is the bitwise OR of
/// `(code_{j·n+k} + 2^(b-1)) << (k·b)` over its `n = 32 / b` values, in int32 (the top field
/// wraps to the sign bit, as the two's-complement int32 words of the format do). Works on one
/// `[rows, cols / n]` int32 slice at a time, so the transient memory is a fraction of the codes'.
/// Returns the words on the host, as the host path does.
fn pack_words(codes: &Tensor, bits: u32) -> Result<Tensor> {
    let (rows, cols) = (codes.size()[0], codes.size()[1]);
    let offset = 1i64 << (bits - 1);
    let per_word = 32 / bits as i64;
    let c = codes.contiguous();
    // The range check reduces to min and max (no widened copy of the codes).
    let (lo, hi) = (
        i64::try_from(c.min().to_kind(Kind::Int64))?,
        i64::try_from(c.max().to_kind(Kind::Int64))?,
    );
    if lo < -offset || hi >= offset {
        let v = if lo < -offset { lo } else { hi };
        bail!(
            "code {v} does not fit in {bits} bits (range [{}, {}])",
            -offset,
            offset - 1
        );
    }
    let fields = c.view([rows, cols / per_word, per_word]);
    let field = |k: i64| fields.select(2, k).to_kind(Kind::Int) + offset;
    let mut words = field(0);
    for k in 1..per_word {
        let _ =
            words.bitwise_or_tensor_(&field(k).bitwise_left_shift_tensor_scalar(k * bits as i64));
    }
    Ok(words.to_device(tch::Device::Cpu))
}

/// Pack int4 codes `[out, in]` into `[out, ceil(in/8)]` int32 (eight per word, first value in the
/// lowest nibble).
///
/// # Errors
/// As [`pack_bits`].
pub fn pack_int4(codes: &Tensor) -> Result<Tensor> {
    pack_bits(codes, 4)
}

/// Pack asymmetric zero points `[out, G]` along the output dimension (compressed-tensors'
/// `packed_dim=0`): `[ceil(out·b/32), G]` int32.
///
/// # Errors
/// As [`pack_bits`].
pub fn pack_zero_point(zero_point: &Tensor, bits: u32) -> Result<Tensor> {
    Ok(pack_bits(&zero_point.tr(), bits)?.tr().contiguous())
}

/// The tensors compressed-tensors 0.19 stores for one quantized Linear, as `(suffix, tensor)`
/// pairs (suffixes appended to the module name):
/// - `pack-quantized` (int weights, 16-bit activations): `weight_packed` I32
///   `[out, ceil(in·b/32)]`, `weight_scale` (scale dtype), `weight_shape` I64 `[2]`, and for
///   asymmetric schemes `weight_zero_point` I32 packed along the output dimension
///   ([`pack_zero_point`]);
/// - `int-quantized` / `float-quantized`: `weight` I8 / F8_E4M3 `[out, in]`, `weight_scale`, and
///   for asymmetric int weights `weight_zero_point` I8 with the scale's shape.
///
/// `codes` `[out, in]` hold the quantized values, `scale` and `zero_point` are in their stored
/// shapes (`[out, G]`, `[out, 1]` or `[1]`); the zero point may be any dtype holding integers.
///
/// # Errors
/// A code or zero point outside the `b`-bit range.
pub fn linear_tensors(
    scheme: &crate::scheme::Scheme,
    codes: &Tensor,
    scale: Tensor,
    zero_point: Option<&Tensor>,
) -> Result<Vec<(String, Tensor)>> {
    use crate::scheme::WeightType;
    let (out, inf) = (codes.size()[0], codes.size()[1]);
    let mut t = Vec::new();
    match (scheme.weight, scheme.format()) {
        (WeightType::Int { bits }, "pack-quantized") => {
            t.push(("weight_packed".to_string(), pack_bits(codes, bits)?));
            t.push(("weight_scale".to_string(), scale));
            t.push(("weight_shape".to_string(), Tensor::from_slice(&[out, inf])));
            if let Some(z) = zero_point {
                let z2 = if z.dim() == 2 {
                    z.shallow_clone()
                } else {
                    z.reshape([-1, 1])
                };
                t.push(("weight_zero_point".to_string(), pack_zero_point(&z2, bits)?));
            }
        }
        _ => {
            t.push(("weight".to_string(), codes.shallow_clone()));
            t.push(("weight_scale".to_string(), scale));
            if let Some(z) = zero_point {
                t.push(("weight_zero_point".to_string(), z.to_kind(Kind::Int8)));
            }
        }
    }
    Ok(t)
}
