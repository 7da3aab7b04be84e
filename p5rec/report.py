"""Render benchmark results (``eval/results/*.json``, schema ``p5rec.benchmark/1``) into a
Markdown report, PNG plots and a generated section of the README.

Pipeline: ``load_results`` (read + check every benchmark file) -> ``plot_results`` (bar
chart of each task's headline metric, validation and training curves) -> ``render_markdown``
(tables per task, targets, models) -> ``readme_section`` + ``update_readme`` (summary
between the ``<!-- benchmarks:start -->`` / ``<!-- benchmarks:end -->`` markers).
``write_report`` runs all of it for ``p5rec report``.
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import re
from pathlib import Path

__all__ = [
    "ReportError",
    "SCHEMA",
    "load_results",
    "plot_results",
    "readme_section",
    "render_markdown",
    "update_readme",
    "write_report",
]

SCHEMA = "p5rec.benchmark/1"
START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
KINDS = ("model", "ablation", "baseline")
COLOURS = {"model": "tab:blue", "ablation": "tab:orange", "baseline": "tab:gray"}

# Keys every benchmark file must have, per level of the schema.
_TOP = ("benchmark", "title", "dataset", "split", "seed", "hardware", "wall_seconds")
_TOP += ("models", "tasks", "targets")
_MODEL = ("label", "families", "index", "parameters", "train_seconds")
_TASK = ("title", "protocol", "n", "headline", "rows")
_ROW = ("system", "kind", "metrics")
_TARGET = ("task", "metric", "system", "against", "relation", "value", "reference", "met")


class ReportError(ValueError):
    """A results directory, result file or README that cannot be reported on."""


# ---------------------------------------------------------------- loading and checking


def _require(obj: object, keys: tuple[str, ...], where: str, path: Path) -> None:
    _expect(obj, dict, where or "the file", path)
    for key in keys:
        if key not in obj:
            full = f"{where}.{key}" if where else key
            raise ReportError(f"{path}: missing key {full!r}")


def _expect(obj: object, kind: type, where: str, path: Path) -> None:
    if not isinstance(obj, kind):
        expected = "an object" if kind is dict else "a list"
        raise ReportError(f"{path}: {where} must be {expected}, got {type(obj).__name__}")


def _check(result: dict, path: Path) -> None:
    """Raise a ``ReportError`` naming ``path`` and the key when ``result`` breaks the schema."""
    _require(result, _TOP, "", path)
    _require(result["dataset"], ("fingerprint",), "dataset", path)
    _require(result["hardware"], ("platform", "cpu_threads"), "hardware", path)
    if not re.fullmatch(r"[\w.-]+", str(result["benchmark"])):
        raise ReportError(f"{path}: benchmark name {result['benchmark']!r} is not a file stem")
    _expect(result["models"], dict, "models", path)
    _expect(result["targets"], list, "targets", path)
    for name, model in result["models"].items():
        _require(model, _MODEL, f"models.{name}", path)
    if not isinstance(result["tasks"], dict) or not result["tasks"]:
        raise ReportError(f"{path}: 'tasks' must be a non-empty object")
    for name, task in result["tasks"].items():
        _require(task, _TASK, f"tasks.{name}", path)
        _expect(task["rows"], list, f"tasks.{name}.rows", path)
        for i, row in enumerate(task["rows"]):
            _require(row, _ROW, f"tasks.{name}.rows[{i}]", path)
            if row["kind"] not in KINDS:
                raise ReportError(
                    f"{path}: tasks.{name}.rows[{i}].kind is {row['kind']!r}, "
                    f"expected one of {', '.join(KINDS)}"
                )
    for i, target in enumerate(result["targets"]):
        _require(target, _TARGET, f"targets[{i}]", path)


def _scan(directory: str | Path) -> tuple[list[dict], list[Path]]:
    """Benchmark results in ``directory`` (sorted by file name) and the JSON files skipped."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ReportError(f"results directory {directory} does not exist")
    results, skipped, seen = [], [], {}
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ReportError(
                f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})"
            ) from None
        schema = data.get("schema") if isinstance(data, dict) else None
        if not (isinstance(schema, str) and schema.startswith("p5rec.benchmark/")):
            skipped.append(path)
            continue
        if schema != SCHEMA:
            raise ReportError(f"{path}: schema {schema!r} is not supported (expected {SCHEMA})")
        _check(data, path)
        if data["benchmark"] in seen:
            raise ReportError(
                f"{path}: benchmark {data['benchmark']!r} is also in {seen[data['benchmark']]}"
            )
        seen[data["benchmark"]] = path
        results.append(data)
    if not results:
        raise ReportError(f"no benchmark results (schema {SCHEMA}) in {directory}")
    return results, skipped


