//! Run one untrusted Python program under `python3`, contained (issue 5: generated code is hostile
//! until proven otherwise).
//!
//! Each [`Job`] gets, in this order (the child's setup between `fork` and `exec`):
//! - a fresh temporary root `quantlab-sbx-XXXXXX/` (mode 0711) holding the working directory
//!   `work/` (the program's cwd and `$HOME`, the only place it may write) and the capture files
//!   `stdout`/`stderr`; the whole root is removed afterwards. Large read-only inputs shared by many
//!   jobs ([`Job::links`]) are hard links to sealed root-owned files (0444) when the program runs
//!   under a private uid, copies otherwise; outputs too big to read into memory
//!   ([`Job::keep`]) are moved out and sealed once the program's processes are gone;
//! - its own process group (`setpgid(0, 0)`), killed as a whole with `SIGKILL` when the program
//!   ends or its wall-clock limit passes;
//! - when quantlab runs as root: a private unprivileged uid (one per concurrent job, from
//!   [`SLOT_UID_BASE`], leased with an `flock` under `/tmp/quantlab-sandbox-uids/` so that two
//!   sandboxes, even in different processes, never hold the same uid) with no supplementary groups, so the program owns nothing outside `work/`,
//!   cannot signal quantlab, and `RLIMIT_NPROC` applies; after the run every process of that uid is
//!   killed (`kill(-1, SIGKILL)` from a helper holding that uid), which also reaches processes that
//!   left the group with `setsid`;
//! - no network: a new user + network namespace (`unshare(CLONE_NEWUSER | CLONE_NEWNET)`: only a
//!   loopback interface that is down). Where the kernel refuses namespaces, a seccomp filter
//!   (crate `seccompiler`) makes `socket(2)` fail with `EACCES` for every family but `AF_UNIX`.
//!   Which one is in force is [`Isolation::network`], probed once in [`Sandbox::new`];
//! - Landlock (crate `landlock`, best effort for the running kernel): read/execute only under the
//!   interpreter's directories (`/usr`, `/lib*`, `/bin`, `/etc`, its prefix), full access only
//!   under `work/`, `/dev/null` writable; TCP bind/connect denied (ABI ≥ 4); signals and abstract
//!   unix sockets scoped to the sandbox (ABI ≥ 6). So `$HOME`, other users' files and quantlab's
//!   process are out of reach even without the uid change;
//! - rlimits ([`Limits`]): address space, CPU seconds, file size (also caps stdout/stderr, which go
//!   to files), process count, open files, no core dumps;
//! - a scrubbed environment (`PATH`, `HOME`, `TMPDIR`, `LANG`, `PYTHONHASHSEED=0` only) and
//!   `python3 -I -B` (isolated mode: no `PYTHON*` variables, no user site, no bytecode writes).
//!
//! The verdict is [`Status`]: `Pass` (exit 0), `Fail` (non-zero exit, e.g. an uncaught
//! exception), `Timeout` (wall-clock or CPU limit), `Error` (killed by a signal such as SIGSEGV or
//! SIGXFSZ, or the sandbox could not be set up), with a one-line reason. [`Sandbox::run_all`] runs
//! jobs in parallel on rayon's pool and returns outcomes in job order; outcomes do not depend on
//! scheduling except through wall-clock timing.
//!
//! Not covered: CPU and memory *bandwidth* (a job may slow its neighbours), disk space in `/tmp`
//! beyond the file-size limit per file (a program may create many files in `work/`), and, when not
//! root, processes that call `setsid` and ignore the CPU limit until it kills them.

use anyhow::{bail, Context, Result};
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// First uid handed to sandboxed programs when quantlab runs as root (uids `SLOT_UID_BASE ..
/// SLOT_UID_BASE + 1024`; no account needs to exist for them).
pub const SLOT_UID_BASE: u32 = 3_900_000;
const SLOT_UIDS: u32 = 1024;

/// Resource limits of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Wall-clock limit; the whole process group is killed when it passes.
    pub wall: Duration,
    /// `RLIMIT_CPU` in seconds (SIGXCPU, then SIGKILL one second later).
    pub cpu_s: u64,
    /// `RLIMIT_AS` in bytes (allocations beyond it fail: Python raises `MemoryError`).
    pub address_space: u64,
    /// `RLIMIT_FSIZE` in bytes: the largest file (stdout and stderr included) the program may
    /// write; beyond it the kernel sends SIGXFSZ.
    pub file_size: u64,
    /// `RLIMIT_NPROC`: processes the program may have at once (itself included).
    pub nproc: u64,
    /// `RLIMIT_NOFILE`: open file descriptors.
    pub open_files: u64,
    /// Bytes of stdout and of stderr kept in the [`Outcome`] (the rest is dropped).
    pub output_cap: usize,
}

