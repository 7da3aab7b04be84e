"""Collaborative IDs (Hua et al. 2023, CID): hierarchical spectral clustering of the
training co-occurrence graph.

The catalogue is split into ``codebook_size`` clusters by spectral clustering of the graph
restricted to it, and every cluster larger than ``leaf_size`` is split again; an item's base
code is its path of cluster tokens. Items of one leaf share that path, and ``build_index``
tells them apart (an extra level numbering the leaf's items, or the item's own suffix
token), so items that co-occur share code prefixes.
"""

from __future__ import annotations

import numpy as np

from p5rec.config import IndexConfig
from p5rec.indexing.basic import fitting_codebook
from p5rec.indexing.clustering import cooccurrence, kmeans, spectral_embedding
from p5rec.indexing.index import SchemeInput, SchemeResult, level_token, register_scheme

MAX_SPECTRAL_DEPTH = 8  # deeper than this, oversized clusters are cut into equal parts


@register_scheme("collaborative")
def collaborative_codes(data: SchemeInput, cfg: IndexConfig) -> SchemeResult:
    n = len(data.items)
    clusters = cfg.codebook_size or fitting_codebook(n, cfg.tokens_per_item)
    leaf = cfg.leaf_size or clusters
    graph = cooccurrence(data.items, data.train_sequences)
    paths: list[tuple[int, ...]] = [()] * n
    stats = {"spectral_splits": 0, "even_splits": 0}

    def split(members: np.ndarray, path: tuple[int, ...]) -> None:
        if len(members) <= leaf:
            for m in members:
                paths[m] = path
            return
        labels = None
        if len(path) < MAX_SPECTRAL_DEPTH:
            sub = graph[members][:, members]
            if sub.nnz:
                dim = min(clusters, cfg.embedding_dim)  # bounds the eigensolver's memory
                embedding = spectral_embedding(sub, dim, cfg.seed + len(path))
                labels, _ = kmeans(embedding, clusters, cfg.seed + len(path))
        if labels is None or len(np.unique(labels)) < 2:
            # no structure to split on (isolated items, or too deep): equal parts in id order
            labels = np.arange(len(members)) * clusters // len(members)
            stats["even_splits"] += 1
        else:
            stats["spectral_splits"] += 1
        # number clusters by their smallest member, so labels do not depend on k-means' order
        order = {lab: c for c, lab in enumerate(dict.fromkeys(labels.tolist()))}
        for lab, c in order.items():
            split(members[labels == lab], (*path, c))

    split(np.arange(n), ())
    codes = {
        item: tuple(level_token(lv, c) for lv, c in enumerate(paths[i]))
        for i, item in enumerate(data.items)
    }
    depth = [len(p) for p in paths]
    isolated = int((np.asarray(graph.getnnz(axis=1)) == 0).sum())
    return SchemeResult(
        codes,
        {
            "clusters_per_level": clusters,
            "leaf_size": leaf,
            "max_cluster_depth": max(depth),
            "items_without_cooccurrence": isolated,
            **stats,
        },
    )