def load_results(directory: str | Path) -> list[dict]:
    """Every benchmark result in ``directory``, checked, sorted by file name; other JSON
    files are skipped. Raises ``ReportError`` when none is found or one is malformed."""
    return _scan(directory)[0]


# ---------------------------------------------------------------- Markdown


def _number(value: object) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(value) else None


def _fmt(value: object) -> str:
    v = _number(value)
    return "—" if v is None else f"{v:.4f}"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _metrics(task: dict) -> list[str]:
    """The union of the rows' metric names, in first-seen order."""
    return list(dict.fromkeys(m for row in task["rows"] for m in row["metrics"]))


def _best(task: dict, metric: str, rows: list[dict] | None = None) -> tuple[float, dict] | None:
    """The best value of ``metric`` over ``rows`` (default: all rows) and its first row."""
    lower = metric in task.get("lower_is_better", [])
    candidates = task["rows"] if rows is None else rows
    scored = [(v, r) for r in candidates if (v := _number(r["metrics"].get(metric))) is not None]
    if not scored:
        return None
    return min(scored, key=lambda s: s[0]) if lower else max(scored, key=lambda s: s[0])


def _label(task: dict, metric: str) -> str:
    return f"{metric} ↓" if metric in task.get("lower_is_better", []) else metric


def _hardware(hw: dict) -> str:
    """The GPU, else the platform and how the jobs used its CPU: a benchmark's jobs run in
    worker processes of their own thread count, whatever the driver process had."""
    if hw.get("gpu"):
        return hw["gpu"]
    if hw.get("workers"):
        threads = hw.get("threads_per_worker", hw["cpu_threads"])
        return f"{hw['platform']}, {hw['workers']} worker processes of {threads} CPU thread(s)"
    return f"{hw['platform']}, {hw['cpu_threads']} CPU threads"


def _seeds(result: dict) -> str:
    n = result.get("seeds", 1)
    if n == 1:
        return f"seed {result['seed']}"
    return f"seeds {result['seed']}–{result['seed'] + n - 1} (mean ± standard deviation)"


def _header_line(result: dict) -> str:
    commit = result.get("git_commit")
    return (
        f"Dataset `{result['dataset']['fingerprint']}` · split {result['split']} · "
        f"{_seeds(result)} · commit `{commit[:7] if commit else 'unknown'}` · "
        f"hardware {_hardware(result['hardware'])} · "
        f"wall time {result['wall_seconds'] / 60:.1f} min{_reuse_note(result)}"
    )


def _reuse_note(result: dict) -> str:
    """How many of the result's jobs an earlier run trained, and at which commits."""
    reused = result.get("reused_jobs") or {}
    if not reused:
        return ""
    commits = sorted({f"`{c[:7]}`" if c else "an unrecorded commit" for c in reused.values()})
    total = len(result.get("job_seconds") or reused)
    return (
        f" for this run's jobs; {len(reused)} of {total} jobs reused from earlier runs "
        f"(commit {', '.join(commits)})"
    )


def _task_table(task: dict) -> list[str]:
    metrics = _metrics(task)
    best = {m: b[0] for m in metrics if (b := _best(task, m))}
    rows = []
    for row in task["rows"]:
        cells = [_cell(row["system"]), row["kind"]]
        for m in metrics:
            text, v = _fmt(row["metrics"].get(m)), _number(row["metrics"].get(m))
            text = f"**{text}**" if v is not None and v == best.get(m) else text
            spread = _number(row.get("std", {}).get(m))  # over seeds (benchmark --seeds)
            cells.append(text if spread is None else f"{text} ± {spread:.4f}")
        rows.append(cells)
    return _table(["System", "Kind", *(_label(task, m) for m in metrics)], rows)


def _interval(target: dict) -> str:
    """The target's 95% paired-bootstrap interval of its difference (a share of the
    reference for "within 5%"), or a dash where the result has none."""
    bounds = target.get("interval")
    if not isinstance(bounds, list) or len(bounds) != 2:
        return "—"
    lo, hi = (_number(b) for b in bounds)
    if lo is None or hi is None:
        return "—"
    if target["relation"] == "within 5%":
        return f"{100 * lo:+.1f}% to {100 * hi:+.1f}%"
    return f"{lo:+.4f} to {hi:+.4f}"


