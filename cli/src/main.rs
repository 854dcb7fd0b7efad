//! `quantlab`: compress LLMs (W8A8-FP8, W8A8-INT8, W4A16) and measure how much accuracy they keep.
//! This binary only parses arguments and prints; every behaviour lives in the library crates.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "quantlab",
    version,
    about = "Compress LLMs to W8A8-FP8 / W8A8-INT8 / W4A16 and measure accuracy recovery against BF16",
    long_about = "Compress LLMs to the formats vLLM serves (compressed-tensors) and measure how much \
accuracy they keep.\n\nMODEL is a model folder (config.json + safetensors + tokenizer.json) or an alias from \
models.yaml (e.g. smollm2-135m), resolved to its folder or to its HF id in the local Hugging Face cache."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Engine throughput on fixed token requests: log-likelihood scoring (input tokens/s) and
    /// batched greedy generation (new tokens/s, EOS ignored), one warm-up pass then one timed pass
    /// each; prints a JSON report. `bench/eval/` builds the requests and runs transformers on the
    /// same file beside it (`just bench-eval`).
    Bench {
        /// Model folder or alias.
        model: String,
        /// Requests JSON: {"score": [[ids]], "continuation": C, "generate": [[ids]], "new_tokens": N}.
        #[arg(long)]
        requests: PathBuf,
        /// cpu | cuda | cuda:N | auto.
        #[arg(long, default_value = "auto")]
        device: String,
        /// float32 | bfloat16 | float16 | auto.
        #[arg(long, default_value = "auto")]
        dtype: String,
        /// Sequences per forward pass (default: every request of a kind in one batch).
        #[arg(long, default_value_t = 0, hide_default_value = true)]
        batch_size: usize,
    },
    /// Import a llama-family GGUF (Q4_1/Q8_0/F16/F32/BF16) into a Hugging Face folder with bf16 weights.
    ImportGguf {
        /// The .gguf file.
        file: PathBuf,
        /// Output folder (must not exist unless --force).
        #[arg(long)]
        out: PathBuf,
        /// Replace an existing output folder (only once the new one is complete).
        #[arg(long)]
        force: bool,
    },
    /// Quantize a model's Linear layers and write a compressed-tensors checkpoint.
    ///
    /// Presets (the paper's recipes, §3.2): w8a8-fp8 (round-to-nearest fp8 e4m3 per-channel
    /// weights, dynamic per-token fp8 activations; no data), w8a8-int8 (SmoothQuant α=0.8, then
    /// GPTQ int8 per-channel weights; dynamic per-token int8 activations), w4a16 (GPTQ int4
    /// symmetric in groups of 128 with MSE-optimal clipping; packed eight per int32); also
    /// compressed-tensors' w4a16-asym (int4 with zero points) and w8a16 (GPTQ int8 in groups of
    /// 128, packed four per int32). GPTQ and
    /// SmoothQuant run layer by layer on --calibration data. lm_head stays in bf16. An interrupted
    /// run resumes from its last finished layer (OUT.partial/).
    Compress {
        /// Model folder or alias.
        model: String,
        /// w8a8-fp8 | w8a8-int8 | w4a16 | w4a16-asym | w8a16 (omit with --recipe).
        scheme: Option<String>,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// llm-compressor-style recipe YAML (SmoothQuantModifier, AWQModifier, GPTQModifier, QuantizationModifier).
        #[arg(long, conflicts_with = "scheme")]
        recipe: Option<PathBuf>,
        /// Group size for grouped schemes (w4a16, w4a16-asym, w8a16: default 128; must divide every Linear's input dim).
        #[arg(long)]
        group_size: Option<usize>,
        /// Calibration data: open-platypus | alpaca-eval | random | jsonl:PATH | tokens:PATH.
        #[arg(long, default_value = "open-platypus")]
        calibration: String,
        /// Calibration sequences.
        #[arg(long, default_value_t = 512)]
        samples: usize,
        /// Tokens per calibration sequence (longer texts are truncated).
        #[arg(long, default_value_t = 2048)]
        seq_len: usize,
        /// Seed of the calibration shuffle / random tokens.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// For jsonl: calibration, the field holding the text.
        #[arg(long)]
        text_field: Option<String>,
        /// How instruction/output records are rendered: alpaca | chat.
        #[arg(long, default_value = "alpaca")]
        template: String,
        /// Folder holding open_platypus/ and alpaca_eval/ (default: $QUANTLAB_DATA or ../shared/data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// cpu | cuda | cuda:N | auto: where each decoder layer is calibrated and quantized.
        #[arg(long, default_value = "auto")]
        device: String,
        /// Calibration tokens per forward batch.
        #[arg(long, default_value_t = 16384)]
        batch_tokens: usize,
        /// Forward dtype of the calibration passes: bfloat16 (default, as llm-compressor runs the
        /// model) | float32. GPTQ itself and the Hessian sums are always float32.
        #[arg(long, default_value = "bfloat16")]
        dtype: String,
        /// Keep the calibration activations in host memory between stages (GPUs too small to
        /// hold them all; slower: they cross PCIe several times per layer).
        #[arg(long)]
        offload_activations: bool,
        /// Replace an existing output folder.
        #[arg(long)]
        force: bool,
    },
    /// Evaluate a model on a suite or tasks and write a run folder under --runs-dir.
    Eval {
        /// Model folder or alias.
        model: Option<String>,
        /// A suite of tasks: smoke, leaderboard-v1, leaderboard-v2, a code suite (humaneval,
        /// humanevalplus, mbpp, mbppplus), or similarity (answers compared with --baseline's);
        /// `--list-tasks` lists them.
        #[arg(long, conflicts_with = "tasks")]
        suite: Option<String>,
        /// Comma-separated task names (or task spec YAML files).
        #[arg(long, value_delimiter = ',')]
        tasks: Vec<String>,
        /// Evaluate only the first N documents of each task.
        #[arg(long)]
        limit: Option<usize>,
        /// Folder holding the datasets in their HF schemas (default: $QUANTLAB_DATA or ../shared/data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Where run folders are created.
        #[arg(long, default_value = "runs")]
        runs_dir: PathBuf,
        /// Exact run folder to write (default: runs-dir/<time>-<model>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Backend: local (the built-in engine).
        #[arg(long, default_value = "local")]
        backend: String,
        /// cpu | cuda | cuda:N | auto.
        #[arg(long, default_value = "auto")]
        device: String,
        /// float32 | bfloat16 | float16 | auto (float32 on CPU, bfloat16 on CUDA).
        #[arg(long, default_value = "auto")]
        dtype: String,
        /// Sequences per forward pass (default: 64 on CPU, 256 on CUDA).
        #[arg(long, default_value_t = 0, hide_default_value = true)]
        batch_size: usize,
        /// List the tasks and suites and exit.
        #[arg(long)]
        list_tasks: bool,
        /// FILE: score these pre-generated answers instead of generating (code suites: JSONL of
        /// task_id and solution or completion; similarity: id and answer); MODEL is then optional
        /// (only recorded). N (digits only; write ./N for a file so named): code suites generate N
        /// samples per problem, which needs --temperature; pass@k is reported for k in {1, 10,
        /// 100} up to N.
        #[arg(long, value_name = "FILE|N")]
        samples: Option<String>,
        /// Code suites: sample with this temperature (> 0) instead of decoding greedily
        /// (EvalPlus: e.g. 0.8 with --samples 10 for pass@10; 0 = greedy; without --samples N,
        /// one sample per problem). --top-p and --seed apply only with it.
        #[arg(long, allow_negative_numbers = true)]
        temperature: Option<f64>,
        /// Code suites, with --temperature: nucleus sampling mass [default: 0.95, EvalPlus's].
        #[arg(long, allow_negative_numbers = true)]
        top_p: Option<f64>,
        /// Code suites, with --temperature: the run's seed [default: 0]; each sample's stream is
        /// seeded from it, the task id and the sample's index, so a re-run gives the same samples.
        #[arg(long)]
        seed: Option<u64>,
        /// Maximum new tokens per generated answer (code suites: 512; similarity: 1024 on CUDA,
        /// 256 on CPU).
        #[arg(long)]
        max_new_tokens: Option<usize>,
        /// Similarity suite: the baseline model's similarity run folder, whose stored answers are
        /// the references (never generated again). Without it the run only generates and stores
        /// its answers (do this once for the BF16 model).
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// Similarity suite: arena-hard (Arena-Hard-Auto v0.1, the paper's 500 prompts), ifeval,
        /// or a JSONL file (id + prompt).
        #[arg(long, default_value = "arena-hard")]
        prompts: String,
        /// Similarity suite: Porter-stem ROUGE tokens.
        #[arg(long)]
        stem: bool,
        /// Do not read or write the request cache ($QUANTLAB_CACHE, default ~/.cache/quantlab):
        /// every request is computed.
        #[arg(long)]
        no_cache: bool,
    },
    /// Recovery table (markdown and CSV) of runs against the BF16 baseline run.
    Report {
        /// Run folders (or their results.json).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// The baseline run, by run id or model name (default: the one run whose scheme is bf16).
        #[arg(long)]
        baseline: Option<String>,
        /// Write report.{md,csv,json,html}, report_stats.csv and the charts (recovery.svg,
        /// scores.svg, recovery.png) here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Paired-bootstrap resamples per task and run (0: no bootstrap).
        #[arg(long, default_value_t = quantlab_reports::stats::DEFAULT_RESAMPLES)]
        resamples: usize,
        /// Seed of the bootstrap.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Regression gate: compare the recovery % per task and per suite of the runs in --runs
    /// (a BF16 run and compressed runs) with a stored baseline snapshot.
    ///
    /// Prints what moved beyond the tolerance (or beyond its 95% CI), writes a JSON summary and a
    /// JUnit XML, and exits 1 on a regression, 0 otherwise, 2 on an error (among them a baseline
    /// made with other task versions). --write-baseline FILE only writes tonight's snapshot.
    Regress {
        /// Stored baseline: a snapshot (--write-baseline) or an earlier regress.json.
        #[arg(long, required_unless_present = "write_baseline")]
        baseline: Option<PathBuf>,
        /// Folder whose sub-folders are tonight's run folders.
        #[arg(long)]
        runs: PathBuf,
        /// Allowed drop of a recovery, percentage points.
        #[arg(long, default_value_t = quantlab_reports::regress::DEFAULT_TOLERANCE_PP)]
        tolerance_pp: f64,
        /// YAML/JSON mapping of task or suite name to its own tolerance in pp. A key
        /// `KIND:NAME` targets one kind of entry, e.g. `leaderboard_v2:bbh: 3.0` for the BBH
        /// benchmark recovery of leaderboard-v2 runs (entries `SCHEME/leaderboard_v2:bbh`, ...,
        /// `SCHEME/leaderboard_v2:average`), apart from a task of the same name.
        #[arg(long)]
        per_task: Option<PathBuf>,
        /// Count a drop only when the stored recovery is also outside tonight's 95% CI.
        #[arg(long)]
        require_significant: bool,
        /// The BF16 run in --runs by run id or model name (default: the one with scheme bf16).
        #[arg(long)]
        baseline_run: Option<String>,
        /// JSON summary (default: RUNS/regress.json).
        #[arg(long)]
        summary: Option<PathBuf>,
        /// JUnit XML (default: RUNS/regress-junit.xml).
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Write tonight's snapshot to this file (to use as --baseline later) and exit.
        #[arg(long)]
        write_baseline: Option<PathBuf>,
        /// Paired-bootstrap resamples per task and run (0: no CI).
        #[arg(long, default_value_t = quantlab_reports::stats::DEFAULT_RESAMPLES)]
        resamples: usize,
    },
    /// Text similarity of candidate answers (quantized model) to reference answers (BF16):
    /// ROUGE-1/L (rouge-score), BERTScore P/R/F1 (bert-score) and STS (sentence-transformers
    /// cosine, also as (cos+1)/2) per pair, and their means with 95% confidence intervals.
    ///
    /// Both files are JSONL, one object per line with an id and a text; pairs are matched by id.
    /// Writes similarity.json (settings, means, per-pair scores) and similarity.md to --out.
    Similarity {
        /// Candidate texts (the quantized model's answers), JSONL.
        #[arg(long)]
        candidates: PathBuf,
        /// Reference texts (the BF16 baseline's answers), JSONL.
        #[arg(long)]
        references: PathBuf,
        /// Field holding the id (a string or an integer).
        #[arg(long, default_value = "id")]
        id_field: String,
        /// Field holding the text.
        #[arg(long, default_value = "text")]
        text_field: String,
        /// Porter-stem ROUGE tokens (rouge-score's use_stemmer=True).
        #[arg(long)]
        stem: bool,
        /// BERTScore encoder: a folder, or a name in the local HF cache (default: roberta-large if cached, else all-MiniLM-L6-v2).
        #[arg(long)]
        encoder: Option<String>,
        /// BERTScore layer (default: bert-score's choice, 17 for roberta-large, 6 for MiniLM).
        #[arg(long)]
        layer: Option<usize>,
        /// Weight BERTScore tokens by their idf over the references.
        #[arg(long)]
        idf: bool,
        /// Rescale BERTScore with this bert-score baseline file (LAYER,P,R,F rows).
        #[arg(long)]
        baseline: Option<PathBuf>,
        /// STS encoder folder (default: all-MiniLM-L6-v2 from `just fetch-minilm`).
        #[arg(long)]
        sts_encoder: Option<PathBuf>,
        /// Skip BERTScore.
        #[arg(long)]
        no_bertscore: bool,
        /// Skip STS.
        #[arg(long)]
        no_sts: bool,
        /// cpu | cuda | cuda:N | auto.
        #[arg(long, default_value = "auto")]
        device: String,
        /// Padded tokens per encoder batch.
        #[arg(long, default_value_t = 8192)]
        batch_tokens: usize,
        /// Output folder (created if needed; its similarity.{json,md} are replaced).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Where the output folder is created when --out is not given.
        #[arg(long, default_value = "runs")]
        runs_dir: PathBuf,
    },
}

