//! Quantization arithmetic against hand-computed values (DESIGN.md "Numerics").
use quantlab_compress::pack::pack_int4;
use quantlab_compress::quantize::{dequantize, quantize_rtn};
use quantlab_compress::scheme::{Scheme, SchemeName, Strategy, WeightType};
use tch::{Kind, Tensor};

fn codes(t: &Tensor) -> Vec<i64> {
    Vec::<i64>::try_from(t.to_kind(Kind::Int64).flatten(0, -1)).unwrap()
}

#[test]
fn int4_symmetric_scale_is_absmax_over_7_5_in_bf16() {
    let w = Tensor::from_slice(&[0.75f32, -1.5, 0.1, 0.3]).view([1, 4]);
    let q = quantize_rtn(
        &w,
        WeightType::Int { bits: 4 },
        Strategy::Channel,
        Kind::BFloat16,
    );
    // 1.5 / 7.5 = 0.2 -> bf16 0.2001953125
    assert_eq!(q.scale.kind(), Kind::BFloat16);
    assert_eq!(q.scale.double_value(&[0, 0]), 0.2001953125);
    // 0.75/0.2002 = 3.746 -> 4; -1.5/0.2002 = -7.49 -> -7; 0.4995 -> 0; 1.4985 -> 1
    assert_eq!(codes(&q.codes), vec![4, -7, 0, 1]);
}

#[test]
fn rounding_is_half_to_even_and_clamped() {
    // absmax 7.5 -> scale exactly 1.0
    let w = Tensor::from_slice(&[7.5f32, 0.5, 1.5, 2.5, -0.5, -2.5, 3.49, -7.5]).view([1, 8]);
    let q = quantize_rtn(
        &w,
        WeightType::Int { bits: 4 },
        Strategy::Channel,
        Kind::BFloat16,
    );
    assert_eq!(q.scale.double_value(&[0, 0]), 1.0);
    assert_eq!(codes(&q.codes), vec![7, 0, 2, 2, 0, -2, 3, -8]);
    // int8: absmax 127.5 -> scale 1.0; 127.5 rounds to 128 and clamps to 127.
    let w = Tensor::from_slice(&[127.5f32, -127.5, 10.5, 11.5]).view([1, 4]);
    let q = quantize_rtn(
        &w,
        WeightType::Int { bits: 8 },
        Strategy::Channel,
        Kind::BFloat16,
    );
    assert_eq!(q.scale.double_value(&[0, 0]), 1.0);
    assert_eq!(codes(&q.codes), vec![127, -128, 10, 12]);
}

#[test]
fn fp8_e4m3_scale_and_rounding() {
    // absmax 448 -> scale 1; e4m3 has step 2 in [16, 32): 17 -> 16 (even), 19 -> 20 (even).
    let w = Tensor::from_slice(&[448.0f32, 17.0, 19.0, 1.0625, -0.0]).view([1, 5]);
    let q = quantize_rtn(&w, WeightType::Fp8E4M3, Strategy::Channel, Kind::BFloat16);
    assert_eq!(q.scale.double_value(&[0, 0]), 1.0);
    let back: Vec<f32> = Vec::<f32>::try_from(q.codes.to_kind(Kind::Float).flatten(0, -1)).unwrap();
    // 1.0625 = 1 + 1/16: e4m3 step at 1 is 1/8, a tie between 1.0 and 1.125 -> 1.0 (even).
    assert_eq!(back, vec![448.0, 16.0, 20.0, 1.0, 0.0]);
}

#[test]
fn group_scales_are_per_group_of_columns() {
    let w = Tensor::from_slice(&[1.0f32, -2.0, 3.0, 4.0, 0.5, 0.25, -0.75, 0.1]).view([1, 8]);
    let q = quantize_rtn(
        &w,
        WeightType::Int { bits: 4 },
        Strategy::Group(4),
        Kind::Float,
    );
    assert_eq!(q.scale.size(), vec![1, 2]);
    let s: Vec<f32> = Vec::<f32>::try_from(q.scale.flatten(0, -1)).unwrap();
    assert!(
        (s[0] - 4.0 / 7.5).abs() < 1e-7 && (s[1] - 0.75 / 7.5).abs() < 1e-7,
        "{s:?}"
    );
    let d = dequantize(&q, Strategy::Group(4));
    let err = (d - &w).abs().max().double_value(&[]);
    assert!(
        err <= 4.0 / 7.5 / 2.0 + 1e-6,
        "error {err} beyond half a step"
    );
}

#[test]
fn int4_packing_layout_low_bits_first_with_offset() {
    // -8..-1 -> nibbles 0..7 -> 0x76543210 ; 0..7 -> nibbles 8..15 -> 0xFEDCBA98 (negative as i32)
    let c = Tensor::from_slice(&[-8i8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7])
        .view([1, 16]);
    let p = pack_int4(&c).unwrap();
    assert_eq!(p.kind(), Kind::Int);
    assert_eq!(codes(&p), vec![0x76543210i64, 0xFEDCBA98u32 as i32 as i64]);
    let back = quantlab_model::quant::unpack_int4(&p, 16);
    assert_eq!(codes(&back), codes(&c));
    // Out of range codes are refused; a width that is not a multiple of 8 packs densely.
    assert!(pack_int4(&Tensor::from_slice(&[8i8]).view([1, 1])).is_err());
    assert_eq!(
        pack_int4(&Tensor::zeros([2, 12], (Kind::Int8, tch::Device::Cpu)))
            .unwrap()
            .size(),
        [2, 2]
    );
}

