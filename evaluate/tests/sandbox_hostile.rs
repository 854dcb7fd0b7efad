//! The hostile corpus of issue 5: each program must be contained with the expected status, and
//! the host must be unharmed afterwards (files outside the work dir intact, nothing left running,
//! no secret or network reached).

use quantlab_evaluate::sandbox::{Job, Limits, Sandbox, Status};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

struct Case {
    name: &'static str,
    program: String,
    limits: Limits,
    want: Status,
    /// Text the reason must contain.
    reason: &'static str,
}

fn limits() -> Limits {
    Limits {
        wall: Duration::from_secs(3),
        cpu_s: 3,
        address_space: 1 << 30,
        file_size: 16 << 20,
        nproc: 16,
        output_cap: 4096,
        ..Limits::default()
    }
}

/// Processes whose working directory is under `root` (i.e. left over from a run there).
fn processes_under(root: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cwd) = std::fs::read_link(e.path().join("cwd")) {
            if cwd.starts_with(root) {
                v.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    v
}

#[test]
fn hostile_corpus_is_contained() {
    let sb = Sandbox::new().expect("sandbox");
    eprintln!("isolation: {:?}", sb.isolation());
    let host = tempfile::tempdir().unwrap();
    // A readable "secret" outside the work dir (mode 0644 in a world-traversable folder).
    let host_dir = host.path().to_path_buf();
    std::fs::set_permissions(
        &host_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let secret = host_dir.join("secret.txt");
    std::fs::write(&secret, "TOPSECRET-7f3a").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let victim = host_dir.join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("keep.txt"), "keep").unwrap();
    let escape = host_dir.join("escaped.txt");
    let tmp_escape = PathBuf::from(format!("/tmp/quantlab-escape-{}", std::process::id()));
    let pwned = PathBuf::from(format!("/tmp/quantlab-pwned-{}", std::process::id()));
    // SAFETY: set before any sandbox thread starts; read only by the spawned programs.
    unsafe { std::env::set_var("QUANTLAB_TEST_SECRET", "ENV-SECRET-91b2") };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());

    let cases = vec![
        Case {
            name: "infinite loop",
            program: "while True:\n    pass\n".into(),
            limits: Limits { wall: Duration::from_secs(1), ..limits() },
            want: Status::Timeout,
            reason: "wall-clock",
        },
        Case {
            name: "fork bomb",
            program: "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
                .into(),
            limits: Limits { wall: Duration::from_secs(2), ..limits() },
            want: Status::Timeout,
            reason: "wall-clock",
        },
        Case {
            name: "memory bomb",
            program: "x = []\nwhile True:\n    x.append(bytearray(64 << 20))\n".into(),
            limits: limits(),
            want: Status::Fail,
            reason: "MemoryError",
        },
        Case {
            name: "10 GB file write",
            program: "with open('big.bin', 'wb') as f:\n    for _ in range(10 * 1024):\n        f.write(b'\\0' * (1 << 20))\n"
                .into(),
            limits: limits(),
            want: Status::Fail,
            reason: "File too large",
        },
        Case {
            name: "writes outside the work dir",
            program: format!(
                "import sys\nlast = None\nfor p in [{:?}, {:?}, '../escaped.txt', '/etc/quantlab-escape']:\n    try:\n        open(p, 'w').write('x')\n        print('ESCAPED', p)\n        sys.exit(0)\n    except OSError as e:\n        last = e\nraise last\n",
                escape.display().to_string(),
                tmp_escape.display().to_string()
            ),
            limits: limits(),
            want: Status::Fail,
            reason: "PermissionError",
        },
        Case {
            name: "reading $HOME secrets",
            program: format!(
                "import os\nfor p in [{:?}, {:?}, os.path.join({:?}, '.ssh', 'id_rsa')]:\n    try:\n        print(open(p).read())\n    except FileNotFoundError:\n        pass\n",
                secret.display().to_string(),
                format!("{home}/.bashrc"),
                home
            ),
            limits: limits(),
            want: Status::Fail,
            reason: "PermissionError",
        },
        Case {
            name: "reading environment variables",
            program: "import os\nprint(sorted(os.environ.items()))\n".into(),
            limits: limits(),
            want: Status::Pass,
            reason: "",
        },
        Case {
            name: "opening a socket",
            program: format!(
                "import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('CONNECTED')\n"
            ),
            limits: limits(),
            want: Status::Fail,
            reason: "Errno",
        },
        Case {
            name: "killing the parent",
            program: "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nprint('KILLED')\n".into(),
            limits: limits(),
            want: Status::Fail,
            reason: "PermissionError",
        },
        Case {
            name: "os.system",
            program: format!(
                "import os\nrc = os.system('touch {} && echo ran')\nassert rc == 0, 'shell command failed'\n",
                pwned.display()
            ),
            limits: limits(),
            want: Status::Fail,
            reason: "shell command failed",
        },
        Case {
            name: "deleting files",
            program: format!("import shutil\nshutil.rmtree({:?})\n", victim.display().to_string()),
            limits: limits(),
            want: Status::Fail,
            reason: "PermissionError",
        },
        Case {
            name: "ctypes segfault",
            program: "import ctypes\nctypes.string_at(0)\n".into(),
            limits: limits(),
            want: Status::Error,
            reason: "SIGSEGV",
        },
        Case {
            name: "huge output",
            program: "import sys\nwhile True:\n    sys.stdout.write('x' * (1 << 20))\n".into(),
            limits: limits(),
            want: Status::Fail,
            reason: "File too large",
        },
    ];
    let jobs: Vec<Job> = cases
        .iter()
        .map(|c| Job {
            program: c.program.clone(),
            limits: c.limits.clone(),
            ..Job::default()
        })
        .collect();
    let outcomes = sb.run_all(&jobs);
    let mut bad = Vec::new();
    for (c, o) in cases.iter().zip(outcomes) {
        let o = o.unwrap_or_else(|e| panic!("{}: host error {e:#}", c.name));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        eprintln!(
            "{:32} {:8} {:.2}s  {}",
            c.name,
            o.status.as_str(),
            o.wall_s,
            o.reason
        );
        if o.status != c.want || !o.reason.contains(c.reason) {
            bad.push(format!(
                "{}: got {:?} ({}), want {:?} ({}); stderr: {}",
                c.name,
                o.status,
                o.reason,
                c.want,
                c.reason,
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        for leak in ["TOPSECRET", "ENV-SECRET", "ESCAPED", "CONNECTED", "KILLED"] {
            assert!(
                !out.contains(leak),
                "{}: output contains {leak}: {out}",
                c.name
            );
        }
        assert!(
            !o.root.exists(),
            "{}: {} not removed",
            c.name,
            o.root.display()
        );
        assert!(
            processes_under(&o.root).is_empty(),
            "{}: processes left: {:?}",
            c.name,
            processes_under(&o.root)
        );
        if c.name == "reading environment variables" {
            let keys: Vec<&str> = ["HOME", "LANG", "PATH", "PYTHONHASHSEED", "TMPDIR"].to_vec();
            for k in &keys {
                assert!(out.contains(&format!("('{k}', ")), "env lacks {k}: {out}");
            }
            assert_eq!(
                out.matches("', '").count(),
                keys.len(),
                "extra env vars: {out}"
            );
        }
        if c.name == "huge output" {
            assert_eq!(o.stdout.len(), 4096);
            assert!(o.output_truncated);
        }
    }
    assert!(
        bad.is_empty(),
        "not contained as expected:\n{}",
        bad.join("\n")
    );
    // The host is unharmed.
    assert_eq!(
        std::fs::read_to_string(victim.join("keep.txt")).unwrap(),
        "keep"
    );
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "TOPSECRET-7f3a");
    assert!(!escape.exists() && !tmp_escape.exists() && !pwned.exists());
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the sandbox reached a host socket"
    );
}

#[test]
fn passing_failing_and_collected_files() {
    let sb = Sandbox::new().expect("sandbox");
    let jobs = vec![
        Job {
            program: "import json\nd = json.load(open('in.json'))\nopen('out.txt', 'w').write(str(sum(d)))\nprint('done')\n".into(),
            files: vec![("in.json".into(), b"[1, 2, 3]".to_vec())],
            collect: vec!["out.txt".into(), "missing.txt".into()],
            limits: limits(),
            ..Job::default()
        },
        Job {
            program: "assert 1 + 1 == 3, 'arithmetic'\n".into(),
            limits: limits(),
            ..Job::default()
        },
    ];
    let o = sb.run_all(&jobs);
    let a = o[0].as_ref().unwrap();
    assert_eq!(
        a.status,
        Status::Pass,
        "{}",
        String::from_utf8_lossy(&a.stderr)
    );
    assert_eq!(a.stdout, b"done\n");
    assert_eq!(
        a.collected.get("out.txt").map(Vec::as_slice),
        Some(&b"6"[..])
    );
    assert!(!a.collected.contains_key("missing.txt"));
    let b = o[1].as_ref().unwrap();
    assert_eq!(b.status, Status::Fail);
    assert_eq!(b.reason, "AssertionError: arithmetic");
    assert_eq!(b.exit_code, Some(1));
}

/// Two sandboxes at once (two test threads here; two quantlab runs in practice) must not share a
/// private uid: the sweep that ends one job kills every process of its uid. CI caught this when
/// the two tests above ran in parallel and each pool handed out the same first uid.
#[test]
fn concurrent_sandboxes_do_not_kill_each_other() {
    let a = Sandbox::new().expect("sandbox");
    let b = Sandbox::new().expect("sandbox");
    let slow = Job {
        program: "import time\ntime.sleep(2.0)\nprint('alive')\n".into(),
        limits: limits(),
        ..Job::default()
    };
    let quick: Vec<Job> = (0..12)
        .map(|i| Job {
            program: format!("print({i})\n"),
            limits: limits(),
            ..Job::default()
        })
        .collect();
    let (slow_out, quick_out) = std::thread::scope(|s| {
        let h = s.spawn(|| a.run(&slow));
        std::thread::sleep(Duration::from_millis(300));
        let q: Vec<_> = quick.iter().map(|j| b.run(j)).collect();
        (h.join().unwrap(), q)
    });
    let o = slow_out.unwrap();
    assert_eq!(
        (o.status, o.stdout.as_slice()),
        (Status::Pass, &b"alive\n"[..]),
        "{}",
        o.reason
    );
    for (i, q) in quick_out.into_iter().enumerate() {
        let q = q.unwrap();
        assert_eq!(q.status, Status::Pass, "{}", q.reason);
        assert_eq!(q.stdout, format!("{i}\n").into_bytes());
    }
}

/// Files linked into the work folder ([`Job::links`]) can be read but not changed (as root the
/// link is to a sealed root-owned file; otherwise the program gets a copy), and kept files
/// ([`Job::keep`]) come out sealed, with the program gone.
#[test]
fn linked_files_stay_intact_and_kept_files_come_out_sealed() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new().expect("sandbox");
    let store = tempfile::tempdir_in(sb.tmp_root()).unwrap();
    let shared = store.path().join("shared.txt");
    std::fs::write(&shared, "SHARED").unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o444)).unwrap();
    let program = r#"
