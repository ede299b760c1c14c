//! `index.html`: the run's summary table, its pruning report and every plot, as one static page
//! (no scripts, no external files beyond the PNGs beside it).

use std::fmt::Write as _;
use std::path::Path;

use super::PlotError;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn pct(v: &serde_json::Value) -> String {
    v.as_f64()
        .map_or("–".into(), |a| format!("{:.2}%", a * 100.0))
}

/// Writes `dir/index.html` from `summary.json`, the pruning report and the plots written.
pub fn write_index(
    dir: &Path,
    summary: &serde_json::Value,
    pruning: Option<&serde_json::Value>,
    plots: &[(String, String)],
) -> Result<(), PlotError> {
    let mut h = String::new();
    // The config's file name: its full path (in summary.json) is noise in a heading.
    let config = summary["config"].as_str().unwrap_or("run");
    let config = Path::new(config)
        .file_name()
        .map_or(config.into(), |n| n.to_string_lossy());
    let title = format!(
        "{} — {} on {}",
        config,
        summary["dataset"].as_str().unwrap_or(""),
        summary["backend"].as_str().unwrap_or("")
    );
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>\
body{{font-family:sans-serif;margin:2em;max-width:1300px;color:#222}}\
table{{border-collapse:collapse;margin:0.5em 0 1.5em}}td,th{{border:1px solid #bbb;padding:4px 10px;text-align:right}}\
th{{background:#eee}}td:first-child,th:first-child{{text-align:left}}figure{{margin:1em 0 2em}}\
img{{max-width:100%;border:1px solid #ddd}}figcaption{{color:#555;margin-top:0.3em}}</style></head><body>\n<h1>{t}</h1>\n",
        t = esc(&title)
    );
    let widths: Vec<String> = summary["widths"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| w.to_string())
        .collect();
    let _ = writeln!(
        h,
        "<p>Network {} ({} parameters), seed {}, {} epochs in the last training phase, {:.1} s in all, status {}.</p>",
        widths.join("-"),
        summary["parameters"],
        summary["seed"],
        summary["epochs"],
        summary["wall_time_s"].as_f64().unwrap_or(0.0),
        esc(summary["status"].as_str().unwrap_or("?"))
    );
    h.push_str("<h2>Final metrics</h2>\n<table><tr><th>split</th><th>samples</th><th>loss</th><th>accuracy</th></tr>\n");
    if let Some(m) = summary["final"].as_object() {
        for split in ["train", "valid", "test"] {
            if let Some(e) = m.get(split) {
                let _ = writeln!(
                    h,
                    "<tr><td>{split}</td><td>{}</td><td>{:.5}</td><td>{}</td></tr>",
                    e["n"],
                    e["loss"].as_f64().unwrap_or(f64::NAN),
                    pct(&e["accuracy"])
                );
            }
        }
    }
    h.push_str("</table>\n");
    if let Some(p) = pruning {
        let mode = p["config"]["mode"].as_str().unwrap_or("static");
        let _ = writeln!(h, "<h2>Pruning ({})</h2>", esc(mode));
        h.push_str("<table><tr><th>layer</th><th>shape [out, in]</th><th>kept</th><th>sparsity</th><th>dead units</th></tr>\n");
        for l in p["layers"].as_array().into_iter().flatten() {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}×{}</td><td>{} / {}</td><td>{:.2}%</td><td>{}</td></tr>",
                esc(l["name"].as_str().unwrap_or("")),
                l["shape_out_in"][0],
                l["shape_out_in"][1],
                l["kept"],
                l["weights"],
                l["sparsity"].as_f64().unwrap_or(0.0) * 100.0,
                l["dead_units"]
            );
        }
        let t = &p["total"];
        let _ = writeln!(
            h,
            "<tr><th>total</th><th></th><th>{} / {}</th><th>{:.2}%</th><th></th></tr></table>",
            t["kept"],
            t["weights"],
            t["sparsity"].as_f64().unwrap_or(0.0) * 100.0
        );
        let kib = |k: &str| p["sizes"][k].as_f64().unwrap_or(0.0) / 1024.0;
        let cw: Vec<String> = p["compact"]["widths"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|w| w.to_string())
            .collect();
        let _ = writeln!(
            h,
            "<table><tr><th>storage</th><th>KiB</th></tr><tr><td>dense float32</td><td>{:.1}</td></tr>\
<tr><td>CSR (values + indices)</td><td>{:.1}</td></tr><tr><td>bitmask + values</td><td>{:.1}</td></tr>\
<tr><td>compacted network {}</td><td>{:.1}</td></tr></table>",
            kib("dense_bytes"),
            kib("csr_bytes"),
            kib("bitmask_bytes"),
            cw.join("-"),
            kib("compact_bytes")
        );
        let _ = writeln!(
            h,
            "<p>Compression {:.2}×, theoretical speedup {:.2}× (multiply-adds of nonzero weights).</p>",
            t["compression_ratio"].as_f64().unwrap_or(1.0),
            t["theoretical_speedup"].as_f64().unwrap_or(1.0)
        );
        // What pruning cost, in the run's own words: the accuracy right before pruning against
        // the final one (after fine-tuning, if any), on the split the summary leads with.
        let split = ["test", "valid", "train"]
            .into_iter()
            .find(|k| p["before_pruning"].get(*k).is_some());
        if let Some(split) = split {
            let _ = writeln!(
                h,
                "<p>{split} accuracy before pruning {}, at the end {}.</p>",
                pct(&p["before_pruning"][split]["accuracy"]),
                pct(&summary["final"][split]["accuracy"])
            );
        }
        if let Some(levels) = p["levels"].as_array() {
            let cells = |tag: &str, items: &[String]| -> String {
                items
                    .iter()
                    .map(|c| format!("<{tag}>{}</{tag}>", esc(c)))
                    .collect()
            };
            let titles = crate::lottery::COLUMNS.map(str::to_string);
            let _ = writeln!(
                h,
                "<h3>Lottery levels</h3>\n<table><tr>{}</tr>",
                cells("th", &titles)
            );
            for l in levels {
                let _ = writeln!(h, "<tr>{}</tr>", cells("td", &crate::lottery::row(l)));
            }
            h.push_str("</table>\n");
        }
        for w in p["warnings"].as_array().into_iter().flatten() {
            let _ = writeln!(h, "<p>Warning: {}</p>", esc(w.as_str().unwrap_or("")));
        }
    }
    h.push_str("<h2>Plots</h2>\n");
    for (stem, caption) in plots {
        let _ = writeln!(
            h,
            "<figure><img src=\"{stem}.png\" alt=\"{c}\"><figcaption>{c} (<a href=\"{stem}.svg\">SVG</a>)</figcaption></figure>",
            c = esc(caption)
        );
    }
    h.push_str("</body></html>\n");
    let path = dir.join("index.html");
    crate::atomic::write(&path, h).map_err(|e| PlotError {
        path,
        message: e.to_string(),
    })
}
