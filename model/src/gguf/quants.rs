//! ggml tensor types and their dequantization to f32.
//!
//! Block layouts and type ids follow the GGUF spec (`ggml/docs/gguf.md`, `ggml/src/ggml-common.h`);
//! the dequantization formulas follow gguf-py `gguf/quants.py` operation by operation, so that the
//! f32 values are bit-identical to what `gguf.quants.dequantize` returns:
//!
//! * `Q4_0`: 32 values per 18-byte block: f16 `d`, 16 bytes of nibbles; `x = d * (q - 8)`.
//! * `Q4_1`: 32 values per 20-byte block: f16 `d`, f16 `m`, 16 bytes of nibbles; `x = d * q + m`
//!   in f32 (two roundings, no fused multiply-add, as numpy does).
//! * `Q8_0`: 32 values per 34-byte block: f16 `d`, 32 × i8; `x = d * q`.
//! * `F16`, `BF16`, `F32`: plain little-endian floats, widened exactly to f32.
//!
//! In every 4-bit block the low nibbles of bytes 0..16 are elements 0..16 and the high nibbles are
//! elements 16..32 (gguf-py: `qs >> [0, 4]` then reshape).

use half::{bf16, f16};

/// A ggml tensor type id as stored in a GGUF tensor info (`enum ggml_type`).
///
/// Every id known to gguf-py is listed so that size checks and error messages work for all of
/// them, but only [`GgmlType::can_dequantize`] types can be converted to f32 here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GgmlType(pub u32);

/// (id, name, elements per block, bytes per block), from gguf-py `GGML_QUANT_SIZES`.
const TYPES: &[(u32, &str, u64, u64)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 40),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
];

impl GgmlType {
    /// `F32`.
    pub const F32: GgmlType = GgmlType(0);
    /// `F16`.
    pub const F16: GgmlType = GgmlType(1);
    /// `Q4_0`.
    pub const Q4_0: GgmlType = GgmlType(2);
    /// `Q4_1`.
    pub const Q4_1: GgmlType = GgmlType(3);
    /// `Q8_0`.
    pub const Q8_0: GgmlType = GgmlType(8);
    /// `BF16`.
    pub const BF16: GgmlType = GgmlType(30);