import os
print(open('shared.txt').read())
for attempt in (lambda: open('shared.txt', 'w').write('X'),
                lambda: os.chmod('shared.txt', 0o666),
                lambda: open('shared.txt', 'a').write('X')):
    try:
        attempt()
        print('CHANGED')
    except OSError:
        pass
open('out.bin', 'wb').write(b'kept')
"#;
    let kept = store.path().join("out.bin");
    let job = Job {
        program: program.into(),
        links: vec![("shared.txt".into(), shared.clone())],
        keep: vec![
            ("out.bin".into(), kept.clone()),
            ("missing.bin".into(), store.path().join("missing.bin")),
        ],
        limits: limits(),
        ..Job::default()
    };
    let o = sb.run(&job).unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        o.status,
        Status::Pass,
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.starts_with("SHARED"), "{out}");
    if sb.isolation().private_uid {
        assert!(!out.contains("CHANGED"), "{out}");
    }
    assert_eq!(std::fs::read_to_string(&shared).unwrap(), "SHARED");
    assert_eq!(
        std::fs::metadata(&shared).unwrap().permissions().mode() & 0o777,
        0o444
    );
    assert_eq!(o.kept, vec!["out.bin".to_string()]);
    assert_eq!(std::fs::read(&kept).unwrap(), b"kept");
    let meta = std::fs::metadata(&kept).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o444);
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        nix::unistd::geteuid().as_raw()
    );
    assert!(!store.path().join("missing.bin").exists());
    assert!(!o.root.exists());
}
