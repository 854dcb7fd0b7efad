//! The HTML report renders in headless Chromium: a screenshot of `report.html` is not blank, shows
//! text, and shows the inline SVG charts' bars (the first series colour). Chromium is
//! `$QUANTLAB_CHROMIUM`, else `chromium` / `chromium-browser` / `google-chrome` on PATH; when none
//! is installed the test fails with what to install (`apt-get install chromium`).

mod common;

use common::run;
use quantlab_reports::write_report;
use std::path::PathBuf;
use std::process::Command;

fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("QUANTLAB_CHROMIUM") {
        return PathBuf::from(p);
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("which").arg(name).output() {
            if out.status.success() {
                return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            }
        }
    }
    panic!("no headless Chromium found: `apt-get install chromium` or set QUANTLAB_CHROMIUM");
}

#[test]
fn report_html_renders_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let runs: Vec<PathBuf> = [
        run(
            "b",
            "m",
            "bf16",
            &[
                ("arc_easy", "acc_norm", 0.60, 0.02),
                ("hellaswag", "acc_norm", 0.45, 0.01),
            ],
        ),
        run(
            "q",
            "m-w4",
            "w4a16",
            &[
                ("arc_easy", "acc_norm", 0.57, 0.02),
                ("hellaswag", "acc_norm", 0.44, 0.01),
            ],
        ),
    ]
    .iter()
    .map(|r| {
        let d = dir.path().join(&r.run_id);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("results.json"), serde_json::to_string(r).unwrap()).unwrap();
        d
    })
    .collect();
    let out = dir.path().join("report");
    write_report(&runs, None, Some(&out)).unwrap();
    let html = out.join("report.html");
    let shot = dir.path().join("shot.png");
    let status = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1200,1400",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(
        shot.is_file(),
        "no screenshot; chromium said: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let img = image::open(&shot).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (1200, 1400));
    let n = (img.width() * img.height()) as f64;
    let non_white = img.pixels().filter(|p| p.0 != [255, 255, 255]).count() as f64;
    // Bars of the first series are RGB(31, 119, 180) (render::PALETTE[0]).
    let bar = img
        .pixels()
        .filter(|p| {
            let [r, g, b] = p.0;
            r.abs_diff(31) < 8 && g.abs_diff(119) < 8 && b.abs_diff(180) < 8
        })
        .count();
    // Dark pixels: the text of the tables.
    let dark = img.pixels().filter(|p| p.0.iter().all(|&c| c < 80)).count();
    assert!(
        non_white / n > 0.02,
        "screenshot nearly blank: {non_white} of {n} pixels not white"
    );
    assert!(dark > 2_000, "no text visible ({dark} dark pixels)");
    assert!(
        bar > 2_000,
        "no chart bars visible ({bar} bar-coloured pixels)"
    );
}