impl Default for Limits {
    /// 10 s wall clock, 10 s CPU, 4 GiB address space (EvalPlus's default memory limit),
    /// 64 MiB per file, 32 processes, 256 files, 1 MiB of output kept.
    fn default() -> Self {
        Limits {
            wall: Duration::from_secs(10),
            cpu_s: 10,
            address_space: 4 << 30,
            file_size: 64 << 20,
            nproc: 32,
            open_files: 256,
            output_cap: 1 << 20,
        }
    }
}

/// One program to run.
#[derive(Debug, Clone, Default)]
pub struct Job {
    /// Python source, written to `work/main.py` and run as `python3 -I -B main.py`.
    pub program: String,
    /// Extra files put into `work/` before the run (plain names, no `/`).
    pub files: Vec<(String, Vec<u8>)>,
    /// Files read back from `work/` after the run (plain names; missing ones are left out).
    pub collect: Vec<String>,
    /// The limits.
    pub limits: Limits,
    /// Read-only host files put into `work/` (plain name, host path) without copying their bytes
    /// where that is safe: hard-linked when the program runs under a private uid and the file is a
    /// regular file owned by root without write bits (the program may read it, or unlink its own
    /// name for it, but can neither write it nor change its mode); copied otherwise. For large
    /// inputs shared by many jobs (expected outputs), written once per run instead of per job.
    pub links: Vec<(String, PathBuf)>,
    /// Files moved out of `work/` after the run, once the program and its processes are gone
    /// (plain name, destination path), instead of being read into memory like
    /// [`Job::collect`]: renamed when the destination is on the same file system, copied
    /// otherwise. Only a regular file with a single link is kept; it is then owned by quantlab's
    /// user with mode 0444 (so it may serve as a [`Job::links`] file). Missing or odd files are
    /// left out; [`Outcome::kept`] names those kept.
    pub keep: Vec<(String, PathBuf)>,
}

/// Verdict of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Exit status 0.
    Pass,
    /// Non-zero exit status (an uncaught exception, a failed assertion, `sys.exit(1)`).
    Fail,
    /// Wall-clock or CPU-time limit reached.
    Timeout,
    /// Killed by a signal (SIGSEGV, SIGXFSZ, ...) or the sandbox could not be set up.
    Error,
}

impl Status {
    /// `pass`, `fail`, `timeout` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Timeout => "timeout",
            Status::Error => "error",
        }
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The verdict.
    pub status: Status,
    /// One line: why (empty for `Pass`), e.g. `MemoryError`, `killed by SIGSEGV`,
    /// `wall-clock limit of 1.0 s`.
    pub reason: String,
    /// Exit code when the program exited.
    pub exit_code: Option<i32>,
    /// Signal number when it was killed.
    pub signal: Option<i32>,
    /// First [`Limits::output_cap`] bytes of stdout.
    pub stdout: Vec<u8>,
    /// First [`Limits::output_cap`] bytes of stderr.
    pub stderr: Vec<u8>,
    /// Whether stdout or stderr was longer than the cap.
    pub output_truncated: bool,
    /// The [`Job::collect`] files that existed (each at most [`Limits::file_size`] bytes).
    pub collected: BTreeMap<String, Vec<u8>>,
    /// The [`Job::keep`] files that were moved to their destinations (plain names).
    pub kept: Vec<String>,
    /// Wall-clock seconds from spawn to exit (or kill).
    pub wall_s: f64,
    /// The (now removed) temporary root of the run.
    pub root: PathBuf,
}

/// How network access is denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetIsolation {
    /// A new user + network namespace per run.
    Namespace,
    /// seccomp: `socket(2)` fails with EACCES except for `AF_UNIX`.
    Seccomp,
}

/// The containment in force on this machine, recorded in run results.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Isolation {
    /// Network denial mechanism.
    pub network: NetIsolation,
    /// Whether Landlock restricts file access (kernel support).
    pub landlock: bool,
    /// Whether programs run under a private uid (quantlab runs as root).
    pub private_uid: bool,
    /// The interpreter.
    pub python: String,
}

