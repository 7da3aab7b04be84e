"""The dataset card ``p5rec stats DIR`` prints, from a dataset directory's manifest."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["dataset_card", "read_manifest", "skipped_lines"]


def read_manifest(directory: str | Path) -> dict:
    path = Path(directory) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{directory}: no manifest.json (make one with `p5rec prepare`)")
    return json.loads(path.read_text(encoding="utf-8"))


def skipped_lines(manifest: dict) -> list[str]:
    """What was skipped or removed, one line per kind (empty when nothing was)."""
    lines = []
    skipped = manifest.get("skipped", {}).get("skipped", {})
    for kind, n in skipped.items():
        example = manifest["skipped"]["examples"].get(kind, [""])[0]
        lines.append(f"skipped {n} record(s): {kind}  (e.g. {example})")
    cleaning = manifest.get("cleaning", {})
    dups = cleaning.get("duplicates_removed", {})
    if dups.get("events"):
        lines.append(f"removed {dups['events']} duplicate event(s) (policy {dups['policy']})")
    core = cleaning.get("k_core", {})
    if core.get("events_removed"):
        lines.append(
            f"{core['k']}-core removed {core['events_removed']} event(s), "
            f"{core['users_removed']} user(s), {core['items_removed']} item(s) "
            f"in {core['rounds']} round(s)"
        )
    return lines


def dataset_card(manifest: dict) -> str:
    c = manifest["counts"]
    src = manifest["source"]
    out = [
        f"dataset: {src['name']}" + (f" from {src['input']}" if src.get("input") else ""),
        f"users {c['users']:,}  items {c['items']:,}  events {c['interactions']:,}  "
        f"density {c['density']:.6f}",
        f"rated {c['rated']:,}  reviews {c['reviews']:,}  summaries {c['summaries']:,}  "
        f"items with categories {c['items_with_categories']:,}",
    ]
    sl = c.get("sequence_length", {})
    if sl:
        out.append(
            "events per user: min {min}  median {median:g}  mean {mean:g}  p90 {p90:g}  "
            "p99 {p99:g}  max {max}".format(**sl)
        )
    hist = manifest.get("rating_histogram") or {}
    if hist:
        total = sum(hist.values())
        out.append("ratings:")
        for value, n in hist.items():
            bar = "#" * max(1, round(40 * n / total))
            out.append(f"  {value:>4}  {n:>9,}  {bar}")
    out.append("splits:")
    for task, sizes in manifest["splits"].items():
        out.append(f"  {task:<11} " + "  ".join(f"{k} {v:,}" for k, v in sizes.items()))
    out.append("tasks supported:")
    for task, why in manifest["tasks"].items():
        out.append(f"  {task:<18} {why}")
    notes = skipped_lines(manifest)
    if notes:
        out.append("input problems and cleaning:")
        out += [f"  {line}" for line in notes]
    out.append(f"fingerprint {manifest['fingerprint']}")
    return "\n".join(out)
