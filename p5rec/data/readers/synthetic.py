"""The embedded demo corpus as a source (generated from ``data.synthetic``; no input files)."""

from __future__ import annotations

from p5rec.data.events import table_from_corpus
from p5rec.data.readers.base import SourceData, register
from p5rec.data.synthetic import generate


@register("synthetic")
def read_synthetic(path, cfg, options, problems) -> SourceData:
    if path is not None:
        raise ValueError("source 'synthetic' takes no --input (it is generated from the config)")
    corpus = generate(cfg.synthetic)
    return SourceData(
        table_from_corpus(corpus), dict(corpus.items), rating_range=corpus.rating_range
    )