/// Runs [`Job`]s. Create once ([`Sandbox::new`]) and share across threads.
pub struct Sandbox {
    python: PathBuf,
    read_paths: Vec<PathBuf>,
    tmp_root: PathBuf,
    seccomp: seccompiler::BpfProgram,
    isolation: Isolation,
}

/// Folder of per-uid lock files: a uid is in use while some process holds an exclusive `flock`
/// on its file, so concurrent sandboxes (threads, test binaries, separate quantlab runs) never
/// share a uid, and the sweep after one job cannot kill another's processes.
const UID_LOCK_DIR: &str = "/tmp/quantlab-sandbox-uids";

/// A private uid held for one job; released when dropped (the lock dies with the file).
struct UidLease {
    uid: u32,
    _lock: std::fs::File,
}

/// Lease a free uid from `SLOT_UID_BASE .. SLOT_UID_BASE + SLOT_UIDS`.
///
/// Errors: the lock folder cannot be made, is not a root-owned 0700 folder, or every uid is held.
fn lease_uid() -> Result<UidLease> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
    let dir = Path::new(UID_LOCK_DIR);
    if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(dir) {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(e).with_context(|| format!("creating {UID_LOCK_DIR}"));
        }
    }
    let meta = std::fs::symlink_metadata(dir).with_context(|| format!("reading {UID_LOCK_DIR}"))?;
    if !meta.is_dir() || meta.uid() != 0 || meta.permissions().mode() & 0o077 != 0 {
        bail!("{UID_LOCK_DIR} must be a folder owned by root with mode 0700 (it holds the sandbox's uid locks); remove it");
    }
    // Start at a pid-dependent slot so separate processes rarely contend.
    let start = std::process::id() % SLOT_UIDS;
    for i in 0..SLOT_UIDS {
        let uid = SLOT_UID_BASE + (start + i) % SLOT_UIDS;
        let path = dir.join(uid.to_string());
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match f.try_lock() {
            Ok(()) => return Ok(UidLease { uid, _lock: f }),
            Err(std::fs::TryLockError::WouldBlock) => continue,
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }
    bail!("all {SLOT_UIDS} sandbox uids from {SLOT_UID_BASE} are in use (locks in {UID_LOCK_DIR})")
}

/// Environment variable naming the interpreter (default `/usr/bin/python3` when it exists, else
/// `python3` from `PATH`).
pub const PYTHON_ENV: &str = "QUANTLAB_SANDBOX_PYTHON";

fn find_python() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(PYTHON_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let sys = Path::new("/usr/bin/python3");
    if sys.exists() {
        return Ok(sys.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let c = dir.join("python3");
        if c.is_file() {
            return Ok(c);
        }
    }
    bail!("no python3 found for the code sandbox (set ${PYTHON_ENV} to an interpreter)")
}

fn socket_filter() -> Result<seccompiler::BpfProgram> {
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule,
    };
    let not_unix = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Ne,
        libc::AF_UNIX as u64,
    )?;
    let rules = [(libc::SYS_socket, vec![SeccompRule::new(vec![not_unix])?])]
        .into_iter()
        .collect();
    let filter = seccompiler::SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EACCES as u32),
        std::env::consts::ARCH
            .try_into()
            .context("seccomp: unsupported architecture")?,
    )?;
    Ok(filter.try_into()?)
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