def _targets_table(targets: list[dict]) -> list[str]:
    met = sum(bool(t["met"]) for t in targets)
    rows = [
        [
            *(_cell(t[k]) for k in ("task", "metric", "system", "relation", "against")),
            _fmt(t["value"]),
            _fmt(t["reference"]),
            _interval(t),
            "✅" if t["met"] else "❌",
        ]
        for t in targets
    ]
    header = ["Task", "Metric", "System", "Relation", "Against", "Value", "Reference"]
    header += ["Difference, 95% interval", "Met"]
    lines = [f"{met} of {len(targets)} targets met.", ""]
    if any(t.get("interval") for t in targets):
        lines += [
            'The interval: value minus reference (a share of the reference for "within '
            '5%") over paired bootstrap resamples of the test examples. A verdict whose '
            'interval straddles 0 (for "within 5%": crosses ±5%) is one another sample of '
            "users could reverse.",
            "",
        ]
    return [*lines, *_table(header, rows)]


def _models_table(models: dict) -> list[str]:
    rows = [
        [
            _cell(m["label"]),
            ", ".join(m["families"]),
            _cell(m["index"]),
            f"{m['parameters']:,}",
            f"{m['train_seconds'] / 60:.1f} min",
        ]
        for m in models.values()
    ]
    return _table(["Model", "Families", "ID scheme", "Parameters", "Train time"], rows)


def render_markdown(results: list[dict], image_dir: str | Path | None = None) -> str:
    """The full report. With ``image_dir``, the plots found there (``plot_results``) are
    embedded by file name, i.e. relative to a report written into that directory."""
    lines = ["# p5rec benchmarks", "", "Generated by `p5rec report`; edit the result files.", ""]
    for result in results:
        name = result["benchmark"]
        lines += [f"## {result['title']}", "", _header_line(result), ""]
        for suffix, alt in (("bars", "headline metrics"), ("curves", "training curves")):
            if image_dir is not None and (Path(image_dir) / f"{name}-{suffix}.png").is_file():
                lines += [f"![{result['title']} {alt}]({name}-{suffix}.png)", ""]
        for task in result["tasks"].values():
            lines += [
                f"### {task['title']}",
                "",
                f"{task['protocol']} · n = {task['n']} · headline {task['headline']}",
                "",
                *_task_table(task),
                "",
            ]
        if result["targets"]:
            lines += ["### Targets", "", *_targets_table(result["targets"]), ""]
        if result["models"]:
            lines += ["### Models", "", *_models_table(result["models"]), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


# ---------------------------------------------------------------- plots


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".tmp-{path.name}")
    fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def _grid(n: int, width: float, height: float):
    import matplotlib.pyplot as plt

    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _plot_bars(result: dict, path: Path) -> None:
    from matplotlib.patches import Patch

    tasks = list(result["tasks"].values())
    tallest = max(len(t["rows"]) for t in tasks)
    fig, axes = _grid(len(tasks), 5.5, 1.2 + 0.35 * tallest)
    for ax, task in zip(axes, tasks):
        metric = task["headline"]
        rows = [r for r in task["rows"] if _number(r["metrics"].get(metric)) is not None]
        values = [_number(r["metrics"][metric]) for r in rows]
        ax.barh(range(len(rows)), values, color=[COLOURS[r["kind"]] for r in rows])
        ax.set_yticks(range(len(rows)), [r["system"] for r in rows], fontsize=7)
        ax.invert_yaxis()  # rows top to bottom in file order
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:.4f}", va="center", fontsize=7)
        lower = " (lower is better)" if metric in task.get("lower_is_better", []) else ""
        ax.set_title(f"{task['title']}: {metric}{lower}", fontsize=9)
        ax.margins(x=0.25)
    handles = [Patch(color=COLOURS[k], label=k) for k in KINDS]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8)
    fig.suptitle(result["title"])
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    _save(fig, path)


def _plot_curves(result: dict, path: Path) -> bool:
    """Validation metrics and training loss of each model against steps; False if no
    model has a curve (nothing is written)."""
    models = result["models"]
    keys = [
        k
        for k in dict.fromkeys(k for m in models.values() for r in m.get("curve", []) for k in r)
        if k not in ("step", "epoch")
    ]
    has_train = any(m.get("train_curve") for m in models.values())
    if not keys and not has_train:
        return False
    panels = [(k, "curve", k) for k in keys]
    panels += [("training loss", "train_curve", "loss")] if has_train else []
    fig, axes = _grid(len(panels), 4.5, 3.2)
    for ax, (title, field, key) in zip(axes, panels):
        for model in models.values():
            points = [(r["step"], r[key]) for r in model.get(field, []) if key in r]
            if points:
                style = "o-" if field == "curve" else "-"
                ax.plot(*zip(*points), style, label=model["label"], markersize=3, linewidth=1)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        if ax.get_lines():
            ax.legend(fontsize=6)
    fig.suptitle(f"{result['title']}: validation and training curves")
    fig.tight_layout()
    _save(fig, path)
    return True