/// Keep freed heap memory in the process instead of returning it to the kernel at every `free`.
///
/// libtorch's CPU tensors come from glibc `malloc`, which serves blocks above a (dynamic, at most
/// 32 MiB) threshold with fresh `mmap`s and trims the heap top on `free`: a CPU compression that
/// allocates and frees the same activation-sized tensors for every batch of every layer then
/// spends a large part of its time zeroing new pages in the kernel (12 s of system time in 45 s
/// of SmolLM2 GPTQ on 2 cores). With the largest mmap threshold glibc accepts and trimming off,
/// freed blocks are reused (0.7 s). Peak memory is unchanged; memory freed by one phase stays
/// with the process for the next. `QUANTLAB_MALLOC_DEFAULTS=1` keeps glibc's defaults.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("QUANTLAB_MALLOC_DEFAULTS").is_none() {
        // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        }
    }
}

fn main() {
    // `quantlab report ... | head` ends quietly, as a Unix tool does, instead of panicking on the
    // closed pipe (Rust ignores SIGPIPE by default).
    // SAFETY: restoring the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("QUANTLAB_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal, not in redirected logs.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        // One clear line (the chain joined), non-zero exit.
        let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        eprintln!("error: {}", chain.join(": "));
        std::process::exit(1);
    }
}