impl Sandbox {
    /// Find the interpreter, check which isolation the kernel allows (user + network namespace,
    /// else seccomp) and run a trivial program through the whole sandbox. Errors name what failed
    /// (no interpreter, the interpreter not readable by the private uid, ...).
    pub fn new() -> Result<Sandbox> {
        let python = find_python()?;
        let mut read_paths: Vec<PathBuf> = ["/usr", "/lib", "/lib64", "/lib32", "/bin", "/etc"]
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.exists())
            .collect();
        // The interpreter's own install prefix (e.g. a pyenv or venv outside /usr).
        let out = Command::new(&python)
            .args([
                "-I",
                "-c",
                "import sys; print(sys.base_prefix); print(sys.prefix)",
            ])
            .env_clear()
            .output()
            .with_context(|| format!("running {} for the code sandbox", python.display()))?;
        if !out.status.success() {
            bail!(
                "{} -c ... failed: {}",
                python.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let p = PathBuf::from(line.trim());
            if p.is_dir() && !read_paths.iter().any(|r| p.starts_with(r)) {
                read_paths.push(p);
            }
        }
        if let Ok(real) = std::fs::canonicalize(&python) {
            if let Some(dir) = real.parent() {
                if !read_paths.iter().any(|r| dir.starts_with(r)) {
                    read_paths.push(dir.to_path_buf());
                }
            }
        }
        let landlock = landlock_supported();
        let mut sb = Sandbox {
            python: python.clone(),
            read_paths,
            tmp_root: std::env::temp_dir(),
            seccomp: socket_filter()?,
            isolation: Isolation {
                network: NetIsolation::Namespace,
                landlock,
                private_uid: is_root(),
                python: python.display().to_string(),
            },
        };
        let probe = Job {
            program: "print('ok')\n".to_string(),
            limits: Limits {
                wall: Duration::from_secs(20),
                ..Limits::default()
            },
            ..Job::default()
        };
        let o = sb.run(&probe)?;
        if o.status != Status::Pass || o.stdout != b"ok\n" {
            // Namespaces refused (spawn fails in the child's setup): fall back to seccomp.
            sb.isolation.network = NetIsolation::Seccomp;
            let o2 = sb.run(&probe)?;
            if o2.status != Status::Pass || o2.stdout != b"ok\n" {
                bail!(
                    "the code sandbox cannot run {} (namespace attempt: {}; seccomp attempt: {} {}){}",
                    python.display(),
                    o.reason,
                    o2.reason,
                    String::from_utf8_lossy(&o2.stderr).trim(),
                    if is_root() {
                        format!("; as root the program runs under uid {SLOT_UID_BASE}+, which must be able to read the interpreter (set ${PYTHON_ENV})")
                    } else {
                        String::new()
                    }
                );
            }
        }
        Ok(sb)
    }

    /// The containment in force.
    pub fn isolation(&self) -> &Isolation {
        &self.isolation
    }

    /// The folder holding the temporary roots (files meant for [`Job::links`] and
    /// [`Job::keep`] belong on its file system, where they are linked and renamed, not copied).
    pub fn tmp_root(&self) -> &Path {
        &self.tmp_root
    }

    /// Put temporary roots under `dir` instead of the system temp folder.
    pub fn with_tmp_root(mut self, dir: PathBuf) -> Self {
        self.tmp_root = dir;
        self
    }

