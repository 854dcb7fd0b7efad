//! The cross-run request cache: re-running an unchanged task on an unchanged model reuses the
//! answers instead of computing them again (lm-evaluation-harness's `--use_cache`, which keeps
//! one SqliteDict per model; here one SQLite file for all models).
//!
//! [`CachedBackend`] wraps any [`Backend`]. Every request is looked up under
//! - a *namespace*: sha256 over the model's `config_sha256` and `weights_sha256` and the backend's
//!   settings that change the numbers (everything in [`Backend::describe`] except the batch size
//!   and the progress-only fields), so another checkpoint, dtype or device never shares answers;
//! - a *key*: sha256 over the request kind (`loglikelihood`, `generate_until`,
//!   `loglikelihood_rolling`) and the request as JSON (context, continuation, stop strings, token
//!   budget: everything the answer depends on).
//!
//! Misses go to the wrapped backend in one call (keeping its batching) and are stored in one
//! transaction when it returns, so an interrupted call stores nothing half-done. The batch size is
//! not part of the key: padding can move bf16 log-likelihoods in the last digits, which
//! lm-evaluation-harness's cache also ignores. The file is `$QUANTLAB_CACHE/requests.sqlite`
//! (`$QUANTLAB_CACHE` defaults to `$XDG_CACHE_HOME/quantlab`, else `~/.cache/quantlab`;
//! `QUANTLAB_CACHE=off` or `eval --no-cache` disables it).

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{de::DeserializeOwned, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

use crate::backend::{Backend, ChatMessage, GenerateRequest, Loglikelihood, LoglikelihoodRequest};
use crate::results::ModelInfo;

/// Environment variable naming the cache folder (`off` disables the cache).
pub const CACHE_ENV: &str = "QUANTLAB_CACHE";
/// File name of the database inside the cache folder.
pub const CACHE_FILE: &str = "requests.sqlite";

/// The cache folder from the environment: `$QUANTLAB_CACHE` (`None` when it is `off`), else
/// `$XDG_CACHE_HOME/quantlab`, else `$HOME/.cache/quantlab`, else `None`.
pub fn default_cache_dir() -> Option<PathBuf> {
    match std::env::var_os(CACHE_ENV).filter(|v| !v.is_empty()) {
        Some(v)
            if ["off", "0", "false", "no", "none"]
                .iter()
                .any(|o| v.to_string_lossy().eq_ignore_ascii_case(o)) =>
        {
            None
        }
        Some(v) => Some(PathBuf::from(v)),
        None => std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(|x| PathBuf::from(x).join("quantlab"))
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".cache/quantlab"))
            }),
    }
}

/// Whether a request cache can be opened (and created) in `dir`, without keeping it open.
///
/// Errors: the folder cannot be created, or the file cannot be opened or is not a SQLite database
/// of this cache (naming it; remove it to start afresh, or set `QUANTLAB_CACHE=off`).
pub fn probe(dir: &Path) -> Result<()> {
    connect(dir).map(|_| ())
}

fn connect(dir: &Path) -> Result<(Connection, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create the request cache folder {} (set {CACHE_ENV} to another folder, or off)",
            dir.display()
        )
    })?;
    let path = dir.join(CACHE_FILE);
    let hint = || {
        format!(
            "{}: not a usable request cache (remove it, or set {CACHE_ENV}=off)",
            path.display()
        )
    };
    let db = Connection::open(&path).with_context(hint)?;
    db.busy_timeout(std::time::Duration::from_secs(60))?;
    db.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE IF NOT EXISTS answers (
             namespace TEXT NOT NULL,
             key TEXT NOT NULL,
             value TEXT NOT NULL,
             PRIMARY KEY (namespace, key)
         ) WITHOUT ROWID;",
    )
    .with_context(hint)?;
    Ok((db, path))
}

/// Hits and misses of one [`CachedBackend`], by request count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Requests answered from the cache.
    pub hits: usize,
    /// Requests sent to the wrapped backend (and stored).
    pub misses: usize,
}

/// A [`Backend`] that answers from the request cache when it can (see the module documentation).
pub struct CachedBackend<B: Backend> {
    inner: B,
    db: Connection,
    path: PathBuf,
    namespace: String,
    stats: CacheStats,
    /// Set after a read or write failed: the cache is bypassed from then on (warned once).
    broken: bool,
}