    fn entry(self) -> Option<&'static (u32, &'static str, u64, u64)> {
        TYPES.iter().find(|e| e.0 == self.0)
    }

    /// The ggml name (`Q4_1`, `Q5_K`, ...), or `type N` for an id this table does not know.
    pub fn name(self) -> String {
        match self.entry() {
            Some(e) => e.1.to_string(),
            None => format!("type {}", self.0),
        }
    }

    /// `(elements per block, bytes per block)`, `None` for an unknown id.
    pub fn block_layout(self) -> Option<(u64, u64)> {
        self.entry().map(|e| (e.2, e.3))
    }

    /// Whether [`dequantize`] supports this type.
    pub fn can_dequantize(self) -> bool {
        matches!(self.0, 0 | 1 | 2 | 3 | 8 | 30)
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

#[inline]
fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Dequantize `bytes` (whole blocks of type `ty`) to f32, appending to `out`.
///
/// Returns `Err` with a short reason when the type is not supported or `bytes` is not a whole
/// number of blocks; never panics.
pub fn dequantize(ty: GgmlType, bytes: &[u8], out: &mut Vec<f32>) -> Result<(), String> {
    let (block, size) = ty
        .block_layout()
        .ok_or_else(|| format!("unknown ggml type id {}", ty.0))?;
    if !ty.can_dequantize() {
        return Err(format!("unsupported ggml type {}", ty.name()));
    }
    let size = size as usize;
    if !bytes.len().is_multiple_of(size) {
        return Err(format!(
            "{} bytes is not a whole number of {} blocks of {size} bytes",
            bytes.len(),
            ty.name()
        ));
    }
    out.reserve(bytes.len() / size * block as usize);
    match ty {
        GgmlType::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
        GgmlType::F16 => out.extend(bytes.chunks_exact(2).map(|c| f16_at(c, 0))),
        GgmlType::BF16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()),
        ),
        GgmlType::Q4_0 => {
            for b in bytes.chunks_exact(size) {
                let d = f16_at(b, 0);
                let qs = &b[2..18];
                // gguf-py: int8 (q - 8), then float32, then d * q.
                out.extend(qs.iter().map(|&q| d * ((q & 0x0F) as i8 - 8) as f32));
                out.extend(qs.iter().map(|&q| d * ((q >> 4) as i8 - 8) as f32));
            }
        }
        GgmlType::Q4_1 => {
            for b in bytes.chunks_exact(size) {
                let d = f16_at(b, 0);
                let m = f16_at(b, 2);
                let qs = &b[4..20];
                // Separate multiply and add (Rust never fuses them implicitly).
                out.extend(qs.iter().map(|&q| d * (q & 0x0F) as f32 + m));
                out.extend(qs.iter().map(|&q| d * (q >> 4) as f32 + m));
            }
        }
        GgmlType::Q8_0 => {
            for b in bytes.chunks_exact(size) {
                let d = f16_at(b, 0);
                out.extend(b[2..34].iter().map(|&q| (q as i8) as f32 * d));
            }
        }
        _ => unreachable!("can_dequantize covers exactly the arms above"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16b(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_le_bytes()
    }

    #[test]
    fn q4_1_block_layout_and_formula() {
        let mut b = Vec::new();
        b.extend(f16b(0.5));
        b.extend(f16b(-1.0));
        // byte i: low nibble i, high nibble 15 - i
        b.extend((0u8..16).map(|i| i | ((15 - i) << 4)));
        let mut out = Vec::new();
        dequantize(GgmlType::Q4_1, &b, &mut out).unwrap();
        assert_eq!(out.len(), 32);
        for i in 0..16 {
            assert_eq!(out[i], 0.5 * i as f32 - 1.0);
            assert_eq!(out[16 + i], 0.5 * (15 - i) as f32 - 1.0);
        }
    }

    #[test]
    fn q8_0_and_q4_0() {
        let mut b = Vec::new();
        b.extend(f16b(0.25));
        b.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let mut out = Vec::new();
        dequantize(GgmlType::Q8_0, &b, &mut out).unwrap();
        assert_eq!(out[0], -4.0);
        assert_eq!(out[31], 3.75);

        let mut b = Vec::new();
        b.extend(f16b(2.0));
        b.extend([0x0Fu8; 16]);
        out.clear();
        dequantize(GgmlType::Q4_0, &b, &mut out).unwrap();
        assert_eq!(&out[..2], &[14.0, 14.0]);
        assert_eq!(&out[16..18], &[-16.0, -16.0]);
    }

    #[test]
    fn rejects_partial_blocks_and_unsupported_types() {
        let mut out = Vec::new();
        assert!(dequantize(GgmlType::Q4_1, &[0u8; 19], &mut out).is_err());
        let e = dequantize(GgmlType(13), &[0u8; 176], &mut out).unwrap_err();
        assert!(e.contains("Q5_K"), "{e}");
        assert!(dequantize(GgmlType(99), &[], &mut out).is_err());
    }

    #[test]
    fn bf16_rounding_is_half_to_even() {
        // 1.0 + 2^-8 is exactly halfway between two bf16 values: ties to the even one (1.0).
        assert_eq!(bf16::from_f32(1.0 + 2f32.powi(-8)).to_bits(), 0x3F80);
        // 1.0 + 3 * 2^-8 is halfway between 1+2^-7 (odd) and 1+2^-6 (even): rounds up.
        assert_eq!(bf16::from_f32(1.0 + 3.0 * 2f32.powi(-8)).to_bits(), 0x3F82);
        // Just above halfway rounds up.
        assert_eq!(
            bf16::from_f32(f32::from_bits(0x3F80_8001)).to_bits(),
            0x3F81
        );
        assert_eq!(bf16::from_f32(-2.5).to_bits(), 0xC020);
    }
}