    /// Run jobs in parallel on rayon's pool; outcomes in job order. Each item is `Err` only for
    /// host-side failures (the temporary folder could not be made).
    ///
    /// Jobs are started in job order from one shared queue (one worker per rayon thread), so a
    /// caller that puts its longest jobs first gets them spread over the workers instead of
    /// queued behind each other.
    pub fn run_all(&self, jobs: &[Job]) -> Vec<Result<Outcome>> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Mutex;
        let next = AtomicUsize::new(0);
        let slots: Vec<Mutex<Option<Result<Outcome>>>> =
            jobs.iter().map(|_| Mutex::new(None)).collect();
        let workers = rayon::current_num_threads().clamp(1, jobs.len().max(1));
        rayon::scope(|s| {
            for _ in 0..workers {
                s.spawn(|_| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let o = self.run(job);
                    *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(o);
                });
            }
        });
        slots
            .into_iter()
            .map(|m| {
                m.into_inner()
                    .unwrap_or_else(|e| e.into_inner())
                    .unwrap_or_else(|| Err(anyhow::anyhow!("sandbox job not run")))
            })
            .collect()
    }

    /// Run one job (see the module doc for the containment). `Err` only when the host side fails
    /// (temporary folder, capture files); everything the program does is in the [`Outcome`].
    pub fn run(&self, job: &Job) -> Result<Outcome> {
        let root = tempfile::Builder::new()
            .prefix("quantlab-sbx-")
            .tempdir_in(&self.tmp_root)
            .with_context(|| format!("creating a sandbox folder in {}", self.tmp_root.display()))?;
        let lease = if self.isolation.private_uid {
            Some(lease_uid()?)
        } else {
            None
        };
        let uid = lease.as_ref().map(|l| l.uid);
        let res = self.run_in(job, root.path(), uid);
        if let Some(u) = uid {
            sweep_uid(u);
        }
        drop(lease);
        let kept = res
            .as_ref()
            .ok()
            .map(|_| keep_files(&job.keep, &root.path().join("work")));
        let root_path = root.path().to_path_buf();
        if root.close().is_err() {
            // The program may have left unreadable folders; make them removable and retry.
            let _ = Command::new("chmod")
                .args(["-R", "u+rwx"])
                .arg(&root_path)
                .status();
            let _ = std::fs::remove_dir_all(&root_path);
        }
        let mut o = res?;
        o.root = root_path;
        if let Some(k) = kept {
            o.kept = k?;
        }
        Ok(o)
    }

    fn run_in(&self, job: &Job, root: &Path, uid: Option<u32>) -> Result<Outcome> {
        let work = root.join("work");
        std::fs::create_dir(&work).with_context(|| format!("creating {}", work.display()))?;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o711))?;
        std::fs::write(work.join("main.py"), &job.program)?;
        for (name, bytes) in &job.files {
            if name.contains('/') || name.is_empty() || name == ".." {
                bail!("sandbox file name {name:?} must be a plain name");
            }
            std::fs::write(work.join(name), bytes)?;
        }
        if let Some(u) = uid {
            for e in std::fs::read_dir(&work)? {
                std::os::unix::fs::chown(e?.path(), Some(u), Some(u))?;
            }
            std::os::unix::fs::chown(&work, Some(u), Some(u))?;
        }
        // After the chown above, so that linked files stay root's.
        for (name, src) in &job.links {
            if name.contains('/') || name.is_empty() || name == ".." {
                bail!("sandbox file name {name:?} must be a plain name");
            }
            let dst = work.join(name);
            if uid.is_some() && is_sealed(src) && std::fs::hard_link(src, &dst).is_ok() {
                continue;
            }
            std::fs::copy(src, &dst)
                .with_context(|| format!("copying {} into the sandbox", src.display()))?;
            if let Some(u) = uid {
                std::os::unix::fs::chown(&dst, Some(u), Some(u))?;
            }
        }
        let out_path = root.join("stdout");
        let err_path = root.join("stderr");
        let stdout = std::fs::File::create(&out_path)?;
        let stderr = std::fs::File::create(&err_path)?;

        let lim = job.limits.clone();
        let ruleset = if self.isolation.landlock {
            Some(
                landlock_ruleset(&self.read_paths, &work)
                    .context("building the Landlock ruleset")?,
            )
        } else {
            None
        };
        let mut ruleset = ruleset;
        let net = self.isolation.network;
        let seccomp = self.seccomp.clone();

        let mut cmd = Command::new(&self.python);
        cmd.args(["-I", "-B", "main.py"])
            .current_dir(&work)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &work)
            .env("TMPDIR", &work)
            .env("LANG", "C.UTF-8")
            .env("PYTHONHASHSEED", "0")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
        if let Some(u) = uid {
            cmd.uid(u).gid(u);
        }
        // SAFETY: the closure runs in the forked child before exec and only makes system calls
        // (unshare, prctl/seccomp, landlock, setrlimit) on data prepared in the parent.
        unsafe {
            cmd.pre_exec(move || {
                use nix::sched::{unshare, CloneFlags};
                match net {
                    NetIsolation::Namespace => {
                        unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET)
                            .map_err(std::io::Error::from)?;
                    }
                    NetIsolation::Seccomp => {
                        seccompiler::apply_filter(&seccomp)
                            .map_err(|_| std::io::Error::other("seccomp filter"))?;
                    }
                }
                if let Some(rs) = ruleset.take() {
                    rs.restrict_self()
                        .map_err(|_| std::io::Error::other("landlock restrict_self"))?;
                }
                let rl = |r: Resource, v: u64| setrlimit(r, v, v).map_err(std::io::Error::from);
                rl(Resource::RLIMIT_AS, lim.address_space)?;
                setrlimit(Resource::RLIMIT_CPU, lim.cpu_s, lim.cpu_s + 1)
                    .map_err(std::io::Error::from)?;
                rl(Resource::RLIMIT_FSIZE, lim.file_size)?;
                rl(Resource::RLIMIT_NPROC, lim.nproc)?;
                rl(Resource::RLIMIT_NOFILE, lim.open_files)?;
                rl(Resource::RLIMIT_CORE, 0)?;
                Ok(())
            });
        }
        let start = Instant::now();
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return Ok(Outcome {
                    status: Status::Error,
                    reason: format!("sandbox setup failed: {e}"),
                    exit_code: None,
                    signal: None,
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                    output_truncated: false,
                    collected: BTreeMap::new(),
                    kept: Vec::new(),
                    wall_s: 0.0,
                    root: root.to_path_buf(),
                })
            }
        };
        let pid = Pid::from_raw(child.id() as i32);
        let deadline = start + lim.wall;
        let mut timed_out = false;
        // Block in poll(2) on a pidfd (readable once the program exits) until the deadline;
        // where the kernel lacks pidfds, nap between looks.
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor, closed below.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) } as i32;
        let mut nap = Duration::from_micros(500);
        loop {
            // Look without reaping, so the group id stays ours until the group is killed.
            match waitid(
                Id::Pid(pid),
                WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
            ) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(_) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
            let now = Instant::now();
            if now >= deadline {
                timed_out = true;
                break;
            }
            let left = deadline - now;
            if pidfd >= 0 {
                let mut pfd = libc::pollfd {
                    fd: pidfd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
                // SAFETY: one valid pollfd; EINTR and timeouts just loop.
                unsafe { libc::poll(&mut pfd, 1, ms) };
            } else {
                std::thread::sleep(nap.min(left));
                nap = (nap * 2).min(Duration::from_millis(5));
            }
        }
        if pidfd >= 0 {
            // SAFETY: our descriptor, closed once.
            unsafe { libc::close(pidfd) };
        }
        let wall_s = start.elapsed().as_secs_f64();
        let _ = killpg(pid, Signal::SIGKILL);
        let status = child.wait().context("waiting for the sandboxed program")?;
        let _ = killpg(pid, Signal::SIGKILL);

        let (stdout, t1) = read_capped(&out_path, lim.output_cap);
        let (stderr, t2) = read_capped(&err_path, lim.output_cap);
        let mut collected = BTreeMap::new();
        for name in &job.collect {
            let p = work.join(name);
            // Only regular files (not links the program may have planted).
            if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
                let (bytes, _) = read_capped(&p, lim.file_size as usize);
                collected.insert(name.clone(), bytes);
            }
        }
        let (st, reason) = if timed_out {
            (
                Status::Timeout,
                format!("wall-clock limit of {:.1} s", lim.wall.as_secs_f64()),
            )
        } else if let Some(sig) = status.signal() {
            match Signal::try_from(sig) {
                Ok(Signal::SIGXCPU) => (
                    Status::Timeout,
                    format!("CPU-time limit of {} s (SIGXCPU)", lim.cpu_s),
                ),
                Ok(Signal::SIGXFSZ) => (
                    Status::Error,
                    format!(
                        "file-size limit of {} bytes exceeded (SIGXFSZ)",
                        lim.file_size
                    ),
                ),
                Ok(s) => (Status::Error, format!("killed by {s}")),
                Err(_) => (Status::Error, format!("killed by signal {sig}")),
            }
        } else {
            match status.code() {
                Some(0) => (Status::Pass, String::new()),
                Some(c) => (
                    Status::Fail,
                    last_line(&stderr).unwrap_or_else(|| format!("exit status {c}")),
                ),
                None => (Status::Error, "no exit status".to_string()),
            }
        };
        Ok(Outcome {
            status: st,
            reason,
            exit_code: status.code(),
            signal: status.signal(),
            stdout,
            stderr,
            output_truncated: t1 || t2,
            collected,
            kept: Vec::new(),
            wall_s,
            root: root.to_path_buf(),
        })
    }
}

