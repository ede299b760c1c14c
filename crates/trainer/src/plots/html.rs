//! `index.html`: the run's summary table, its pruning report and every plot, as one static page
//! (no scripts, no external files beyond the PNGs beside it).

use std::fmt::Write as _;
use std::path::Path;

use report::{PruningReport, Summary};

use super::PlotError;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |a| format!("{:.2}%", a * 100.0))
}

fn joined(widths: &[usize]) -> String {
    widths
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("-")
}

/// Writes `dir/index.html` from the run's summary, its pruning report and the plots written.
pub fn write_index(
    dir: &Path,
    summary: &Summary,
    pruning: Option<&PruningReport>,
    plots: &[(String, String)],
) -> Result<(), PlotError> {
    let mut h = head(summary);
    let finished = summary.finished();
    h.push_str("<h2>Final metrics</h2>\n<table><tr><th>split</th><th>samples</th><th>loss</th><th>accuracy</th></tr>\n");
    if let Some(f) = finished {
        for split in ["train", "valid", "test"] {
            if let Some(e) = f.final_evals.get(split) {
                let _ = writeln!(
                    h,
                    "<tr><td>{split}</td><td>{}</td><td>{:.5}</td><td>{}</td></tr>",
                    e.n,
                    e.loss,
                    pct(e.accuracy)
                );
            }
        }
    }
    h.push_str("</table>\n");
    if let Some(p) = pruning {
        h.push_str(&pruning_section(p, finished.map(|f| &f.final_evals)));
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

/// The page's head, title and one line about the run.
fn head(summary: &Summary) -> String {
    let mut h = String::new();
    // The config's file name: its full path (in summary.json) is noise in a heading.
    let config = Path::new(&summary.config)
        .file_name()
        .map_or(summary.config.clone(), |n| n.to_string_lossy().into_owned());
    let title = format!("{config} — {} on {}", summary.dataset, summary.backend);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>\
body{{font-family:sans-serif;margin:2em;max-width:1300px;color:#222}}\
table{{border-collapse:collapse;margin:0.5em 0 1.5em}}td,th{{border:1px solid #bbb;padding:4px 10px;text-align:right}}\
th{{background:#eee}}td:first-child,th:first-child{{text-align:left}}figure{{margin:1em 0 2em}}\
img{{max-width:100%;border:1px solid #ddd}}figcaption{{color:#555;margin-top:0.3em}}</style></head><body>\n<h1>{t}</h1>\n",
        t = esc(&title)
    );
    let epochs = summary
        .finished()
        .map_or("no".to_string(), |f| f.epochs.to_string());
    let _ = writeln!(
        h,
        "<p>Network {} ({} parameters), seed {}, {epochs} epochs in the last training phase, {:.1} s in all, status {}.</p>",
        joined(&summary.widths),
        summary.parameters,
        summary.seed,
        summary.wall_time_s(),
        summary.status()
    );
    h
}

/// Per-layer counts, storage, what pruning cost, lottery levels and warnings.
fn pruning_section(p: &PruningReport, final_evals: Option<&report::Evals>) -> String {
    let mut h = String::new();
    let _ = writeln!(h, "<h2>Pruning ({})</h2>", p.mode_name());
    h.push_str("<table><tr><th>layer</th><th>shape [out, in]</th><th>kept</th><th>sparsity</th><th>dead units</th></tr>\n");
    for l in &p.layers {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}×{}</td><td>{} / {}</td><td>{:.2}%</td><td>{}</td></tr>",
            esc(&l.name),
            l.shape_out_in[0],
            l.shape_out_in[1],
            l.kept,
            l.weights,
            l.sparsity * 100.0,
            l.dead_units
        );
    }
    let t = &p.total;
    let _ = writeln!(
        h,
        "<tr><th>total</th><th></th><th>{} / {}</th><th>{:.2}%</th><th></th></tr></table>",
        t.kept,
        t.weights,
        t.sparsity * 100.0
    );
    let kib = |bytes: usize| bytes as f64 / 1024.0;
    let _ = writeln!(
        h,
        "<table><tr><th>storage</th><th>KiB</th></tr><tr><td>dense float32</td><td>{:.1}</td></tr>\
<tr><td>CSR (values + indices)</td><td>{:.1}</td></tr><tr><td>bitmask + values</td><td>{:.1}</td></tr>\
<tr><td>compacted network {}</td><td>{:.1}</td></tr></table>",
        kib(p.sizes.dense_bytes),
        kib(p.sizes.csr_bytes),
        kib(p.sizes.bitmask_bytes),
        joined(&p.compact.widths),
        kib(p.sizes.compact_bytes)
    );
    let _ = writeln!(
        h,
        "<p>Compression {:.2}×, theoretical speedup {:.2}× (multiply-adds of nonzero weights).</p>",
        t.compression_ratio, t.theoretical_speedup
    );
    // What pruning cost, in the run's own words: the accuracy right before pruning against
    // the final one (after fine-tuning, if any), on the split the summary leads with.
    if let Some((split, before)) = p.before_pruning().and_then(|b| b.reported()) {
        let _ = writeln!(
            h,
            "<p>{split} accuracy before pruning {}, at the end {}.</p>",
            pct(before.accuracy),
            pct(final_evals.and_then(|f| f.accuracy(split)))
        );
    }
    if let Some(levels) = p.levels() {
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
    for w in &p.warnings {
        let _ = writeln!(h, "<p>Warning: {}</p>", esc(w));
    }
    h
}
