//! `quantlab report RUN...`: load run records, build the recovery table, write the renderings.

use crate::{load_run, recovery_table};
use anyhow::{Context, Result};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Load the runs (folders or `results.json` files), build the recovery table against `baseline`
/// (see [`recovery_table`](crate::recovery_table)) and, when `out_dir` is given, write
/// `report.md`, `report.csv` and `report.json` there (each atomically). Returns the Markdown.
pub fn write_report(
    runs: &[PathBuf],
    baseline: Option<&str>,
    out_dir: Option<&Path>,
) -> Result<String> {
    let records = runs
        .iter()
        .map(|p| load_run(p))
        .collect::<Result<Vec<_>>>()?;
    let table = recovery_table(&records, baseline)?;
    let markdown = table.to_markdown();
    if let Some(dir) = out_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create report folder {}", dir.display()))?;
        write_atomic(&dir.join("report.md"), |f| {
            f.write_all(markdown.as_bytes())?;
            Ok(())
        })?;
        table.write_csv(&dir.join("report.csv"))?;
        let json = serde_json::to_string_pretty(&table.to_json())?;
        write_atomic(&dir.join("report.json"), |f| {
            f.write_all(json.as_bytes())?;
            f.write_all(b"\n")?;
            Ok(())
        })?;
    }
    Ok(markdown)
}

/// Write `path` through a temporary file in the same folder, then rename it over `path`, so a
/// reader never sees a half-written file.
pub(crate) fn write_atomic(path: &Path, write: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".quantlab-report-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    write(tmp.as_file_mut()).with_context(|| format!("cannot write {}", path.display()))?;
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