/// A regular file owned by root without write bits: only root may write it or change its mode,
/// so it is safe to hard-link into a private uid's work folder.
fn is_sealed(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.is_file() && m.uid() == 0 && m.mode() & 0o222 == 0)
}

/// Move the [`Job::keep`] files out of `work` (see there); returns the names kept.
fn keep_files(keep: &[(String, PathBuf)], work: &Path) -> Result<Vec<String>> {
    use std::os::unix::fs::MetadataExt;
    let mut kept = Vec::new();
    for (name, dst) in keep {
        if name.contains('/') || name.is_empty() || name == ".." {
            bail!("sandbox file name {name:?} must be a plain name");
        }
        let src = work.join(name);
        if !std::fs::symlink_metadata(&src).is_ok_and(|m| m.is_file()) {
            continue;
        }
        if std::fs::rename(&src, dst).is_err() {
            // Another file system: copy the bytes into a new file of ours.
            let _ = std::fs::remove_file(dst);
            if std::fs::copy(&src, dst).is_err() {
                let _ = std::fs::remove_file(dst);
                continue;
            }
        }
        // Checked after the move: whatever now lies at `dst` must be one plain file.
        let ok = std::fs::symlink_metadata(dst).is_ok_and(|m| m.is_file() && m.nlink() == 1);
        if !ok {
            let _ = std::fs::remove_file(dst);
            continue;
        }
        std::os::unix::fs::lchown(
            dst,
            Some(nix::unistd::geteuid().as_raw()),
            Some(nix::unistd::getegid().as_raw()),
        )
        .with_context(|| format!("taking ownership of {}", dst.display()))?;
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(0o444))
            .with_context(|| format!("sealing {}", dst.display()))?;
        kept.push(name.clone());
    }
    Ok(kept)
}