/// `eval --suite humaneval|humanevalplus|mbpp|mbppplus`: samples from a file or greedy
/// generation with MODEL, judged in the sandbox; prints pass@k and writes the run folder.
#[allow(clippy::too_many_arguments)]
fn eval_code(
    suite: quantlab_evaluate::codeeval::Suite,
    model: Option<String>,
    samples: Option<PathBuf>,
    decoding: quantlab_evaluate::codeeval::generate::Decoding,
    limit: Option<usize>,
    data_dir: Option<PathBuf>,
    runs_dir: PathBuf,
    out: Option<PathBuf>,
    engine_opts: quantlab_model::EngineOptions,
    max_new_tokens: usize,
    no_cache: bool,
) -> Result<()> {
    use quantlab_evaluate::codeeval;
    if limit == Some(0) {
        anyhow::bail!("--limit must be at least 1");
    }
    let data_dir = data_dir.unwrap_or_else(quantlab_tasks::default_data_dir);
    let (info, dir) = eval_identity(model.as_deref(), samples.as_deref(), out.as_deref())?;
    check_out_empty(out.as_deref(), false)?;
    let (mut backend, describe) = generating_backend(
        dir.as_deref(),
        samples.is_some(),
        &info,
        engine_opts,
        no_cache,
    )?;
    let out_dir = match out {
        Some(o) => o,
        None => quantlab_evaluate::new_run_dir(&runs_dir, &info.name)?,
    };
    let req = codeeval::CodeEval {
        suite,
        data_dir,
        limit,
        samples,
        backend: backend
            .as_mut()
            .map(|b| &mut **b as &mut dyn quantlab_evaluate::Backend),
        max_new_tokens,
        decoding,
        run: codeeval::CodeRunOptions {
            out_dir: out_dir.clone(),
            model: info,
            backend: describe,
            limit,
        },
    };
    let (res, verdicts) = codeeval::run_code_eval(req)?;
    report_cache(backend.as_deref());
    println!("| task | metric | value | stderr | n |");
    println!("| --- | --- | ---: | ---: | ---: |");
    for (task, r) in &res.tasks {
        for (m, v) in &r.metrics {
            println!(
                "| {task} | {m} | {:.4} | {:.4} | {} |",
                v.value, v.stderr, r.n_docs
            );
        }
    }
    let counts: Vec<String> = codeeval::status_counts(&verdicts)
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!("samples: {} ({})", verdicts.len(), counts.join(", "));
    println!("run: {} ({:.1} s)", out_dir.display(), res.wall_time_s);
    Ok(())
}

