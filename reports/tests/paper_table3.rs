//! The paper's Table 3 (arXiv 2411.02355: Open LLM Leaderboard V2 and the real-world columns) fed
//! through the recovery table. The CSV is `shared/reference/paper/table3_leaderboard_v2_realworld.csv`
//! (`$QUANTLAB_SHARED`, else `<workspace>/../shared`); a missing file fails the test.
//!
//! The V2 per-task columns are already normalised, (v − chance) / (1 − chance) × 100, and printed
//! with two decimals; the Average is their mean over the six V2 tasks (Arena-Hard and HumanEval
//! are separate columns, not in the Average). What the printed numbers show:
//! - our Average of the six columns equals the printed average to two decimals for 11 of 12 rows
//!   and is within ±0.005 of it for all (the twelfth, 8B BF16, is the rounding tie 27.615);
//! - the paper's Recovery % is the ratio of its *printed* (two-decimal) averages: fed those, the
//!   report reproduces all 9 printed recoveries to two decimals. From the unrounded averages 4 of
//!   9 agree to two decimals and all 9 lie within the ±0.005 rounding of the averages.
//! - the near-random flag (baseline closes < 20% of the chance-to-perfect gap on a guessable task)
//!   marks exactly GPQA and MuSR at all three sizes, the tasks the paper's §4.2 sets aside.

mod common;

use common::{close, md_row, md_rows, run};
use quantlab_reports::stats::NEAR_RANDOM_HEADROOM;
use quantlab_reports::{recovery_table, RunResults, AVERAGE_ROW, NEAR_RANDOM};
use std::collections::BTreeMap;
use std::path::PathBuf;

const V2: [&str; 6] = [
    "ifeval_0shot",
    "bbh_3shot",
    "math_lvl5_4shot",
    "gpqa_0shot",
    "musr_0shot",
    "mmlu_pro_5shot",
];
const REAL_WORLD: [&str; 3] = [
    "arena_hard_winrate",
    "humaneval_pass1",
    "humanevalplus_pass1",
];

struct Row {
    size: String,
    format: String,
    recovery: String,
    average: String,
    cols: BTreeMap<String, f64>,
}

fn shared_dir() -> PathBuf {
    match std::env::var_os("QUANTLAB_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
    }
}

fn table3() -> Vec<Row> {
    let path = shared_dir().join("reference/paper/table3_leaderboard_v2_realworld.csv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "paper Table 3 CSV missing: {} ({e}); set QUANTLAB_SHARED to the shared folder",
            path.display()
        )
    });
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("empty CSV").split(',').collect();
    assert_eq!(header[..4], ["size", "format", "recovery_pct", "average"]);
    assert_eq!(header[4..10], V2, "Table 3 V2 columns changed");
    assert_eq!(
        header[10..],
        REAL_WORLD,
        "Table 3 real-world columns changed"
    );
    let rows: Vec<Row> = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            Row {
                size: c[0].into(),
                format: c[1].into(),
                recovery: c[2].into(),
                average: c[3].into(),
                cols: header[4..]
                    .iter()
                    .zip(&c[4..])
                    .map(|(h, v)| (h.to_string(), v.parse().unwrap()))
                    .collect(),
            }
        })
        .collect();
    assert_eq!(rows.len(), 12, "3 sizes x 4 formats");
    rows
}

fn scheme(format: &str) -> &'static str {
    match format {
        "BF16" => "bf16",
        "W8A8-FP" => "w8a8-fp8",
        "W8A8-INT" => "w8a8-int8",
        "W4A16-INT" => "w4a16",
        other => panic!("unknown format {other}"),
    }
}

fn to_run(row: &Row, tasks: &[(&str, f64)]) -> RunResults {
    let scores: Vec<(&str, &str, f64, f64)> = tasks
        .iter()
        .map(|&(t, v)| (t, "score", v / 100.0, 0.0))
        .collect();
    run(
        &format!("llama-3.1-{}-{}", row.size, row.format),
        &format!("Llama-3.1-{}-Instruct", row.size),
        scheme(&row.format),
        &scores,
    )
}

/// Chance levels of the raw tasks behind the V2 columns: generation tasks (IFEval, MATH) 0; the
/// multiple-choice ones 1 / choices (BBH and MuSR vary per subtask; any value in (0, 1) gives the
/// same flag on normalised scores, see `RecoveryTable::flag_near_random`).
fn chance() -> BTreeMap<String, f64> {
    [
        ("ifeval_0shot", 0.0),
        ("bbh_3shot", 0.25),
        ("math_lvl5_4shot", 0.0),
        ("gpqa_0shot", 0.25),
        ("musr_0shot", 1.0 / 3.0),
        ("mmlu_pro_5shot", 0.1),
    ]
    .into_iter()
    .map(|(t, c)| (t.to_string(), c))
    .collect()
}

