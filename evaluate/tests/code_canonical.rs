//! The reference solutions pass their own suites in the sandbox: 164/164 HumanEval, 164/164
//! HumanEval+ (every base and plus input, floats compared with `atol` as EvalPlus does), MBPP's
//! reference code on its test split (500/500). MBPP+ is not checked here: its inputs need
//! EvalPlus's per-task list-to-tuple conversion, not implemented yet (Mbpp/106's reference fails
//! on lists), so `--suite mbppplus` stops with an error naming the first such task.

use quantlab_evaluate::codeeval::{self, Sample, Status, Suite};
use quantlab_evaluate::sandbox::Sandbox;
use std::path::PathBuf;

/// The suites are judged one at a time: both fill every core, and run side by side on a small
/// machine their reference solutions' timings (which set the per-input limits) become noisy
/// enough to fail a reference (seen once on 2 cores).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn data_dir() -> PathBuf {
    let d = quantlab_tasks::default_data_dir();
    assert!(
        d.join("humaneval/test.jsonl.gz").is_file(),
        "the code datasets are missing under {} (set QUANTLAB_DATA)",
        d.display()
    );
    d
}

/// Judge every problem's reference solution as its sample; returns (passes, problems).
fn canonical(sb: &Sandbox, suite: Suite) -> (usize, usize, Vec<String>) {
    let t = std::time::Instant::now();
    let problems = codeeval::load_problems(suite, &data_dir(), None).unwrap();
    let gts = codeeval::ground_truth(sb, suite, &problems).unwrap();
    let t_gt = t.elapsed().as_secs_f64();
    let samples: Vec<Sample> = problems
        .iter()
        .map(|p| Sample {
            task_id: p.task_id.clone(),
            solution: p.reference.clone(),
        })
        .collect();
    let v = codeeval::check_samples(sb, suite, &problems, &gts, &samples).unwrap();
    let bad: Vec<String> = v
        .iter()
        .filter(|x| x.status != Status::Pass)
        .map(|x| format!("{} {:?} {}", x.task_id, x.status, x.reason))
        .collect();
    eprintln!(
        "{}: {}/{} pass; ground truth {:.1} s, total {:.1} s",
        suite.name(),
        v.len() - bad.len(),
        problems.len(),
        t_gt,
        t.elapsed().as_secs_f64()
    );
    (v.len() - bad.len(), problems.len(), bad)
}

#[test]
fn humaneval_and_humanevalplus_canonical_solutions_pass() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let sb = Sandbox::new().unwrap();
    let (ok, n, bad) = canonical(&sb, Suite::HumanEval);
    assert_eq!((ok, n), (164, 164), "{bad:#?}");
    let (ok, n, bad) = canonical(&sb, Suite::HumanEvalPlus);
    assert_eq!((ok, n), (164, 164), "{bad:#?}");
}

#[test]
fn mbpp_reference_code_passes() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let sb = Sandbox::new().unwrap();
    let (ok, n, bad) = canonical(&sb, Suite::Mbpp);
    assert_eq!((ok, n), (500, 500), "{bad:#?}");
    let plus = codeeval::load_problems(Suite::MbppPlus, &data_dir(), None).unwrap();
    let upto = plus.iter().position(|p| p.task_id == "Mbpp/106").unwrap() + 1;
    let e = match codeeval::ground_truth(&sb, Suite::MbppPlus, &plus[..upto]) {
        Ok(_) => panic!("MBPP+ references up to Mbpp/106 all ran on list inputs"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("Mbpp/106"), "{e}");
}
