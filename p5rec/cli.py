"""Command line: ``p5rec demo | prepare | stats | index | train | export | evaluate |
recommend | ask | serve | report``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

__all__ = ["main"]


COLUMNS = ("user", "item", "time", "rating", "review", "summary", "title", "category")


class CliError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


def _config(args: argparse.Namespace, run_dir: Path | None = None):
    from p5rec.config import load_config

    path = args.config
    if path is None and run_dir is not None and (run_dir / "config.yaml").is_file():
        path = run_dir / "config.yaml"
    return load_config(path, args.overrides)


def _run_dir(path: str) -> Path:
    run = Path(path)
    if not run.is_dir():
        raise CliError(f"run directory {run} does not exist (train one with `p5rec train`)")
    if not (run / "model").is_dir():
        raise CliError(f"{run} has no trained model (model/ is missing); did training finish?")
    return run


def _read_options(args: argparse.Namespace):
    from p5rec.data.readers import ReadOptions

    files = []
    for spec in args.file or []:
        role, sep, path = spec.partition("=")
        if not sep or not role or not path:
            raise CliError(f"--file expects ROLE=PATH, got {spec!r}")
        files.append((role, path))
    rating_range = None
    if args.rating_range:
        try:
            lo, hi = (float(x) for x in args.rating_range.split(","))
        except ValueError:
            raise CliError(f"--rating-range expects LOW,HIGH, got {args.rating_range!r}") from None
        rating_range = (lo, hi)
    cols = {f"{c}_col": getattr(args, f"{c}_col") for c in COLUMNS}
    return ReadOptions(
        on_error=args.on_error,
        k_core=args.k_core,
        dedupe=args.dedupe,
        files=tuple(files),
        rating_range=rating_range,
        encoding=args.encoding,
        category_sep=args.category_sep,
        delimiter=args.delimiter,
        progress=not args.quiet,
        **cols,
    )


def cmd_prepare(args: argparse.Namespace) -> None:
    from p5rec.data.dataset import prepare
    from p5rec.data.stats import dataset_card

    cfg = _config(args)
    manifest = prepare(args.source, args.input, args.out, cfg.data, _read_options(args))
    print(dataset_card(manifest))
    print(f"wrote {args.out} in {manifest['seconds']:.1f} s")


def cmd_stats(args: argparse.Namespace) -> None:
    from p5rec.data.stats import dataset_card, read_manifest

    manifest = read_manifest(args.dir)
    print(json.dumps(manifest, indent=2) if args.json else dataset_card(manifest))


def _data_config(args: argparse.Namespace):
    """The config with ``--data`` (made absolute, so a saved config works from any
    directory) as ``data.path``; a path that is not a prepared dataset is an error."""
    if args.data:
        args.overrides = [*args.overrides, f"data.path={Path(args.data).resolve()}"]
    cfg = _config(args)
    if cfg.data.path and not (Path(cfg.data.path) / "manifest.json").is_file():
        raise CliError(f"{cfg.data.path} is not a prepared dataset (run `p5rec prepare`)")
    return cfg


def cmd_index(args: argparse.Namespace) -> None:
    from p5rec.training import build_context

    cfg = _data_config(args)
    index = build_context(cfg, cfg.data.path).index
    print(index.describe())
    for key, value in index.report.items():
        print(f"  {key}: {value}")
    if args.out:
        index.save(args.out)
        print(f"wrote {args.out}")


def cmd_train(args: argparse.Namespace) -> None:
    from p5rec.training import train

    if args.resume:
        args.overrides = [*args.overrides, "train.resume=true"]
        saved = Path(args.out) / "config.yaml"
        if args.config is None and saved.is_file():  # the run's own config
            args.config = saved
    cfg = _data_config(args)
    summary = train(cfg, args.out, progress=not args.quiet)
    print(f"trained {args.out} in {summary['train_seconds']:.0f} s")


def cmd_export(args: argparse.Namespace) -> None:
    from p5rec.export import export_run

    out = export_run(_run_dir(args.run), args.out, merge=not args.adapter)
    print(f"wrote {out}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from p5rec.evaluation import evaluate_run, format_table

    run = _run_dir(args.run)
    if args.split:
        args.overrides = [*args.overrides, f"eval.split={args.split}"]
    cfg = _config(args, run)
    if args.template:
        templates = {**cfg.eval.templates, **dict(args.template)}
        cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, templates=templates))
    report = evaluate_run(run, cfg, args.families, progress=not args.quiet)
    print(format_table(report))
    print(f"wrote {run / 'metrics.json'}")


def cmd_recommend(args: argparse.Namespace) -> None:
    from p5rec.assistant import Assistant

    run = _run_dir(args.run)
    recs = Assistant(run, _config(args, run)).recommend(args.user, args.k, args.exclude_seen)
    if args.json:
        print(json.dumps(recs, indent=2))
        return
    print(f"top {len(recs)} for {args.user}:")
    _print_items(recs)


def _print_items(items: list[dict]) -> None:
    for r in items:
        print(f"{r['rank']:>3}. {r['item']}  {r['title']}  (log p = {r['log_prob']:.3f})")


def _family_template(value: str) -> tuple[str, str]:
    family, sep, template = value.partition("=")
    if not sep or not family.strip() or not template.strip():
        raise argparse.ArgumentTypeError(f"expected FAMILY=TEMPLATE, got {value!r}")
    return family.strip(), template.strip()


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def cmd_ask(args: argparse.Namespace) -> None:
    from p5rec.assistant import Assistant

    run = _run_dir(args.model)
    answer = Assistant(run, _config(args, run)).ask(
        args.prompt,
        task=args.task,
        user=args.user,
        history=_csv(args.history),
        item=args.item,
        candidates=_csv(args.candidates) or (),
        k=args.k,
        exclude_seen=args.exclude_seen,
    )
    if args.json:
        print(json.dumps(answer, indent=2))
        return
    how = (
        "named"
        if "detection" not in answer
        else (f"detected, similarity {answer['detection'][answer['task']]:.2f}")
    )
    print(f"task: {answer['task']} ({how})")
    if answer["kind"] == "items":
        _print_items(answer["items"])
    elif answer["kind"] == "rating":
        dist = ", ".join(f"{v}: {p:.2f}" for v, p in answer["distribution"].items())
        raw = f"calibrated from {answer['expected']:.2f}; " if "expected" in answer else ""
        print(f"rating: {answer['rating']:.2f}  ({raw}probabilities {dist})")
    elif answer["kind"] == "label":
        alt = ", ".join(f"{a['label']} {a['probability']:.2f}" for a in answer["alternatives"])
        each = ", ".join(f"{lab} {p:.2f}" for lab, p in answer.get("labels", {}).items())
        each = f"each: {each}; " if each else ""  # a multi-label answer's labels
        print(
            f"{answer['task']}: {answer['label']}  (p = {answer['probability']:.2f}; {each}{alt})"
        )
    else:
        print(answer["text"])


def cmd_serve(args: argparse.Namespace) -> None:
    from p5rec.serving import serve

    run = _run_dir(args.model)
    if args.threads is not None:
        if args.threads < 1:
            raise CliError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    serve(
        run,
        _config(args, run),
        host=args.host,
        port=args.port,
        store=args.store or str(run / "history.sqlite"),
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
    )


def cmd_demo(args: argparse.Namespace) -> None:
    from p5rec.demo import run_demo
    from p5rec.resources import resource_dir

    if args.config is None:
        args.config = resource_dir("configs") / "demo.yaml"
    run_demo(_config(args), Path(args.out), progress=not args.quiet)


def cmd_report(args: argparse.Namespace) -> None:
    from p5rec.report import ReportError, write_report

    if args.overrides:  # a second path typed by mistake would otherwise vanish
        raise CliError(f"report takes one RESULTS_DIR and no overrides, got {args.overrides}")
    try:
        summary = write_report(args.results, args.out, args.readme)
    except ReportError as err:
        raise CliError(str(err)) from None
    print(f"benchmark results: {', '.join(summary['benchmarks'])}")
    if summary["skipped"]:
        names = ", ".join(p.name for p in summary["skipped"])
        print(f"skipped {len(summary['skipped'])} other JSON files: {names}")
    for path in [*summary["plots"], summary["report"]]:
        print(f"wrote {path}")
    if summary["readme"] is not None:
        state = "updated" if summary["readme_changed"] else "unchanged"
        print(f"{state} {summary['readme']} (between the benchmarks markers)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="p5rec",
        description="Generative recommendation: one language model, many recommendation tasks.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str, fn) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(fn=fn)
        sp.add_argument(
            "--config", help="experiment YAML (default: built-in defaults, or the run's)"
        )
        sp.add_argument("--quiet", action="store_true", help="no progress bars")
        return sp

    sp = add(
        "demo", "Train, evaluate and recommend end to end on the embedded synthetic data.", cmd_demo
    )
    sp.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")

    sp = add(
        "prepare", "Read a dataset source and write a processed dataset directory.", cmd_prepare
    )
    sp.add_argument(
        "--source",
        default="synthetic",
        help="reader: synthetic, s3rec, amazon, movielens, csv, jsonl, parquet "
        "(default: synthetic)",
    )
    sp.add_argument("--input", default=None, help="input file or folder of the source")
    sp.add_argument("--out", required=True, help="output dataset directory")
    sp.add_argument(
        "--file",
        action="append",
        metavar="ROLE=PATH",
        help="name an input file by role (e.g. meta=meta_Beauty.json.gz, datamaps=...)",
    )
    sp.add_argument(
        "--on-error",
        choices=["raise", "skip"],
        default="raise",
        help="bad records: stop with an error (default) or skip them and count them",
    )
    sp.add_argument("--k-core", type=int, default=0, help="keep users/items with >= K events")
    sp.add_argument(
        "--dedupe",
        choices=["none", "exact", "first", "last"],
        default="exact",
        help="duplicate events: identical (user, item, time) [exact, default], or per "
        "(user, item) keep the first/last",
    )
    sp.add_argument("--rating-range", metavar="LOW,HIGH", help="valid ratings (default 1,5)")
    sp.add_argument("--encoding", help="text encoding of csv/jsonl inputs (default utf-8)")
    sp.add_argument("--delimiter", help="CSV field delimiter (default ',' or tab for .tsv)")
    sp.add_argument("--category-sep", default="|", help="separator in --category-col values")
    for col in COLUMNS:
        sp.add_argument(f"--{col}-col", help=f"{col} column (csv/jsonl/parquet sources)")

    sp = add("stats", "Print the dataset card of a prepared dataset directory.", cmd_stats)
    sp.add_argument("dir", help="prepared dataset directory")
    sp.add_argument("--json", action="store_true", help="print the whole manifest")

    sp = add(
        "index",
        "Build the configured item ID scheme on a dataset's training split and report it.",
        cmd_index,
    )
    sp.add_argument("--data", required=True, help="prepared dataset directory")
    sp.add_argument("--out", help="write the item index (JSON) here")

    sp = add(
        "train",
        "Train a multi-task model (several processes or GPUs: "
        "`accelerate launch scripts/train.py ...`, same arguments).",
        cmd_train,
    )
    sp.add_argument("--data", help="prepared dataset directory (default: synthetic data)")
    sp.add_argument("--out", required=True, help="run directory to write")
    sp.add_argument(
        "--resume",
        action="store_true",
        help="continue from the run's newest checkpoint (same as train.resume=true)",
    )

    sp = add(
        "export",
        "Copy a trained run's model, tokenizer, item index and config into a new directory.",
        cmd_export,
    )
    sp.add_argument("run", help="run directory")
    sp.add_argument("--out", required=True, help="new directory to write")
    sp.add_argument(
        "--adapter", action="store_true", help="keep a LoRA adapter as is (default: merge it)"
    )

    sp = add("evaluate", "Evaluate a trained run; writes RUN/metrics.json.", cmd_evaluate)
    sp.add_argument("run", help="run directory")
    sp.add_argument("--split", choices=["valid", "test"], help="split (default: eval.split)")
    sp.add_argument("--families", nargs="+", help="task families (default: the run's)")
    sp.add_argument(
        "--template",
        action="append",
        type=_family_template,
        metavar="FAMILY=TEMPLATE",
        help="evaluate FAMILY with another template: one of its template ids (seen or unseen) "
        "or a source text, e.g. 'candidate_ranking=Rank {candidates} for {history}.' "
        "(repeatable; default: the first of eval.template_split)",
    )

    sp = add("recommend", "Recommend the next items for a known user.", cmd_recommend)
    sp.add_argument("run", help="run directory")
    sp.add_argument("--user", required=True, help="user id as in the dataset")
    sp.add_argument("-k", type=int, default=10, help="how many items (default 10)")
    sp.add_argument("--exclude-seen", action="store_true", help="drop items the user already has")
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add(
        "ask",
        "Ask a trained model in your own words; the task is detected from the prompt.",
        cmd_ask,
    )
    sp.add_argument("prompt", help='e.g. "what will user 42 want next?"')
    sp.add_argument("--model", required=True, help="run (or exported model) directory")
    sp.add_argument("--user", help="user id (default: a user the prompt names)")
    sp.add_argument("--history", metavar="I1,I2,...", help="the user's items, oldest first")
    sp.add_argument("--item", help="item id (default: the first item the prompt names)")
    sp.add_argument("--candidates", metavar="I1,I2,...", help="items to choose from")
    sp.add_argument(
        "--task",
        help="answer this task instead of detecting it (next_item, candidate_ranking, rating, "
        "explanation, sentiment, category)",
    )
    sp.add_argument("-k", type=int, default=10, help="how many items (default 10)")
    sp.add_argument("--exclude-seen", action="store_true", help="drop items the user already has")
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add("serve", "Serve a trained model over HTTP (OpenAPI at /docs).", cmd_serve)
    sp.add_argument("--model", required=True, help="run (or exported model) directory")
    sp.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    sp.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    sp.add_argument("--store", help="feedback history SQLite file (default MODEL/history.sqlite)")
    sp.add_argument(
        "--max-batch", type=int, default=32, help="most requests per model call (default 32)"
    )
    sp.add_argument(
        "--threads",
        type=int,
        help="CPU threads of the model (default: torch's, one per core); 1 is steadier on a "
        "machine shared with other work",
    )
    sp.add_argument(
        "--max-wait-ms",
        type=float,
        default=5.0,
        help="how long a request may wait for others to batch with (default 5 ms)",
    )
    sp = add(
        "report",
        "Render benchmark results (eval/results/*.json) into Markdown and PNG plots.",
        cmd_report,
    )
    sp.add_argument("results", metavar="RESULTS_DIR", help="folder of benchmark result files")
    sp.add_argument("--out", help="report folder (default: RESULTS_DIR/report)")
    sp.add_argument(
        "--readme",
        metavar="PATH",
        help="also replace the section between <!-- benchmarks:start --> and "
        "<!-- benchmarks:end --> in this file",
    )
    for sp in sub.choices.values():  # after each command's own positionals (e.g. RUN)
        sp.add_argument(
            "overrides",
            nargs="*",
            metavar="key.sub=value",
            help="config overrides, e.g. train.epochs=3 model.d_model=64",
        )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # per-file weight-loading bars drown the output
    from p5rec.config import ConfigError
    from p5rec.data.corpus import CorpusError
    from p5rec.prompts import PromptError

    started = time.time()
    try:
        args.fn(args)
    except (
        CliError,
        ConfigError,
        CorpusError,
        PromptError,
        ValueError,
        FileNotFoundError,
        FileExistsError,
    ) as err:
        if os.environ.get("P5REC_TRACEBACK"):
            raise
        print(f"p5rec {args.command}: error: {err}", file=sys.stderr)
        return 2
    if args.command in ("demo", "train", "evaluate"):
        print(f"[{args.command} done in {time.time() - started:.1f} s]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
