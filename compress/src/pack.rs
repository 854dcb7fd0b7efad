//! W4A16 packing (compressed-tensors `pack_quantized` compressor, `pack_to_int32`): int4 values in
//! `[-8, 7]` get a +8 offset and eight of them go into one int32 along the input dimension, the
//! first value in the lowest 4 bits. `[out, in]` int8 -> `[out, in / 8]` int32.
//! The inverse is `quantlab_model::quant::unpack_int4`.

use tch::{Kind, Tensor};

/// Pack int4 codes `[out, in]` (in % 8 == 0) into `[out, in/8]` int32.
pub fn pack_int4(codes: &Tensor) -> anyhow::Result<Tensor> {
    let (out, inf) = (codes.size()[0], codes.size()[1]);
    if inf % 8 != 0 {
        anyhow::bail!("cannot pack {inf} columns into int32 words: the input dimension must be a multiple of 8");
    }
    let u = (codes.to_kind(Kind::Int64) + 8)
        .bitwise_and(0xF)
        .view([out, inf / 8, 8]);
    let shifts = Tensor::from_slice(&[0i64, 4, 8, 12, 16, 20, 24, 28]).view([1, 1, 8]);
    let words =
        u.bitwise_left_shift(&shifts)
            .sum_dim_intlist([2i64].as_slice(), false, Kind::Int64);
    // Values above 2^31 wrap to negative int32, exactly as the bit pattern requires.
    let words = (words.bitwise_and(0xFFFF_FFFFi64)
        - ((words.bitwise_right_shift_tensor_scalar(31)).bitwise_and(1) * (1i64 << 32)))
        .to_kind(Kind::Int);
    Ok(words)
}
