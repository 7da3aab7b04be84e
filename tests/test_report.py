"""``p5rec report``: benchmark result files -> Markdown, PNG plots, README section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from p5rec.cli import main
from p5rec.report import (
    END,
    START,
    ReportError,
    load_results,
    plot_results,
    readme_section,
    render_markdown,
    update_readme,
    write_report,
)

PNG = b"\x89PNG\r\n\x1a\n"


def _model(label: str, families: list[str], curve: bool) -> dict:
    return {
        "label": label,
        "families": families,
        "index": "random",
        "parameters": 712345,
        "train_seconds": 312.0,
        "config": {},
        "curve": [
            {"step": 10, "epoch": 1.0, "loss": 2.0, "next_item/ndcg@10": 0.02, "rating/rmse": 1.1},
            {"step": 20, "epoch": 2.0, "loss": 1.5, "next_item/ndcg@10": 0.05, "rating/rmse": 0.9},
        ]
        if curve
        else [],
        "train_curve": [{"step": 5, "loss": 9.0}, {"step": 15, "loss": 4.0}] if curve else [],
    }


def _row(system: str, kind: str, metrics: dict) -> dict:
    return {"system": system, "kind": kind, "metrics": metrics, "seconds": 1.0}


def result(name: str = "tiny-bench") -> dict:
    """Two tasks; a model, an ablation and two baselines; the model loses rating to MF."""
    next_item = {
        "title": "Next item",
        "protocol": "leave-one-out, full ranking",
        "n": 50,
        "headline": "ndcg@10",
        "lower_is_better": [],
        "rows": [
            _row("p5rec multi-task", "model", {"hr@10": 0.4, "ndcg@10": 0.21}),
            _row("p5rec next item only", "ablation", {"hr@10": 0.35, "ndcg@10": 0.2, "mrr": 0.15}),
            _row("SASRec (CE)", "baseline", {"hr@10": 0.45, "ndcg@10": 0.18}),
            _row("popularity", "baseline", {"hr@10": 0.1, "ndcg@10": 0.05}),
        ],
    }
    rating = {
        "title": "Rating",
        "protocol": "held-out ratings",
        "n": 40,
        "headline": "rmse",
        "lower_is_better": ["rmse", "mae"],
        "rows": [
            _row("p5rec multi-task", "model", {"rmse": 0.9512, "mae": 0.7}),
            _row("matrix factorisation", "baseline", {"rmse": 0.9123, "mae": 0.75}),
            _row("global mean", "baseline", {"rmse": 1.1, "mae": 0.9}),
        ],
    }
    return {
        "schema": "p5rec.benchmark/1",
        "benchmark": name,
        "title": "Tiny Bench",
        "dataset": {"path": "data/tiny", "fingerprint": "4ddb01871ba08d18", "source": "synthetic"},
        "split": "test",
        "seed": 42,
        "git_commit": "abcdef0123456789",
        "hardware": {"platform": "Linux-x86_64", "torch": "2.4", "cpu_threads": 2},
        "wall_seconds": 600.0,
        "config": {},
        "models": {
            "multitask": _model("p5rec multi-task", ["next_item", "rating"], curve=True),
            "next_item_only": _model("p5rec next item only", ["next_item"], curve=False),
        },
        "tasks": {"next_item": next_item, "rating": rating},
        "targets": [
            {"task": "next_item", "metric": "ndcg@10", "system": "p5rec multi-task",
             "against": "SASRec (CE)", "relation": ">=", "value": 0.21, "reference": 0.18,
             "met": True},
            {"task": "rating", "metric": "rmse", "system": "p5rec multi-task",
             "against": "matrix factorisation", "relation": "<=", "value": 0.9512,
             "reference": 0.9123, "met": False},
        ],
    }  # fmt: skip


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    d = tmp_path / "results"
    d.mkdir()
    (d / "tiny-bench.json").write_text(json.dumps(result()))
    (d / "demo.json").write_text(json.dumps({"benchmark": "demo", "headline": {}}))
    return d


def _readme(path: Path) -> Path:
    path.write_text(f"# Project\n\nintro\n\n{START}\nold table\n{END}\n\n## Usage\nkept\n")
    return path


def test_load_skips_other_json_and_sorts(results_dir):
    (results_dir / "a-bench.json").write_text(json.dumps(result("a-bench")))
    loaded = load_results(results_dir)
    assert [r["benchmark"] for r in loaded] == ["a-bench", "tiny-bench"]


def test_markdown_bolds_best_values_and_shows_losses():
    md = render_markdown([result()])
    assert "## Tiny Bench" in md
    assert "Dataset `4ddb01871ba08d18` · split test · seed 42 · commit `abcdef0`" in md
    assert "Linux-x86_64, 2 CPU threads" in md and "wall time 10.0 min" in md
    # a benchmark's jobs ran in worker processes: their threads, not the driver's
    pooled = result()
    pooled["hardware"].update(cpu_threads=1, workers=2, threads_per_worker=1)
    assert "Linux-x86_64, 2 worker processes of 1 CPU thread(s)" in render_markdown([pooled])
    assert "leave-one-out, full ranking · n = 50 · headline ndcg@10" in md
    # Higher is better: the model's ndcg@10, the baseline's hr@10, the ablation's mrr.
    assert "| p5rec multi-task | model | 0.4000 | **0.2100** | — |" in md
    assert "| SASRec (CE) | baseline | **0.4500** | 0.1800 | — |" in md
    assert "| p5rec next item only | ablation | 0.3500 | 0.2000 | **0.1500** |" in md
    # Lower is better: the baseline wins rmse (visible, bold), the model wins mae.
    assert "| System | Kind | rmse ↓ | mae ↓ |" in md
    assert "| p5rec multi-task | model | 0.9512 | **0.7000** |" in md
    assert "| matrix factorisation | baseline | **0.9123** | 0.7500 |" in md
    assert "| global mean | baseline | 1.1000 | 0.9000 |" in md
    # Every target is listed, the unmet one with a cross.
    assert "1 of 2 targets met." in md
    assert (
        "| rating | rmse | p5rec multi-task | <= | matrix factorisation | 0.9512 | 0.9123 "
        "| — | ❌ |"
    ) in md
    met = "| next_item | ndcg@10 | p5rec multi-task | >= | SASRec (CE) | 0.2100 | 0.1800 | — | ✅ |"
    assert met in md
    assert "paired bootstrap" not in md  # no intervals, no word on them
    assert "| p5rec multi-task | next_item, rating | random | 712,345 | 5.2 min |" in md
    assert "![" not in md  # no image_dir, no image links


def test_targets_show_their_bootstrap_intervals():
    """A target's interval is its difference's (a share of the reference for "within
    5%"); a target without one shows a dash."""
    r = result()
    r["targets"][0]["interval"] = [0.0123, 0.04567]
    r["targets"][1]["interval"] = None
    r["targets"].append(
        {"task": "next_item", "metric": "ndcg@10", "system": "p5rec multi-task, unseen template",
         "against": "p5rec multi-task", "relation": "within 5%", "value": 0.2,
         "reference": 0.21, "met": True, "interval": [-0.0812, -0.0134]}
    )  # fmt: skip
    md = render_markdown([r])
    assert "| SASRec (CE) | 0.2100 | 0.1800 | +0.0123 to +0.0457 | ✅ |" in md
    assert "| matrix factorisation | 0.9512 | 0.9123 | — | ❌ |" in md
    assert "| p5rec multi-task | 0.2000 | 0.2100 | -8.1% to -1.3% | ✅ |" in md
    assert "over paired bootstrap resamples of the test examples" in md


def test_rows_over_several_seeds_show_their_spread():
    r = result()
    r["seeds"] = 3
    r["tasks"]["next_item"]["rows"][0]["std"] = {"hr@10": 0.02, "ndcg@10": 0.0125}
    md = render_markdown([r])
    assert "seeds 42–44 (mean ± standard deviation)" in md
    assert "| p5rec multi-task | model | 0.4000 ± 0.0200 | **0.2100** ± 0.0125 | — |" in md
    assert "| SASRec (CE) | baseline | **0.4500** | 0.1800 | — |" in md  # one seed: no spread


def test_reused_jobs_and_their_commits_are_named():
    r = result()
    assert "reused" not in render_markdown([r])
    r["job_seconds"] = {"multitask": 300.0, "multitask-seed1": 290.0, "baselines": 20.0}
    r["reused_jobs"] = {"multitask": "0123456789abcdef", "baselines": None}
    md = render_markdown([r])
    assert (
        "wall time 10.0 min for this run's jobs; 2 of 3 jobs reused from earlier runs "
        "(commit `0123456`, an unrecorded commit)"
    ) in md


def test_gpu_name_replaces_platform():
    r = result()
    r["hardware"]["gpu"] = "NVIDIA H100"
    r["git_commit"] = None
    md = render_markdown([r])
    assert "hardware NVIDIA H100 ·" in md and "commit `unknown`" in md


def test_plots_are_pngs_and_embedded(tmp_path):
    r = result()
    paths = plot_results([r], tmp_path)
    assert [p.name for p in paths] == ["tiny-bench-bars.png", "tiny-bench-curves.png"]
    for p in paths:
        assert p.read_bytes()[:8] == PNG and p.stat().st_size > 5000
    assert not list(tmp_path.glob(".tmp-*"))
    md = render_markdown([r], image_dir=tmp_path)
    assert "![Tiny Bench headline metrics](tiny-bench-bars.png)" in md
    assert "![Tiny Bench training curves](tiny-bench-curves.png)" in md


def test_no_curves_no_curve_plot(tmp_path):
    r = result()
    for model in r["models"].values():
        model["curve"], model["train_curve"] = [], []
    (tmp_path / "tiny-bench-curves.png").write_bytes(PNG)  # from an earlier run
    assert [p.name for p in plot_results([r], tmp_path)] == ["tiny-bench-bars.png"]
    assert not (tmp_path / "tiny-bench-curves.png").exists()
    assert "curves.png" not in render_markdown([r], image_dir=tmp_path)


def test_readme_section_and_idempotent_replacement(tmp_path):
    section = readme_section([result()], "eval/results/report/report.md")
    won = "| Next item | ndcg@10 | 0.2100 | 0.1800 (SASRec (CE)) | ✅ 1/1 |"
    assert won in section
    assert ("| Rating | rmse ↓ | 0.9512 | 0.9123 (matrix factorisation) | ❌ 0/1 |") in section
    assert "[Full report](eval/results/report/report.md) · all targets: ❌ 1/2" in section
    assert "![Tiny Bench headline metrics](eval/results/report/tiny-bench-bars.png)" in section
    readme = _readme(tmp_path / "README.md")
    assert update_readme(readme, section) is True
    once = readme.read_text()
    assert "old table" not in once and section.strip() in once
    assert once.startswith("# Project\n\nintro\n\n" + START)
    assert once.endswith(END + "\n\n## Usage\nkept\n")
    assert update_readme(readme, section) is False
    assert readme.read_text() == once


@pytest.mark.parametrize("missing", [START, END])
def test_missing_marker_names_file_and_marker(tmp_path, missing):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Project\n{START}\n{END}\n".replace(missing, ""))
    with pytest.raises(ReportError, match=f"README.md: marker {missing} is missing"):
        update_readme(readme, "x")


def test_missing_key_names_file_and_key(results_dir):
    r = result()
    del r["tasks"]["rating"]["rows"][1]["metrics"]
    (results_dir / "tiny-bench.json").write_text(json.dumps(r))
    with pytest.raises(
        ReportError, match=r"tiny-bench.json: missing key 'tasks.rating.rows\[1\].metrics'"
    ):
        load_results(results_dir)
    del r["targets"]
    (results_dir / "tiny-bench.json").write_text(json.dumps(r))
    with pytest.raises(ReportError, match="tiny-bench.json: missing key 'targets'"):
        load_results(results_dir)


def test_wrong_shape_and_unknown_version_are_errors(results_dir):
    r = result()
    r["tasks"]["next_item"]["rows"] = {"system": "x"}
    (results_dir / "tiny-bench.json").write_text(json.dumps(r))
    with pytest.raises(ReportError, match="tasks.next_item.rows must be a list, got dict"):
        load_results(results_dir)
    r = result()
    r["tasks"]["next_item"]["rows"][0]["kind"] = "oracle"
    (results_dir / "tiny-bench.json").write_text(json.dumps(r))
    with pytest.raises(ReportError, match=r"rows\[0\].kind is 'oracle', expected one of model"):
        load_results(results_dir)
    (results_dir / "tiny-bench.json").write_text(
        json.dumps({**result(), "schema": "p5rec.benchmark/2"})
    )
    with pytest.raises(ReportError, match="'p5rec.benchmark/2' is not supported"):
        load_results(results_dir)


def test_invalid_json_names_file_and_line(results_dir):
    (results_dir / "broken.json").write_text('{\n  "schema": "p5rec.benchmark/1",\n  oops\n}')
    with pytest.raises(ReportError, match=r"broken.json: not valid JSON \(line 3, column 3"):
        load_results(results_dir)


def test_no_benchmarks_names_directory(tmp_path):
    (tmp_path / "demo.json").write_text("{}")
    with pytest.raises(ReportError, match=f"no benchmark results .* in {tmp_path}"):
        load_results(tmp_path)


def test_write_report_defaults_and_relative_links(results_dir, tmp_path):
    readme = _readme(tmp_path / "README.md")
    summary = write_report(results_dir, readme=readme)
    out = results_dir / "report"
    assert summary["report"] == out / "report.md" and summary["skipped"] == [
        results_dir / "demo.json"
    ]
    assert "**0.9123**" in (out / "report.md").read_text()
    assert "[Full report](results/report/report.md)" in readme.read_text()
    assert "](results/report/tiny-bench-bars.png)" in readme.read_text()


def test_cli_report(results_dir, tmp_path, capsys):
    readme = _readme(tmp_path / "README.md")
    out = tmp_path / "rep"
    assert main(["report", str(results_dir), "--out", str(out), "--readme", str(readme)]) == 0
    printed = capsys.readouterr().out
    assert "benchmark results: tiny-bench" in printed
    assert "skipped 1 other JSON files: demo.json" in printed
    assert f"wrote {out / 'report.md'}" in printed
    assert f"wrote {out / 'tiny-bench-bars.png'}" in printed
    assert f"updated {readme}" in printed
    assert (out / "tiny-bench-curves.png").read_bytes()[:8] == PNG
    assert "[Full report](rep/report.md)" in readme.read_text()
    assert main(["report", str(results_dir), "--out", str(out), "--readme", str(readme)]) == 0
    assert f"unchanged {readme}" in capsys.readouterr().out


def test_cli_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty)]) == 2
    assert f"p5rec report: error: no benchmark results (schema p5rec.benchmark/1) in {empty}" in (
        capsys.readouterr().err
    )
    (empty / "b.json").write_text(json.dumps(result("b")))
    readme = tmp_path / "README.md"
    readme.write_text("no markers here\n")
    assert main(["report", str(empty), "--readme", str(readme)]) == 2
    assert f"{readme}: marker {START} is missing" in capsys.readouterr().err
    assert not (empty / "report").exists()  # nothing written before the README check
    assert main(["report", str(empty), "extra"]) == 2
    assert "no overrides" in capsys.readouterr().err


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["report", "--help"])
    assert exc.value.code == 0
    assert "usage: p5rec report" in capsys.readouterr().out
