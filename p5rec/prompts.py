"""Prompt templates as data: ``prompts/<family>.yaml``, validated at load, rendered by name.

A template file looks like::

    family: rating
    templates:
      - id: rating-1
        split: seen          # seen: used in training; unseen: held out for zero-shot checks
        source: "How would {user} rate {item} ({item_title})?"
        target: "{target}"
    queries:                 # optional: how people ask for this task in their own words
      - "What would this customer think of the item, in stars?"

Placeholders are named; each family declares which it requires and which it allows.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from p5rec.resources import resource_dir

__all__ = [
    "PromptError",
    "Template",
    "check_source",
    "load_queries",
    "load_templates",
    "prompts_dir",
]


class PromptError(ValueError):
    """A template file or template is invalid; the message names the file and template."""


def prompts_dir() -> Path:
    """The shipped templates: inside the wheel, or ``prompts/`` of a source checkout."""
    try:
        return resource_dir("prompts")
    except FileNotFoundError as err:
        raise PromptError(str(err)) from None


def _fields(text: str, where: str) -> list[str]:
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as err:
        raise PromptError(f"{where}: {err} (write a literal brace as {{{{ or }}}})") from None
    names = []
    for _, name, spec, conv in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conv:
            raise PromptError(f"{where}: placeholder {{{name}}} must be a plain {{name}}")
        names.append(name)
    return names


def _literal(text: str) -> str:
    """``text`` as literal template text: its braces doubled, so formatting keeps them."""
    return text.replace("{", "{{").replace("}", "}}")


@dataclass(frozen=True)
class Template:
    """One prompt template: source and target text with named placeholders."""

    id: str
    family: str
    split: str
    source: str
    target: str

    def render(self, fields: Mapping[str, str], target: str) -> tuple[str, str]:
        """Fill the placeholders; returns (source text, target text)."""
        try:
            return self.source.format(**fields), self.target.format(target=target)
        except KeyError as err:
            raise PromptError(f"template {self.id!r}: no value for placeholder {err}") from None

    def render_noisy(
        self,
        fields: Mapping[str, str],
        target: str,
        rng: random.Random,
        rate: float,
        words: Sequence[str],
        shuffle: float = 0.0,
        insert: float = 0.0,
        tail: float = 0.0,
    ) -> tuple[str, str]:
        """``render`` with template noise: each word of the source's own text (never a
        placeholder's value) is, with probability ``rate``, dropped (half the time) or
        replaced by a word drawn from ``words``, and a kept word is followed, with
        probability ``insert``, by an extra word drawn from ``words``; with probability
        ``shuffle`` the source's segments (each placeholder with the text before it) are
        first put in random order, the text after the last placeholder staying last; with
        probability ``tail`` the source ends with an extra sentence of 2 to 6 words drawn
        from ``words``. Training on such variants teaches a model that the wording around
        the placeholders, their order and a closing instruction vary, which unseen
        templates need."""
        if rate <= 0 and shuffle <= 0 and insert <= 0 and tail <= 0:
            return self.render(fields, target)
        segments = list(string.Formatter().parse(self.source))
        shuffled = shuffle > 0 and rng.random() < shuffle
        if shuffled:  # moved segments are joined by a space
            placed = [s for s in segments if s[1] is not None]
            rng.shuffle(placed)
            segments = placed + [s for s in segments if s[1] is None]
        parts = []
        for literal, name, _, _ in segments:
            kept = []
            for word in literal.split(" "):
                draw = rng.random() if word.strip() and rate > 0 else 1.0
                if draw < rate / 2:
                    continue
                if draw < rate and words:
                    word = rng.choice(words)
                kept.append(word)
                if insert > 0 and word.strip() and words and rng.random() < insert:
                    kept.append(rng.choice(words))
            part = _literal(" ".join(kept))
            if name is not None:
                part += "{" + name + "}"  # placeholders are plain names (load checks)
            parts.append(part)
        source = re.sub(r" {2,}", " ", (" " if shuffled else "").join(parts)).strip()
        if tail > 0 and words and rng.random() < tail:
            clause = " ".join(rng.choice(words) for _ in range(rng.randint(2, 6)))
            source += " " + _literal(clause) + "."
        return Template(self.id, self.family, self.split, source, self.target).render(
            fields, target
        )

    def render_target(self, target: str) -> str:
        """The target text alone."""
        return self.target.format(target=target)

    def parse_target(self, text: str) -> str:
        """Invert the target template: the ``{target}`` part of a generated text."""
        prefix, _, suffix = self.target.partition("{target}")
        text = text.strip()
        if prefix.strip() and text.startswith(prefix.strip()):
            text = text[len(prefix.strip()) :]
        if suffix.strip() and text.endswith(suffix.strip()):
            text = text[: -len(suffix.strip())]
        return text.strip()


def _read(family: str, directory: str | Path | None) -> tuple[Path, dict]:
    """The parsed ``<directory>/<family>.yaml`` (default: the shipped templates)."""
    path = Path(directory) if directory is not None else prompts_dir()
    path = path / f"{family}.yaml"
    if not path.is_file():
        raise PromptError(f"{path}: no template file for task family {family!r}")
    try:
        blob = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise PromptError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(blob, dict) or blob.get("family") != family:
        raise PromptError(f"{path}: expected a mapping with 'family: {family}' and 'templates'")
    unknown = sorted(set(blob) - {"family", "templates", "queries"})
    if unknown:
        raise PromptError(f"{path}: unknown key(s) {unknown}; allowed: family, templates, queries")
    return path, blob


def load_queries(family: str, directory: str | Path | None = None) -> list[str]:
    """The optional ``queries`` list of ``<family>.yaml``: example questions a person might ask
    for this task, in their own words. They are never trained on; free-text task detection
    (``p5rec.intent``) compares a prompt with them and with the templates."""
    path, blob = _read(family, directory)
    queries = blob.get("queries", [])
    if not isinstance(queries, list) or not all(isinstance(q, str) and q.strip() for q in queries):
        raise PromptError(f"{path}: 'queries' must be a list of non-empty strings")
    return [q.strip() for q in queries]


def check_source(
    source: str, required: Collection[str], optional: Collection[str], where: str
) -> None:
    """Raise PromptError (naming ``where``) unless ``source`` is a template source text that
    uses every ``required`` placeholder and no others than those and ``optional``."""
    used = _fields(source, where + " source")
    allowed = set(required) | set(optional)
    unknown = sorted(set(used) - allowed)
    if unknown:
        raise PromptError(f"{where}: unknown placeholder(s) {unknown}; allowed: {sorted(allowed)}")
    missing = sorted(set(required) - set(used))
    if missing:
        raise PromptError(f"{where}: source must use placeholder(s) {missing}")


def load_templates(
    family: str,
    required: Collection[str],
    optional: Collection[str] = (),
    exact_target: bool = False,
    directory: str | Path | None = None,
) -> list[Template]:
    """Load and validate ``<directory>/<family>.yaml``.

    Args:
        family: task family name; also the file stem.
        required: placeholders every source template must use.
        optional: further placeholders a source template may use.
        exact_target: the target must be exactly ``{target}`` (item families: the target is
            decoded under the item-ID constraint, so nothing else may surround it).
        directory: where the YAML files are; default the shipped templates.
    """
    path, blob = _read(family, directory)
    entries = blob.get("templates")
    if not isinstance(entries, list) or not entries:
        raise PromptError(f"{path}: 'templates' must be a non-empty list")
    templates: list[Template] = []
    for n, entry in enumerate(entries):
        where = f"{path} template #{n + 1}"
        if not isinstance(entry, dict):
            raise PromptError(f"{where}: expected a mapping")
        keys = {"id", "split", "source", "target"}
        if set(entry) != keys:
            raise PromptError(f"{where}: keys must be exactly {sorted(keys)}, got {sorted(entry)}")
        tid = str(entry["id"])
        where = f"{path} template {tid!r}"
        if entry["split"] not in ("seen", "unseen"):
            raise PromptError(f"{where}: split must be 'seen' or 'unseen'")
        source, target = str(entry["source"]), str(entry["target"])
        check_source(source, required, optional, where)
        if _fields(target, where + " target") != ["target"]:
            raise PromptError(f"{where}: target must contain {{target}} exactly once, nothing else")
        if exact_target and target != "{target}":
            raise PromptError(f"{where}: target must be exactly '{{target}}' for this family")
        if any(t.id == tid for t in templates):
            raise PromptError(f"{where}: duplicate template id")
        templates.append(Template(tid, family, entry["split"], source, target))
    for split in ("seen", "unseen"):
        if not any(t.split == split for t in templates):
            raise PromptError(f"{path}: needs at least one {split!r} template")
    return templates