def plot_results(results: list[dict], out_dir: str | Path) -> list[Path]:
    """Write ``<benchmark>-bars.png`` (headline metric of every row, one subplot per task)
    and ``<benchmark>-curves.png`` (when a model has curves) into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for result in results:
        bars = out / f"{result['benchmark']}-bars.png"
        _plot_bars(result, bars)
        written.append(bars)
        curves = out / f"{result['benchmark']}-curves.png"
        if _plot_curves(result, curves):
            written.append(curves)
        else:  # a stale plot from an earlier run would be embedded in the report
            curves.unlink(missing_ok=True)
    return written


# ---------------------------------------------------------------- README


def _verdict(targets: list[dict]) -> str:
    if not targets:
        return "—"
    met = sum(bool(t["met"]) for t in targets)
    return f"{'✅' if met == len(targets) else '❌'} {met}/{len(targets)}"


def readme_section(results: list[dict], report_path_rel: str) -> str:
    """A compact summary linking to the full report at ``report_path_rel`` (relative to the
    README) and to the bar charts beside it: per task, the headline metric of the multi-task
    model (the first row of kind ``model``) and of the best baseline, and the targets met."""
    folder = posixpath.dirname(report_path_rel)
    lines = ["<!-- generated by `p5rec report`; do not edit by hand -->", ""]
    for result in results:
        rows = []
        for name, task in result["tasks"].items():
            metric = task["headline"]
            model = _best(task, metric, [r for r in task["rows"] if r["kind"] == "model"][:1])
            base = _best(task, metric, [r for r in task["rows"] if r["kind"] == "baseline"])
            targets = [t for t in result["targets"] if (t["task"], t["metric"]) == (name, metric)]
            rows.append(
                [
                    _cell(task["title"]),
                    _label(task, metric),
                    f"{model[0]:.4f}" if model else "—",
                    f"{base[0]:.4f} ({_cell(base[1]['system'])})" if base else "—",
                    _verdict(targets),
                ]
            )
        header = ["Task", "Metric", "p5rec multi-task", "Best baseline", "Targets met"]
        bars = posixpath.join(folder, f"{result['benchmark']}-bars.png")
        lines += [
            f"### {result['title']}",
            "",
            _header_line(result),
            "",
            *_table(header, rows),
            "",
            f"[Full report]({report_path_rel}) · all targets: {_verdict(result['targets'])}",
            "",
            f"![{result['title']} headline metrics]({bars})",
            "",
        ]
    return "\n".join(lines).rstrip("\n") + "\n"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _read_readme(path: Path) -> str:
    if not path.is_file():
        raise ReportError(f"README {path} does not exist")
    return path.read_text(encoding="utf-8")


def _markers(text: str, path: Path) -> tuple[int, int]:
    """Offsets of the start and end markers in ``text`` (the README at ``path``)."""
    start = text.find(START)
    if start < 0:
        raise ReportError(f"{path}: marker {START} is missing")
    end = text.find(END, start)
    if end < 0:
        raise ReportError(f"{path}: marker {END} is missing (after {START})")
    return start, end


def update_readme(path: str | Path, section: str) -> bool:
    """Replace the text between the benchmark markers of ``path`` with ``section`` (the
    markers stay); True when the file changed."""
    path = Path(path)
    text = _read_readme(path)
    start, end = _markers(text, path)
    new = f"{text[: start + len(START)]}\n\n{section.strip()}\n\n{text[end:]}"
    if new != text:
        _write(path, new)
    return new != text


def write_report(
    results_dir: str | Path, out_dir: str | Path | None = None, readme: str | Path | None = None
) -> dict:
    """Load ``results_dir``, write plots and ``report.md`` into ``out_dir`` (default
    ``results_dir/report``) and, with ``readme``, its generated section; returns what was
    read, skipped and written."""
    results, skipped = _scan(results_dir)
    out = Path(out_dir) if out_dir is not None else Path(results_dir) / "report"
    if readme is not None:  # a README without markers fails before anything is written
        _markers(_read_readme(Path(readme)), Path(readme))
    plots = plot_results(results, out)
    report = out / "report.md"
    _write(report, render_markdown(results, image_dir=out))
    summary = {
        "benchmarks": [r["benchmark"] for r in results],
        "skipped": skipped,
        "report": report,
        "plots": plots,
        "readme": None,
        "readme_changed": False,
    }
    if readme is not None:
        rel = os.path.relpath(report.resolve(), Path(readme).resolve().parent)
        summary["readme"] = Path(readme)
        summary["readme_changed"] = update_readme(
            readme, readme_section(results, Path(rel).as_posix())
        )
    return summary