/// The identity a code or similarity run records: MODEL resolved (its `--out` checked against the
/// model folder), or, without MODEL, the samples file's. Returns it with the model folder.
fn eval_identity(
    model: Option<&str>,
    samples: Option<&std::path::Path>,
    out: Option<&std::path::Path>,
) -> Result<(quantlab_evaluate::ModelInfo, Option<PathBuf>)> {
    match (model, samples) {
        (Some(m), _) => {
            let dir = quantlab_model::registry::resolve_model(m)?;
            check_eval_out(out, &dir)?;
            Ok((
                quantlab_evaluate::model_info::model_info(m, &dir)?,
                Some(dir),
            ))
        }
        (None, Some(s)) => Ok((quantlab_evaluate::codeeval::samples_model_info(s)?, None)),
        (None, None) => anyhow::bail!("give MODEL (to generate) or --samples FILE"),
    }
}

/// Refuse an `--out` that exists and is not empty, unless it holds an interrupted run to resume.
fn check_out_empty(out: Option<&std::path::Path>, resuming: bool) -> Result<()> {
    if let Some(o) = out.filter(|_| !resuming) {
        if o.exists()
            && std::fs::read_dir(o)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true)
        {
            anyhow::bail!(
                "{}: run folder exists and is not empty; choose another --out or remove it",
                o.display()
            );
        }
    }
    Ok(())
}

/// The model's backend when answers are generated (`dir` given and no samples file), with the
/// settings to record; `(None, {"backend": "samples"})` when they come from a file.
fn generating_backend(
    dir: Option<&std::path::Path>,
    samples: bool,
    info: &quantlab_evaluate::ModelInfo,
    engine_opts: quantlab_model::EngineOptions,
    no_cache: bool,
) -> Result<(
    Option<Box<dyn quantlab_evaluate::Backend>>,
    serde_json::Value,
)> {
    match dir.filter(|_| !samples) {
        Some(dir) => {
            eprintln!(
                "loading {} ({}) from {}",
                info.name,
                info.scheme,
                dir.display()
            );
            let engine = quantlab_model::Engine::load(dir, engine_opts)?;
            let be = local_backend(engine, info, no_cache)?;
            let describe = be.describe();
            Ok((Some(be), describe))
        }
        None => Ok((None, serde_json::json!({ "backend": "samples" }))),
    }
}

/// Refuse an eval `--out` inside the model folder (or holding it, or the current folder): a run
/// folder written into a checkpoint would be mistaken for part of it.
fn check_eval_out(out: Option<&std::path::Path>, model_dir: &std::path::Path) -> Result<()> {
    if let Some(o) = out {
        quantlab_compress::writer::check_output_is_safe(o, &[model_dir])?;
    }
    Ok(())
}

/// The built-in engine as an eval backend, behind the cross-run request cache
/// ([`quantlab_evaluate::cache`]) unless `no_cache` or `QUANTLAB_CACHE=off`.
fn local_backend(
    engine: quantlab_model::Engine,
    info: &quantlab_evaluate::ModelInfo,
    no_cache: bool,
) -> Result<Box<dyn quantlab_evaluate::Backend>> {
    let be = quantlab_evaluate::local::LocalBackend::new(engine);
    let dir = if no_cache {
        None
    } else {
        quantlab_evaluate::cache::default_cache_dir()
    };
    let Some(d) = dir else {
        return Ok(Box::new(be));
    };
    // A cache that cannot be opened (read-only folder, damaged file) costs speed, not the run.
    match quantlab_evaluate::cache::probe(&d) {
        Ok(()) => Ok(Box::new(quantlab_evaluate::cache::CachedBackend::open(
            be, &d, info,
        )?)),
        Err(e) => {
            eprintln!("warning: {e:#}; evaluating without the request cache");
            Ok(Box::new(be))
        }
    }
}

/// One stderr line on the request cache, when one was used.
fn report_cache(be: Option<&dyn quantlab_evaluate::Backend>) {
    if let Some(st) = be.and_then(|b| b.cache_stats()) {
        let path = be
            .map(|b| b.describe())
            .and_then(|d| d.get("cache").and_then(|c| c.as_str()).map(String::from))
            .unwrap_or_default();
        eprintln!(
            "request cache: {} of {} answers reused, {} computed and stored ({path}; --no-cache to bypass)",
            st.hits,
            st.hits + st.misses,
            st.misses
        );
    }
}

/// `--samples`: a file of answers, or (digits only) a number of samples per problem.
enum SamplesArg {
    File(PathBuf),
    Count(usize),
}