fn sha_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// The namespace of a model and backend settings (see the module documentation).
pub fn namespace(model: &ModelInfo, describe: &serde_json::Value) -> String {
    let mut settings = describe.clone();
    if let Some(o) = settings.as_object_mut() {
        o.remove("batch_size");
        o.remove("cache");
    }
    sha_hex(&[
        model.config_sha256.as_bytes(),
        model.weights_sha256.as_deref().unwrap_or("").as_bytes(),
        settings.to_string().as_bytes(),
    ])
}

impl<B: Backend> CachedBackend<B> {
    /// Open (or create) `dir/requests.sqlite` and wrap `inner` for `model`.
    ///
    /// Errors: see [`probe`].
    pub fn open(inner: B, dir: &Path, model: &ModelInfo) -> Result<Self> {
        let (db, path) = connect(dir)?;
        let namespace = namespace(model, &inner.describe());
        Ok(CachedBackend {
            inner,
            db,
            path,
            namespace,
            stats: CacheStats::default(),
            broken: false,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hits and misses so far.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// The wrapped backend.
    pub fn into_inner(self) -> B {
        self.inner
    }

    /// Answer `reqs` from the cache, sending the misses to `compute` in one call (in request
    /// order) and storing their answers in one transaction. A cache that fails to read or write
    /// (a damaged file, a full disk, a read-only folder) is reported once on stderr and bypassed:
    /// the evaluation goes on without it.
    fn cached<R: Serialize, A: Serialize + DeserializeOwned + Clone>(
        &mut self,
        kind: &str,
        reqs: &[R],
        progress: &dyn Fn(usize),
        compute: impl FnOnce(&mut B, Vec<usize>, &dyn Fn(usize)) -> Result<Vec<A>>,
    ) -> Result<Vec<A>> {
        if self.broken {
            self.stats.misses += reqs.len();
            return compute(&mut self.inner, (0..reqs.len()).collect(), progress);
        }
        let keys: Vec<String> = reqs
            .iter()
            .map(|r| {
                let json = serde_json::to_vec(r)?;
                Ok(sha_hex(&[kind.as_bytes(), &json]))
            })
            .collect::<Result<_>>()?;
        let mut out: Vec<Option<A>> = vec![None; reqs.len()];
        if let Err(e) = self.lookup(&keys, &mut out) {
            self.give_up("reading", &e);
            out.iter_mut().for_each(|a| *a = None);
        }
        let misses: Vec<usize> = (0..reqs.len()).filter(|&i| out[i].is_none()).collect();
        let hits = reqs.len() - misses.len();
        if hits > 0 {
            progress(hits);
        }
        self.stats.hits += hits;
        self.stats.misses += misses.len();
        if !misses.is_empty() {
            let answers = compute(&mut self.inner, misses.clone(), progress)?;
            anyhow::ensure!(
                answers.len() == misses.len(),
                "the backend returned {} answers for {} requests",
                answers.len(),
                misses.len()
            );
            if !self.broken {
                if let Err(e) = self.store(&misses, &keys, &answers) {
                    self.give_up("writing", &e);
                }
            }
            for (i, a) in misses.into_iter().zip(answers) {
                out[i] = Some(a);
            }
        }
        Ok(out
            .into_iter()
            .map(|a| a.expect("every request answered"))
            .collect())
    }

    fn give_up(&mut self, what: &str, e: &anyhow::Error) {
        eprintln!(
            "warning: {what} the request cache {} failed ({e:#}); going on without it (remove \
             the file to start a new one, or set {CACHE_ENV}=off)",
            self.path.display()
        );
        self.broken = true;
    }

    fn lookup<A: DeserializeOwned>(&self, keys: &[String], out: &mut [Option<A>]) -> Result<()> {
        let mut stmt = self
            .db
            .prepare_cached("SELECT value FROM answers WHERE namespace = ?1 AND key = ?2")?;
        for (i, k) in keys.iter().enumerate() {
            let v: Option<String> = stmt
                .query_row(params![self.namespace, k], |row| row.get(0))
                .optional()?;
            if let Some(v) = v {
                // An unreadable entry (another version's format) is recomputed.
                out[i] = serde_json::from_str(&v).ok();
            }
        }
        Ok(())
    }

    fn store<A: Serialize>(
        &mut self,
        misses: &[usize],
        keys: &[String],
        answers: &[A],
    ) -> Result<()> {
        let tx = self.db.transaction()?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT OR REPLACE INTO answers (namespace, key, value) VALUES (?1, ?2, ?3)",
            )?;
            for (&i, a) in misses.iter().zip(answers) {
                ins.execute(params![self.namespace, keys[i], serde_json::to_string(a)?])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

impl<B: Backend> Backend for CachedBackend<B> {
    fn describe(&self) -> serde_json::Value {
        let mut d = self.inner.describe();
        if let Some(o) = d.as_object_mut() {
            o.insert(
                "cache".into(),
                serde_json::json!(self.path.display().to_string()),
            );
        }
        d
    }

    fn loglikelihood(
        &mut self,
        reqs: &[LoglikelihoodRequest],
        progress: &dyn Fn(usize),
    ) -> Result<Vec<Loglikelihood>> {
        self.cached("loglikelihood", reqs, progress, |b, idx, p| {
            let sub: Vec<LoglikelihoodRequest> = idx.iter().map(|&i| reqs[i].clone()).collect();
            b.loglikelihood(&sub, p)
        })
    }

    fn generate_until(
        &mut self,
        reqs: &[GenerateRequest],
        progress: &dyn Fn(usize),
    ) -> Result<Vec<String>> {
        self.cached("generate_until", reqs, progress, |b, idx, p| {
            let sub: Vec<GenerateRequest> = idx.iter().map(|&i| reqs[i].clone()).collect();
            b.generate_until(&sub, p)
        })
    }

    fn loglikelihood_rolling(
        &mut self,
        texts: &[String],
        progress: &dyn Fn(usize),
    ) -> Result<Vec<f64>> {
        self.cached("loglikelihood_rolling", texts, progress, |b, idx, p| {
            let sub: Vec<String> = idx.iter().map(|&i| texts[i].clone()).collect();
            b.loglikelihood_rolling(&sub, p)
        })
    }

    fn apply_chat_template(&self, messages: &[ChatMessage]) -> Result<String> {
        self.inner.apply_chat_template(messages)
    }

    fn cache_stats(&self) -> Option<CacheStats> {
        Some(self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Answers by string length; counts what it was asked.
    struct Counting {
        asked: RefCell<Vec<String>>,
        dtype: &'static str,
    }

    impl Backend for Counting {
        fn describe(&self) -> serde_json::Value {
            serde_json::json!({"backend": "test", "dtype": self.dtype, "batch_size": 3})
        }
        fn loglikelihood(
            &mut self,
            reqs: &[LoglikelihoodRequest],
            progress: &dyn Fn(usize),
        ) -> Result<Vec<Loglikelihood>> {
            progress(reqs.len());
            Ok(reqs
                .iter()
                .map(|r| {
                    self.asked.borrow_mut().push(r.continuation.clone());
                    Loglikelihood {
                        logprob: -(r.continuation.len() as f64) - 0.1,
                        is_greedy: r.continuation.len() == 1,
                    }
                })
                .collect())
        }
        fn generate_until(
            &mut self,
            reqs: &[GenerateRequest],
            _: &dyn Fn(usize),
        ) -> Result<Vec<String>> {
            Ok(reqs
                .iter()
                .map(|r| {
                    self.asked.borrow_mut().push(r.context.clone());
                    format!("{}!{}", r.context, r.max_gen_toks)
                })
                .collect())
        }
        fn apply_chat_template(&self, _: &[ChatMessage]) -> Result<String> {
            anyhow::bail!("none")
        }
    }

    fn model(weights: &str) -> ModelInfo {
        ModelInfo {
            name: "m".into(),
            path: "/m".into(),
            scheme: "bf16".into(),
            config_sha256: "c".into(),
            quantization_config: None,
            weights_sha256: Some(weights.into()),
        }
    }

    fn ll(c: &str) -> LoglikelihoodRequest {
        LoglikelihoodRequest {
            context: "ctx".into(),
            continuation: c.into(),
        }
    }

    fn backend(dtype: &'static str) -> Counting {
        Counting {
            asked: RefCell::new(vec![]),
            dtype,
        }
    }

    #[test]
    fn hits_skip_the_backend_and_keep_request_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = CachedBackend::open(backend("f32"), dir.path(), &model("w")).unwrap();
        let first = a.loglikelihood(&[ll("a"), ll("bb")], &|_| {}).unwrap();
        assert_eq!(a.stats(), CacheStats { hits: 0, misses: 2 });
        let done = std::cell::Cell::new(0);
        let second = a
            .loglikelihood(&[ll("ccc"), ll("bb"), ll("a")], &|n| {
                done.set(done.get() + n)
            })
            .unwrap();
        assert_eq!(done.get(), 3, "progress counts hits and misses");
        assert_eq!(second[1], first[1]);
        assert_eq!(second[2], first[0]);
        assert_eq!(second[0].logprob, -3.1);
        assert_eq!(a.stats(), CacheStats { hits: 2, misses: 3 });
        assert_eq!(*a.inner.asked.borrow(), ["a", "bb", "ccc"]);

        // A new process (new connection) on the same file; the batch size is not in the key.
        drop(a);
        let mut b = CachedBackend::open(backend("f32"), dir.path(), &model("w")).unwrap();
        let g = GenerateRequest {
            context: "p".into(),
            until: vec!["\n".into()],
            max_gen_toks: 4,
            sampling: None,
        };
        b.loglikelihood(&[ll("a"), ll("ccc")], &|_| {}).unwrap();
        b.generate_until(std::slice::from_ref(&g), &|_| {}).unwrap();
        let mut g2 = g.clone();
        g2.max_gen_toks = 5;
        let gens = b.generate_until(&[g.clone(), g2], &|_| {}).unwrap();
        assert_eq!(gens, ["p!4", "p!5"]);
        assert_eq!(b.stats(), CacheStats { hits: 3, misses: 2 });
        assert_eq!(*b.inner.asked.borrow(), ["p", "p"]);
    }

    #[test]
    fn other_weights_or_dtype_do_not_share_answers() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = CachedBackend::open(backend("f32"), dir.path(), &model("w1")).unwrap();
        a.loglikelihood(&[ll("a")], &|_| {}).unwrap();
        let mut b = CachedBackend::open(backend("f32"), dir.path(), &model("w2")).unwrap();
        b.loglikelihood(&[ll("a")], &|_| {}).unwrap();
        let mut c = CachedBackend::open(backend("bf16"), dir.path(), &model("w1")).unwrap();
        c.loglikelihood(&[ll("a")], &|_| {}).unwrap();
        assert_eq!(b.stats().hits + c.stats().hits, 0);
        let mut d = CachedBackend::open(backend("f32"), dir.path(), &model("w1")).unwrap();
        d.loglikelihood(&[ll("a")], &|_| {}).unwrap();
        assert_eq!(d.stats().hits, 1);
    }

    #[test]
    fn a_cache_that_fails_is_bypassed_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = CachedBackend::open(backend("f32"), dir.path(), &model("w")).unwrap();
        a.loglikelihood(&[ll("a")], &|_| {}).unwrap();
        // Another connection drops the table under it: reads and writes now fail.
        let other = Connection::open(dir.path().join(CACHE_FILE)).unwrap();
        other.execute_batch("DROP TABLE answers;").unwrap();
        let r = a.loglikelihood(&[ll("a"), ll("bb")], &|_| {}).unwrap();
        assert_eq!(r[0].logprob, -1.1);
        assert!(a.broken);
        let r = a.loglikelihood(&[ll("ccc")], &|_| {}).unwrap();
        assert_eq!(r[0].logprob, -3.1);
        assert_eq!(a.stats(), CacheStats { hits: 0, misses: 4 });
    }

    #[test]
    fn a_file_that_is_not_a_cache_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CACHE_FILE),
            b"not sqlite at all, just text........",
        )
        .unwrap();
        let e = CachedBackend::open(backend("f32"), dir.path(), &model("w"))
            .err()
            .unwrap();
        let msg = format!("{e:#}");
        assert!(msg.contains("requests.sqlite"), "{msg}");
    }
}