#[test]
fn averages_recoveries_and_near_random_flags() {
    let rows = table3();
    let (mut exact_avg, mut exact_rec_unrounded) = (0, 0);
    for size in ["8B", "70B", "405B"] {
        let group: Vec<&Row> = rows.iter().filter(|r| r.size == size).collect();
        assert_eq!(group[0].format, "BF16");
        let runs: Vec<RunResults> = group
            .iter()
            .map(|r| {
                let t: Vec<(&str, f64)> = V2.iter().map(|&t| (t, r.cols[t])).collect();
                to_run(r, &t)
            })
            .collect();
        let mut table = recovery_table(&runs, None).unwrap();
        assert_eq!(table.average_tasks().len(), 6);
        table.flag_near_random(&chance(), true, NEAR_RANDOM_HEADROOM);
        assert_eq!(
            table.near_random_tasks(),
            ["gpqa_0shot", "musr_0shot"],
            "{size}"
        );
        let md = table.to_markdown();
        let header = &md_rows(&md)[0];
        let base_avg = table.score(AVERAGE_ROW, "bf16").unwrap();
        for row in &group {
            let label = scheme(&row.format);
            let ours = table.score(AVERAGE_ROW, label).unwrap();
            let mean = V2.iter().map(|t| row.cols[*t]).sum::<f64>() / 6.0;
            assert!(close(ours, mean), "{size} {label}: {ours} vs {mean}");
            // Two-decimal inputs: the printed average is reproduced to its precision. The one
            // exception is a rounding tie: 8B BF16's six columns sum to 165.69, mean 27.615
            // exactly in decimal, which binary floating point holds as 27.61499..., printed
            // 27.61; the paper (from unrounded scores) printed 27.62.
            let printed: f64 = row.average.parse().unwrap();
            assert!(
                (ours - printed).abs() <= 0.005 + 1e-9,
                "{size} {label}: {ours}"
            );
            if format!("{ours:.2}") == row.average {
                exact_avg += 1;
            } else {
                assert_eq!((size, label), ("8B", "bf16"));
                assert!((ours - 27.615).abs() < 1e-9);
            }
            if row.format == "BF16" {
                continue;
            }
            let col = header
                .iter()
                .position(|h| *h == format!("{label} recovery %"))
                .unwrap();
            // Near-random tasks: no recovery quoted; the others are quoted.
            assert_eq!(md_row(&md, "gpqa_0shot")[col], NEAR_RANDOM);
            assert_eq!(md_row(&md, "musr_0shot")[col], NEAR_RANDOM);
            let bbh = table.recovery("bbh_3shot", label).unwrap();
            assert_eq!(md_row(&md, "bbh_3shot")[col], format!("{bbh:.2}"));
            // Average recovery from the unrounded averages: within the rounding of the printed
            // averages, and often equal to two decimals.
            let r = table.recovery(AVERAGE_ROW, label).unwrap();
            assert!(close(r, ours / base_avg * 100.0));
            let printed: f64 = row.recovery.parse().unwrap();
            let (q, b): (f64, f64) = (
                row.average.parse().unwrap(),
                group[0].average.parse().unwrap(),
            );
            let lo = (q - 0.005) / (b + 0.005) * 100.0 - 0.005;
            let hi = (q + 0.005) / (b - 0.005) * 100.0 + 0.005;
            assert!(
                lo <= r && r <= hi,
                "{size} {label}: {r} not in [{lo}, {hi}]"
            );
            assert!(lo <= printed && printed <= hi);
            if format!("{r:.2}") == row.recovery {
                exact_rec_unrounded += 1;
            }
            // The Average row's recovery is quoted even though it contains GPQA and MuSR.
            assert_eq!(md_row(&md, AVERAGE_ROW)[col], format!("{r:.2}"));
        }
    }
    assert_eq!(exact_avg, 11);
    assert_eq!(
        exact_rec_unrounded, 4,
        "unrounded averages give 4 of 9 to two decimals"
    );
    // Spot check in print: 8B W4A16-INT IFEval, 76.30 / 77.86 = 98.00 % (the paper's §4.2:
    // "the lowest recovery being 98% for the 8B model on the IFEval task").
    let t = recovery_table(
        &rows
            .iter()
            .filter(|r| r.size == "8B")
            .map(|r| to_run(r, &[("ifeval_0shot", r.cols["ifeval_0shot"])]))
            .collect::<Vec<_>>(),
        None,
    )
    .unwrap();
    assert_eq!(md_row(&t.to_markdown(), "ifeval_0shot")[8], "98.00");
}

#[test]
fn recovery_of_the_printed_averages_reproduces_every_printed_recovery() {
    let rows = table3();
    let mut exact = 0;
    for size in ["8B", "70B", "405B"] {
        let group: Vec<&Row> = rows.iter().filter(|r| r.size == size).collect();
        let runs: Vec<RunResults> = group
            .iter()
            .map(|r| to_run(r, &[("leaderboard_v2_average", r.average.parse().unwrap())]))
            .collect();
        let md = recovery_table(&runs, None).unwrap().to_markdown();
        let header = &md_rows(&md)[0];
        for row in &group[1..] {
            let col = header
                .iter()
                .position(|h| *h == format!("{} recovery %", scheme(&row.format)))
                .unwrap();
            assert_eq!(
                md_row(&md, AVERAGE_ROW)[col],
                row.recovery,
                "{size} {}",
                row.format
            );
            exact += 1;
        }
    }
    assert_eq!(exact, 9);
}

#[test]
fn real_world_columns_get_per_task_recoveries() {
    // Arena-Hard and HumanEval(+) are not in the V2 average; as tasks of their own they get a
    // recovery each: 70B W4A16-INT HumanEval pass@1 80.5 / 79.7 = 101.00 %.
    let rows = table3();
    let runs: Vec<RunResults> = rows
        .iter()
        .filter(|r| r.size == "70B")
        .map(|r| {
            let t: Vec<(&str, f64)> = REAL_WORLD.iter().map(|&t| (t, r.cols[t])).collect();
            to_run(r, &t)
        })
        .collect();
    let t = recovery_table(&runs, None).unwrap();
    let r = t.recovery("humaneval_pass1", "w4a16").unwrap();
    assert_eq!(format!("{r:.2}"), "101.00");
    let r = t.recovery("arena_hard_winrate", "w8a8-fp8").unwrap();
    assert!(close(r, 57.7 / 57.0 * 100.0));
}