impl SamplesArg {
    fn parse(s: &str) -> SamplesArg {
        match s.parse::<usize>() {
            Ok(n) if s.bytes().all(|b| b.is_ascii_digit()) => SamplesArg::Count(n),
            _ => SamplesArg::File(PathBuf::from(s)),
        }
    }
}

/// Arguments of `eval --suite similarity`.
struct SimilarityArgs {
    model: Option<String>,
    samples: Option<PathBuf>,
    limit: Option<usize>,
    data_dir: Option<PathBuf>,
    runs_dir: PathBuf,
    out: Option<PathBuf>,
    engine: quantlab_model::EngineOptions,
    max_new_tokens: Option<usize>,
    baseline: Option<PathBuf>,
    prompts: String,
    stem: bool,
    no_cache: bool,
}

/// `eval --suite similarity`: generate (or read) answers, score them against `--baseline`'s
/// stored answers, write the run folder, print the means.
fn eval_similarity(a: SimilarityArgs) -> Result<()> {
    use quantlab_evaluate::similarity as sim;
    use sim::suite;
    if a.limit == Some(0) {
        anyhow::bail!("--limit must be at least 1");
    }
    if a.max_new_tokens == Some(0) {
        anyhow::bail!("--max-new-tokens must be at least 1");
    }
    let data_dir = a.data_dir.unwrap_or_else(quantlab_tasks::default_data_dir);
    let source = suite::PromptSource::parse_checked(&a.prompts)?;
    if a.samples.is_some() && a.max_new_tokens.is_some() {
        eprintln!("warning: --max-new-tokens is ignored with --samples (the answers are given)");
    }
    let device = quantlab_model::engine::parse_device(&a.engine.device)?;
    let max_new = match a.max_new_tokens {
        Some(n) => n,
        None if device.is_cuda() => suite::MAX_NEW_TOKENS_GPU,
        None => {
            if a.samples.is_none() {
                eprintln!(
                    "warning: on CPU the similarity answers default to {} new tokens (the paper \
                     uses {} on GPU); pass --max-new-tokens to choose",
                    suite::MAX_NEW_TOKENS_CPU,
                    suite::MAX_NEW_TOKENS_GPU
                );
            }
            suite::MAX_NEW_TOKENS_CPU
        }
    };
    // Everything that can fail cheaply fails before the model loads.
    let baseline = a
        .baseline
        .as_deref()
        .map(suite::load_baseline)
        .transpose()?;
    // The encoders are only needed to score against a baseline; a run that only stores its
    // answers (the BF16 model's, often on a GPU machine without them) does not look for them.
    let scoring = sim::SimilarityOptions {
        stem: a.stem,
        bertscore: match &a.baseline {
            Some(_) => Some(sim::BertScoreOptions {
                encoder: sim::resolve_encoder(None)?,
                layer: None,
                idf: false,
                baseline: None,
            }),
            None => None,
        },
        sts: match &a.baseline {
            Some(_) => Some(sim::StsOptions {
                encoder: sim::find_minilm()?,
            }),
            None => None,
        },
        device,
        batch_tokens: 8192,
    };
    if let Some(b) = &baseline {
        match &a.samples {
            None => {
                let prompts = suite::load_prompts(&source, &data_dir, a.limit)?;
                // The chat template's use is only known once the model is loaded; checked then.
                let mut planned = b.settings.clone();
                planned.prompts = source.label();
                planned.decoding = "greedy".into();
                planned.max_new_tokens = Some(max_new);
                suite::check_settings(&planned, b)?;
                suite::check_coverage(prompts.iter().map(|p| p.id.as_str()), b)?;
            }
            Some(s) => {
                let answers = suite::read_samples(s)?;
                suite::check_samples_cover(&answers, b, a.limit, s)?;
            }
        }
    } else if a.samples.is_none() {
        suite::load_prompts(&source, &data_dir, a.limit)?;
    }
    let (info, dir) = eval_identity(a.model.as_deref(), a.samples.as_deref(), a.out.as_deref())?;
    let resuming = a
        .out
        .as_ref()
        .is_some_and(|o| o.join(suite::RESUME_DIR).is_dir() && !o.join("results.json").exists());
    check_out_empty(a.out.as_deref(), resuming)?;
    let (mut backend, describe) = generating_backend(
        dir.as_deref(),
        a.samples.is_some(),
        &info,
        a.engine.clone(),
        a.no_cache,
    )?;
    let out_dir = match a.out {
        Some(o) => o,
        None => quantlab_evaluate::new_run_dir(&a.runs_dir, &info.name)?,
    };
    if resuming {
        eprintln!("resuming the interrupted run in {}", out_dir.display());
    }
    let pb = indicatif::ProgressBar::new(0);
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "similarity generating [{bar:40}] {pos}/{len} ({elapsed} < {eta})",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    let progress = |done: usize, total: usize| {
        pb.set_length(total as u64);
        pb.set_position(done as u64);
    };
    let chunk = match a.engine.batch_size {
        0 if device.is_cuda() => 256,
        0 => 64,
        n => n,
    };
    let req = suite::SimilarityEval {
        prompts: source,
        data_dir,
        limit: a.limit,
        samples: a.samples,
        backend: backend
            .as_mut()
            .map(|b| &mut **b as &mut dyn quantlab_evaluate::Backend),
        max_new_tokens: max_new,
        chunk,
        baseline: baseline.map(|b| b.dir),
        scoring,
        out_dir: out_dir.clone(),
        model: info,
        backend_info: describe,
        progress: &progress,
    };
    let (res, scored) = suite::run_similarity_eval(req)?;
    pb.finish_and_clear();
    report_cache(backend.as_deref());
    match &scored {
        Some(s) => println!("{}", sim::render_markdown(s)),
        None => println!(
            "stored {} answers in {}/{} (no --baseline: nothing to compare with; give this run \
             folder as --baseline to the quantized models' similarity runs)",
            std::fs::read_to_string(out_dir.join(suite::GENERATIONS_FILE))
                .map(|t| t.lines().count())
                .unwrap_or(0),
            out_dir.display(),
            suite::GENERATIONS_FILE
        ),
    }
    println!("run: {} ({:.1} s)", out_dir.display(), res.wall_time_s);
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::ImportGguf { file, out, force } => {
            let s = quantlab_model::gguf::import_gguf_with(&file, &out, force)?;
            println!(
                "imported {} tensors ({}) into {}",
                s.n_tensors,
                s.architecture,
                s.out_dir.display()
            );
        }
        Cmd::Compress {
            model,
            scheme,
            out,
            recipe,
            group_size,
            calibration,
            samples,
            seq_len,
            seed,
            text_field,
            template,
            data_dir,
            device,
            batch_tokens,
            dtype,
            offload_activations,
            force,
        } => {
            let recipe = match (&scheme, &recipe) {
                (Some(s), None) => quantlab_compress::Recipe::preset(
                    quantlab_compress::SchemeName::parse(s)?,
                    group_size,
                )?,
                (None, Some(path)) => {
                    quantlab_compress::recipe::Recipe::from_yaml_file(path, group_size)?
                }
                _ => anyhow::bail!("give a SCHEME (w8a8-fp8, w8a8-int8, w4a16, w4a16-asym, w8a16) or --recipe FILE"),
            };
            let dir = quantlab_model::registry::resolve_model(&model)?;
            let calib = quantlab_calibration::CalibrationOptions {
                source: quantlab_calibration::Source::parse(&calibration)?,
                samples,
                seq_len,
                seed,
                text_field,
                template: quantlab_calibration::Template::parse(&template)?,
                data_dir: data_dir.unwrap_or_else(quantlab_calibration::default_data_dir),
                shuffle: true,
            };
            let opts = quantlab_compress::sequential::RunOptions {
                device: quantlab_model::engine::parse_device(&device)?,
                compute_kind: Some(match dtype.as_str() {
                    "bfloat16" | "bf16" => tch::Kind::BFloat16,
                    "float32" | "fp32" => tch::Kind::Float,
                    other => anyhow::bail!("--dtype {other}: expected bfloat16 or float32"),
                }),
                batch_tokens,
                offload_activations,
                force,
                progress: true,
            };
            eprintln!("{}: {}", recipe.scheme.name, recipe.describe());
            let r = quantlab_compress::sequential::run_recipe(&dir, &out, &recipe, &calib, &opts)?;
            let s = &r.summary;
            if let Some(c) = &r.calibration {
                println!("{c}");
            }
            if let Some(l) = r.gptq_total_loss {
                println!(
                    "GPTQ loss (sum over {} Linears): {l:.2}",
                    s.quantized_linears
                );
            }
            println!(
                "{}: {} Linears quantized, {} tensors copied unchanged, {:.1} MB -> {:.1} MB, mean relative weight error {:.4}, {:.1} s -> {}",
                s.scheme,
                s.quantized_linears,
                s.kept_tensors,
                s.bytes_in as f64 / 1e6,
                s.bytes_out as f64 / 1e6,
                s.mean_rel_error,
                s.wall_s,
                s.out_dir.display()
            );
        }
        Cmd::Eval {
            model,
            suite,
            tasks,
            limit,
            data_dir,
            runs_dir,
            out,
            backend,
            device,
            dtype,
            batch_size,
            list_tasks,
            samples,
            temperature,
            top_p,
            seed,
            max_new_tokens,
            baseline,
            prompts,
            stem,
            no_cache,
        } => {
            let (samples, n_samples) = match samples.as_deref().map(SamplesArg::parse) {
                Some(SamplesArg::File(f)) => (Some(f), None),
                Some(SamplesArg::Count(n)) => (None, Some(n)),
                None => (None, None),
            };
            let is_code = suite
                .as_deref()
                .and_then(quantlab_evaluate::codeeval::Suite::parse)
                .is_some();
            if !is_code && (n_samples.is_some() || temperature.is_some()) {
                anyhow::bail!(
                    "--samples N and --temperature are for the code suites (humaneval, \
                     humanevalplus, mbpp, mbppplus); other tasks decode as their specs say"
                );
            }
            if samples.is_some() && temperature.is_some() {
                anyhow::bail!(
                    "--temperature is for generating; a --samples FILE's answers are given"
                );
            }
            if (top_p.is_some() || seed.is_some()) && temperature.is_none_or(|t| t == 0.0) {
                anyhow::bail!(
                    "--top-p and --seed apply only when sampling: give --temperature T (> 0) too \
                     (without it, decoding is greedy)"
                );
            }
            let decoding = quantlab_evaluate::codeeval::generate::Decoding {
                n_samples: n_samples.unwrap_or(1),
                sampling: temperature
                    .filter(|&t| t != 0.0)
                    .map(|t| (t, top_p.unwrap_or(0.95))),
                seed: seed.unwrap_or(0),
            };
            decoding.validate()?;
            if list_tasks {
                println!("tasks:  {}", quantlab_tasks::list_tasks().join(", "));
                println!("suites: {}", quantlab_tasks::list_suites().join(", "));
                println!("code suites: humaneval, humanevalplus, mbpp, mbppplus");
                println!(
                    "similarity: similarity (--baseline RUN, --prompts arena-hard|ifeval|FILE)"
                );
                return Ok(());
            }
            let engine = quantlab_model::EngineOptions {
                device,
                dtype,
                batch_size,
                ..Default::default()
            };
            if suite.as_deref() == Some(quantlab_evaluate::similarity::suite::SUITE) {
                return eval_similarity(SimilarityArgs {
                    model,
                    samples,
                    limit,
                    data_dir,
                    runs_dir,
                    out,
                    engine: engine.clone(),
                    max_new_tokens,
                    baseline,
                    prompts,
                    stem,
                    no_cache,
                });
            }
            if baseline.is_some() {
                anyhow::bail!("--baseline is for --suite similarity (for report/regress baselines see their --help)");
            }
            if let Some(cs) = suite
                .as_deref()
                .and_then(quantlab_evaluate::codeeval::Suite::parse)
            {
                return eval_code(
                    cs,
                    model,
                    samples,
                    decoding,
                    limit,
                    data_dir,
                    runs_dir,
                    out,
                    engine.clone(),
                    max_new_tokens.unwrap_or(512),
                    no_cache,
                );
            }
            if samples.is_some() {
                anyhow::bail!(
                    "--samples is for the code suites (humaneval, humanevalplus, mbpp, mbppplus) and --suite similarity"
                );
            }
            let model =
                model.context("MODEL is required (a folder or an alias from models.yaml)")?;
            let specs = match (&suite, tasks.is_empty()) {
                (Some(s), _) => quantlab_tasks::suite(s)?,
                (None, false) => tasks
                    .iter()
                    .map(|t| quantlab_tasks::resolve_task(t))
                    .collect::<Result<Vec<_>>>()?,
                (None, true) => {
                    anyhow::bail!("give --suite NAME or --tasks a,b (see --list-tasks)")
                }
            };
            if backend != "local" {
                anyhow::bail!("backend '{backend}' is not available yet (local)");
            }
            let dir = quantlab_model::registry::resolve_model(&model)?;
            check_eval_out(out.as_deref(), &dir)?;
            let info = quantlab_evaluate::model_info::model_info(&model, &dir)?;
            let data_dir = data_dir.unwrap_or_else(quantlab_tasks::default_data_dir);
            // Check the data before loading the model, so a missing file fails fast.
            for s in &specs {
                let p = s.data_path(&data_dir);
                if !p.is_file() {
                    anyhow::bail!(
                        "task {}: data file {} is missing; put the dataset there (HF schema, jsonl/jsonl.gz) or pass --data-dir",
                        s.task,
                        p.display()
                    );
                }
            }
            // MATH Level 5's symbolic checks run in Python after generation: check it first.
            if specs.iter().any(|s| {
                s.metrics
                    .contains(&quantlab_tasks::spec::MetricSpec::MathHard)
            }) {
                quantlab_tasks::math::check_python()?;
            }
            eprintln!("loading {} ({}) from {}", model, info.scheme, dir.display());
            let engine = quantlab_model::Engine::load(&dir, engine)?;
            let mut be = local_backend(engine, &info, no_cache)?;
            // An interrupted run (resume state, no results.json) in --out is continued.
            let resuming = out.as_ref().is_some_and(|o| {
                o.join(quantlab_evaluate::runner::RESUME_DIR).is_dir()
                    && !o.join("results.json").exists()
            });
            if resuming {
                eprintln!(
                    "resuming the interrupted run in {}",
                    out.as_ref()
                        .map_or(String::new(), |o| o.display().to_string())
                );
            }
            check_out_empty(out.as_deref(), resuming)?;
            if limit == Some(0) {
                anyhow::bail!("--limit must be at least 1");
            }
            let existed = out.as_ref().is_some_and(|o| o.exists());
            let out_dir = match out {
                Some(o) => o,
                None => quantlab_evaluate::new_run_dir(&runs_dir, &model)?,
            };
            let run_opts = quantlab_evaluate::RunOptions {
                data_dir,
                limit,
                out_dir: out_dir.clone(),
                model: info,
                suite: suite.unwrap_or_else(|| "custom".into()),
            };
            let res = match quantlab_evaluate::run_tasks(&mut *be, &specs, &run_opts) {
                Ok(r) => r,
                Err(e) => {
                    // Leave no half-written run folder behind (one we created).
                    if !existed {
                        let _ = std::fs::remove_dir_all(&out_dir);
                    }
                    return Err(e);
                }
            };
            println!("| task | metric | value | stderr | n |");
            println!("| --- | --- | ---: | ---: | ---: |");
            for (task, r) in &res.tasks {
                for (m, v) in &r.metrics {
                    println!(
                        "| {task} | {m} | {:.4} | {:.4} | {} |",
                        v.value, v.stderr, r.n_docs
                    );
                }
            }
            report_cache(Some(&*be));
            println!("run: {} ({:.1} s)", out_dir.display(), res.wall_time_s);
        }
        Cmd::Report {
            runs,
            baseline,
            out,
            resamples,
            seed,
        } => {
            let opts = quantlab_reports::ReportOptions {
                stats: quantlab_reports::stats::StatsOptions {
                    resamples,
                    seed,
                    ..Default::default()
                },
            };
            let md = quantlab_reports::write_report_with(
                &runs,
                baseline.as_deref(),
                out.as_deref(),
                &opts,
            )?;
            println!("{md}");
            if let Some(o) = out {
                eprintln!("wrote the report files to {}", o.display());
            }
        }
        Cmd::Bench {
            model,
            requests,
            device,
            dtype,
            batch_size,
        } => {
            let req = quantlab_model::throughput::BenchRequests::read(&requests)?;
            let dir = quantlab_model::registry::resolve_model(&model)?;
            let rows = req.score.len().max(req.generate.len()).max(1);
            let longest = req
                .score
                .iter()
                .map(Vec::len)
                .chain(req.generate.iter().map(|g| g.len() + req.new_tokens))
                .max()
                .unwrap_or(1);
            let batch = if batch_size == 0 { rows } else { batch_size };
            let mut engine = quantlab_model::Engine::load(
                &dir,
                quantlab_model::EngineOptions {
                    device,
                    dtype,
                    batch_size: batch,
                    max_batch_tokens: batch * longest,
                    max_length: None,
                },
            )?;
            let max_len = engine
                .opts
                .max_length
                .unwrap_or(engine.model.cfg.max_position_embeddings);
            req.check_for(&requests, engine.model.cfg.vocab_size, max_len)?;
            let rep = quantlab_model::throughput::run(&mut engine, &req)?;
            println!("{}", serde_json::to_string_pretty(&rep)?);
        }
        Cmd::Regress {
            baseline,
            runs,
            tolerance_pp,
            per_task,
            require_significant,
            baseline_run,
            summary,
            junit,
            write_baseline,
            resamples,
        } => {
            // Exit 2 on errors, so CI can tell a broken gate from a regression (exit 1).
            let code = match regress(
                baseline,
                runs,
                tolerance_pp,
                per_task,
                require_significant,
                baseline_run,
                summary,
                junit,
                write_baseline,
                resamples,
            ) {
                Ok(true) => 0,
                Ok(false) => 1,
                Err(e) => {
                    let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
                    eprintln!("error: {}", chain.join(": "));
                    2
                }
            };
            std::process::exit(code);
        }
        Cmd::Similarity {
            candidates,
            references,
            id_field,
            text_field,
            stem,
            encoder,
            layer,
            idf,
            baseline,
            sts_encoder,
            no_bertscore,
            no_sts,
            device,
            batch_tokens,
            out,
            runs_dir,
        } => {
            use quantlab_evaluate::similarity as sim;
            if batch_tokens == 0 {
                anyhow::bail!("--batch-tokens must be at least 1");
            }
            let pairs = sim::read_pairs(&candidates, &references, &id_field, &text_field)?;
            let bertscore = if no_bertscore {
                None
            } else {
                Some(sim::BertScoreOptions {
                    encoder: sim::resolve_encoder(encoder.as_deref())?,
                    layer,
                    idf,
                    baseline,
                })
            };
            let sts = match (no_sts, sts_encoder) {
                (true, _) => None,
                (false, Some(dir)) => Some(sim::StsOptions { encoder: dir }),
                (false, None) => Some(sim::StsOptions {
                    encoder: sim::find_minilm()?,
                }),
            };
            let opts = sim::SimilarityOptions {
                stem,
                bertscore,
                sts,
                device: quantlab_model::engine::parse_device(&device)?,
                batch_tokens,
            };
            let mut res = sim::score_pairs(&pairs, &opts)?;
            res.candidates = Some(candidates.display().to_string());
            res.references = Some(references.display().to_string());
            let out_dir = match out {
                Some(o) => o,
                None => quantlab_evaluate::new_run_dir(&runs_dir, "similarity")?,
            };
            sim::write_outputs(&out_dir, &res)?;
            println!("{}", sim::render_pairs(&res));
            println!("{}", sim::render_markdown(&res));
            println!(
                "wrote {}/similarity.{{json,md}} ({} pairs, {:.1} s)",
                out_dir.display(),
                res.n_pairs,
                res.timings.total_s
            );
        }
    }
    Ok(())
}

