"""Evaluate a trained run on a split: every family's metrics beside its in-run baseline."""

from __future__ import annotations

import json
import platform
import random
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from p5rec.config import ConfigError, ExperimentConfig, config_hash, to_dict
from p5rec.generation import Engine
from p5rec.modeling import load_trained
from p5rec.tasks import get_family
from p5rec.training import build_context, check_context_tokens, git_commit

__all__ = ["evaluate_run", "format_table", "hardware"]


def hardware() -> dict[str, str | int]:
    info: dict[str, str | int] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def write_measurement(path: str | Path, payload: dict, started: float) -> Path:
    """Write a measurement's ``payload`` to ``path`` (JSON) with the git commit, the
    hardware and the wall time since ``started`` (``time.time()``)."""
    path = Path(path)
    result = {
        **payload,
        "git_commit": git_commit(),
        "hardware": hardware(),
        "wall_seconds": round(time.time() - started, 1),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def evaluate_run(
    run_dir: str | Path,
    cfg: ExperimentConfig,
    families: list[str] | None = None,
    progress: bool = True,
    predictions: dict[str, list] | None = None,
) -> dict:
    """Evaluate ``run_dir`` with ``cfg.eval``; writes ``RUN/metrics.json`` and returns it.
    Given a dict, ``predictions`` receives each family's predictions, aligned with its
    evaluation examples (the benchmark's paired bootstrap rescores them)."""
    run_dir = Path(run_dir)
    start = time.time()
    run_info = (
        json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    )
    model, tokenizer, index = load_trained(run_dir)
    data_dir = cfg.data.path or run_info.get("data_dir") or run_dir / "data"
    ctx = build_context(cfg, data_dir, index)
    check_context_tokens(ctx, tokenizer, str(run_dir))
    trained_on, fingerprint = run_info.get("data_fingerprint"), ctx.manifest["fingerprint"]
    if trained_on and trained_on != fingerprint:
        raise ConfigError(
            f"{data_dir} is not the dataset {run_dir} was trained on "
            f"(fingerprint {fingerprint}, trained on {trained_on})"
        )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    engine = Engine(model, tokenizer, index, cfg.train.max_source_length, device=device)
    ev = cfg.eval
    options = ev.options()
    results: dict[str, dict] = {}
    names = families or list(cfg.tasks.families)
    unused = sorted(set(ev.templates) - set(names))
    if unused:
        raise ConfigError(
            f"eval.templates names families not evaluated: {unused} (evaluated: {names})"
        )
    for name in tqdm(names, desc=f"evaluate ({ev.split})", disable=not progress):
        fam = get_family(name)
        examples = fam.examples(ctx, ev.split, random.Random(0))
        if ev.max_examples and len(examples) > ev.max_examples:
            examples = random.Random(1).sample(examples, ev.max_examples)
        if not examples:
            results[name] = {"n": 0, "note": f"no {ev.split} examples for this dataset"}
            continue
        chosen = ev.templates.get(name)
        template = fam.template_named(chosen) if chosen else fam.eval_template(ev.template_split)
        sources = [ctx.prompt(name, template.render(e.fields, e.target)[0]) for e in examples]
        t0 = time.time()
        family_options = {**options, "template": template}
        raw = fam.predict(engine, ctx, examples, sources, family_options)
        seconds = time.time() - t0  # the model's predictions alone, without calibration
        predicted, calibration = (raw, None)
        if ev.split != "valid":  # calibration is fitted on the validation split
            predicted, calibration = fam.calibrate(engine, ctx, raw, family_options)
        metrics = fam.score(ctx, examples, predicted, family_options)
        if predictions is not None:
            predictions[name] = predicted
        base_name, base_metrics = fam.baseline(ctx, examples, options)
        results[name] = {
            "n": len(examples),
            "template": template.id,
            "template_source": template.source,
            "model": metrics,
            "baseline": {"name": base_name, "metrics": base_metrics},
            "seconds": round(seconds, 2),
            "ms_per_example": round(1000 * seconds / len(examples), 2),
        }
        if calibration is not None:
            uncalibrated = fam.score(ctx, examples, raw, family_options)
            results[name]["calibration"] = {**calibration, "uncalibrated": uncalibrated}
    report = {
        "split": ev.split,
        "remove_history": ev.remove_history,
        "results": results,
        "data_fingerprint": fingerprint,
        "data_dir": str(data_dir),
        "config_hash": config_hash(cfg),
        "config": to_dict(cfg),
        "seed": cfg.train.seed,
        "git_commit": git_commit(),
        "hardware": hardware(),
        "eval_seconds": round(time.time() - start, 2),
    }
    (run_dir / "metrics.json").write_text(json.dumps(report, indent=2))
    return report


def format_table(report: dict) -> str:
    """A plain-text table: family, metric, model, baseline."""
    rows = [("family", "metric", "model", "baseline"), ("", "", "", "")]
    for name, res in report["results"].items():
        if not res.get("n"):
            rows.append((name, "-", res.get("note", "no examples"), ""))
            continue
        base = res["baseline"]["metrics"]
        for metric, value in res["model"].items():
            b = base.get(metric)
            rows.append(
                (
                    f"{name} (n={res['n']})" if metric == next(iter(res["model"])) else "",
                    metric,
                    f"{value:.4f}" if metric != "unparsed" else str(int(value)),
                    f"{b:.4f} ({res['baseline']['name']})" if b is not None else "",
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for r in rows:
        if r == ("", "", "", ""):
            lines.append("  ".join("-" * w for w in widths))
        else:
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return "\n".join(lines)