fn last_line(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.chars().take(300).collect())
}

fn read_capped(path: &Path, cap: usize) -> (Vec<u8>, bool) {
    let Ok(f) = std::fs::File::open(path) else {
        return (Vec::new(), false);
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut buf = Vec::with_capacity((len as usize).min(cap));
    let _ = f.take(cap as u64).read_to_end(&mut buf);
    (buf, len > cap as u64)
}

/// Kill every process of `uid` (a helper process takes the uid, then `kill(-1, SIGKILL)`, which
/// reaches all processes it may signal, never itself), twice. Only used as root.
///
/// The helper is made with `clone(CLONE_VM | CLONE_VFORK)`, as `posix_spawn` does, not `fork`:
/// copying quantlab's page tables (its heap, the model libraries) cost more than the rest of a
/// short job. It shares quantlab's memory while quantlab's thread waits, runs on its own small
/// stack with every signal blocked, and only makes raw system calls (not libc's `setuid`, which
/// would signal quantlab's other threads).
fn sweep_uid(uid: u32) {
    extern "C" fn helper(arg: *mut libc::c_void) -> libc::c_int {
        let uid = arg as usize as libc::c_long;
        // SAFETY: raw system calls on plain integers; nothing shared is touched.
        unsafe {
            if libc::syscall(libc::SYS_setgid, uid) == 0
                && libc::syscall(libc::SYS_setuid, uid) == 0
            {
                libc::syscall(
                    libc::SYS_kill,
                    -1 as libc::c_long,
                    libc::SIGKILL as libc::c_long,
                );
            }
        }
        0
    }
    const STACK: usize = 64 << 10;
    let mut stack = vec![0u128; STACK / 16];
    // SAFETY: all signals are blocked around the clone (the child inherits the mask and never
    // runs a handler on the shared memory); the child runs `helper` on `stack`, which outlives
    // it because CLONE_VFORK suspends this thread until the child exits; the child is reaped
    // below.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        for _ in 0..2 {
            let top = stack.as_mut_ptr().add(stack.len()) as *mut libc::c_void;
            let pid = libc::clone(
                helper,
                top,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                uid as usize as *mut libc::c_void,
            );
            if pid <= 0 {
                break;
            }
            let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
}

fn landlock_supported() -> bool {
    use landlock::{Access, AccessFs, Compatible, Ruleset, RulesetAttr, ABI};
    Ruleset::default()
        .set_compatibility(landlock::CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(ABI::V1))
        .and_then(|r| r.create())
        .is_ok()
}

fn landlock_ruleset(read_paths: &[PathBuf], work: &Path) -> Result<landlock::RulesetCreated> {
    use landlock::{
        path_beneath_rules, Access, AccessFs, AccessNet, PathBeneath, PathFd, Ruleset, RulesetAttr,
        RulesetCreatedAttr, Scope, ABI,
    };
    let abi = ABI::V6;
    let rs = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))?
        .handle_access(AccessNet::from_all(abi))?
        .scope(Scope::from_all(abi))?
        .create()?
        .add_rules(path_beneath_rules(read_paths, AccessFs::from_read(abi)))?
        .add_rules(path_beneath_rules([work], AccessFs::from_all(abi)))?
        .add_rule(PathBeneath::new(
            PathFd::new("/dev/null")?,
            AccessFs::ReadFile | AccessFs::WriteFile,
        ))?
        .add_rule(PathBeneath::new(
            PathFd::new("/dev/urandom")?,
            AccessFs::ReadFile,
        ))?;
    Ok(rs)
}