/// `quantlab regress`; Ok(passed).
#[allow(clippy::too_many_arguments)]
fn regress(
    baseline: Option<PathBuf>,
    runs: PathBuf,
    tolerance_pp: f64,
    per_task: Option<PathBuf>,
    require_significant: bool,
    baseline_run: Option<String>,
    summary: Option<PathBuf>,
    junit: Option<PathBuf>,
    write_baseline: Option<PathBuf>,
    resamples: usize,
) -> Result<bool> {
    use quantlab_reports::regress as rg;
    if !(tolerance_pp.is_finite() && tolerance_pp >= 0.0) {
        anyhow::bail!("--tolerance-pp {tolerance_pp}: expected a non-negative number");
    }
    let report = quantlab_reports::ReportOptions {
        stats: quantlab_reports::stats::StatsOptions {
            resamples,
            ..Default::default()
        },
    };
    if let Some(path) = write_baseline {
        let snap = rg::snapshot(&runs, baseline_run.as_deref(), &report)?;
        rg::write_snapshot(&snap, &path)?;
        println!(
            "wrote baseline snapshot {} ({} entries, {} tasks)",
            path.display(),
            snap.entries.len(),
            snap.task_versions.len()
        );
        return Ok(true);
    }
    let baseline = baseline.context("--baseline FILE is required")?;
    let gate = rg::GateOptions {
        tolerance_pp,
        per_task: match &per_task {
            Some(p) => rg::read_tolerances(p)?,
            None => Default::default(),
        },
        require_significant,
    };
    let summary = summary.unwrap_or_else(|| runs.join("regress.json"));
    let junit = junit.unwrap_or_else(|| runs.join("regress-junit.xml"));
    let r = rg::run_gate(
        &baseline,
        &runs,
        baseline_run.as_deref(),
        &gate,
        &report,
        &summary,
        &junit,
    )?;
    print!("{}", r.text);
    println!(
        "{}; wrote {} and {}",
        if r.passed { "PASSED" } else { "REGRESSION" },
        summary.display(),
        junit.display()
    );
    Ok(r.passed)
}