/// `pack_bits` and `unpack_bits` against compressed-tensors 0.19.0's `pack_to_int32` on the cases
/// of `tests/fixtures/ct_pack.json` (2, 3, 4, 5 and 8 bits; widths that straddle words; packed
/// along dim 1 as weights and along dim 0 as zero points), made by `tests/fixtures/make_ct_pack.py`.
#[test]
fn dense_packing_matches_compressed_tensors() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ct_pack.json");
    let f: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = f["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 15);
    let mat = |v: &serde_json::Value| -> (Vec<i64>, i64, i64) {
        let rows = v.as_array().unwrap();
        let cols = rows[0].as_array().unwrap().len() as i64;
        let flat: Vec<i64> = rows
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()))
            .collect();
        (flat, rows.len() as i64, cols)
    };
    for c in cases {
        let bits = c["bits"].as_u64().unwrap() as u32;
        let (vals, r, k) = mat(&c["values"]);
        let (want, pr, pk) = mat(&c["packed"]);
        let v = Tensor::from_slice(&vals).view([r, k]).to_kind(Kind::Int8);
        let (got, back) = if c["packed_dim"] == 0 {
            let p = quantlab_compress::pack::pack_zero_point(&v, bits).unwrap();
            let b = quantlab_model::quant::unpack_bits(&p.tr(), bits, r).tr();
            (p, b)
        } else {
            let p = quantlab_compress::pack::pack_bits(&v, bits).unwrap();
            let b = quantlab_model::quant::unpack_bits(&p, bits, k);
            (p, b)
        };
        assert_eq!(got.kind(), Kind::Int);
        assert_eq!(got.size(), [pr, pk], "{bits} bits, shape");
        assert_eq!(codes(&got), want, "{bits} bits, dim {}", c["packed_dim"]);
        assert_eq!(codes(&back), vals, "{bits} bits unpacked");
    }
}

#[test]
fn scheme_names_and_group_size_override() {
    assert_eq!(SchemeName::parse("W4A16").unwrap(), SchemeName::W4A16);
    let e = SchemeName::parse("w3a5").unwrap_err().to_string();
    assert!(
        e.contains("unknown scheme 'w3a5'") && e.contains("w8a8-fp8"),
        "{e}"
    );
    let s = Scheme::preset(SchemeName::W4A16, Some(64)).unwrap();
    assert_eq!(s.strategy, Strategy::Group(64));
    assert_eq!(
        Scheme::preset(SchemeName::W4A16, None).unwrap().strategy,
        Strategy::Group(128)
    );
    assert!(Scheme::preset(SchemeName::W8A8Fp8, Some(64)).is_err());
}

/// The paper-era MSE clipping search (GPTQ `quant.py::Quantizer.find_params(mse=True)`, grid 100,
/// max-shrink 0.80, norm 2.4) written out element by element: for shrink `p = 1 - i/100`,
/// `i = 0..80`, the symmetric int4 scale `max(|p·min|, |p·max|) / 7.5` rounded to bf16, the error
/// `Σ |clamp(round(x/s))·s - x|^2.4` (f64 sum), and the first candidate with the least error.
/// Our observer (on the host it searches slices of rows: 256 rows here take eight) must choose
/// the same scale for every group.
#[test]
fn mse_observer_matches_an_element_by_element_search() {
    use quantlab_compress::observer::Observer;
    let (rows, groups, g) = (256i64, 3i64, 64i64);
    tch::manual_seed(7);
    let w = Tensor::randn([rows, groups * g], (Kind::Float, tch::Device::Cpu));
    // A few outliers, so that clipping pays off in some groups and not in others.
    let _ = w.narrow(1, 5, 1).narrow(0, 0, 40).g_mul_scalar_(6.0);
    let x = w.view([rows, groups, g]);
    let got = Observer::MSE_PAPER.qparams(&x, WeightType::Int { bits: 4 }, true, Kind::BFloat16);
    let got: Vec<f64> =
        Vec::<f64>::try_from(got.scale.to_kind(Kind::Double).flatten(0, -1)).unwrap();
    let xv: Vec<f32> = Vec::<f32>::try_from(w.flatten(0, -1)).unwrap();
    let bf16 = |v: f32| f32::from(half::bf16::from_f32(v));
    let mut shrunk = 0;
    for r in 0..rows as usize {
        for gi in 0..groups as usize {
            let vals = &xv[r * (groups * g) as usize + gi * g as usize..][..g as usize];
            let (mn, mx) = vals
                .iter()
                .fold((0f32, 0f32), |(a, b), &v| (a.min(v), b.max(v)));
            let mut best = (f64::INFINITY, 0f32, 0);
            for i in 0..80 {
                let p = -(i as f32) / 100.0 + 1.0;
                let s = bf16(((mn * p).abs().max(mx * p) / 7.5).max(f32::EPSILON));
                let err: f64 = vals
                    .iter()
                    .map(|&v| {
                        let q = (v / s).round_ties_even().clamp(-8.0, 7.0) * s;
                        ((q - v).abs() as f64).powf(2.4)
                    })
                    .sum();
                if err < best.0 {
                    best = (err, s, i);
                }
            }
            if best.2 > 0 {
                shrunk += 1;
            }
            assert_eq!(
                got[r * groups as usize + gi],
                best.1 as f64,
                "row {r} group {gi}: scale differs from the element-by-element search (best shrink step {})",
                best.2
            );
        }
    }
    assert!(shrunk > 100, "only {shrunk} groups chose a clipped range");
}
