"""Item graphs and clustering shared by the collaborative and semantic schemes.

Everything here is deterministic for a seed: eigensolvers start from a seeded vector,
eigenvector signs are fixed, and k-means is seeded.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

__all__ = ["cooccurrence", "kmeans", "residual_kmeans", "spectral_embedding", "unit_rows"]


def cooccurrence(items: Sequence[str], sequences: Sequence[Sequence[str]]):
    """Symmetric item x item matrix (scipy CSR): how many sequences hold both items.

    Items are rows in the order of ``items``; the diagonal is zero.
    """
    from scipy import sparse

    position = {item: n for n, item in enumerate(items)}
    rows, cols = [], []
    for u, seq in enumerate(sequences):
        for item in set(seq):
            rows.append(u)
            cols.append(position[item])
    n = len(items)
    users = sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.float64), (rows, cols)), shape=(len(sequences), n)
    )
    graph = (users.T @ users).tocsr()
    graph.setdiag(0)
    graph.eliminate_zeros()
    return graph


def spectral_embedding(graph, dim: int, seed: int, weighted: bool = False) -> np.ndarray:
    """Leading eigenvectors of the regularised normalised adjacency (Amini et al.'s
    ``D_tau^-1/2 A D_tau^-1/2``, tau = mean degree), rows scaled to unit length.

    ``weighted`` scales each eigenvector by its (non-negative) eigenvalue first, so that
    weak directions count less: an item embedding rather than a cluster indicator.
    Isolated items (no co-occurrence) get zero rows. ``dim`` is capped at ``n - 1``.
    """
    from scipy import sparse
    from scipy.sparse.linalg import eigsh

    n = graph.shape[0]
    dim = max(1, min(dim, n - 1))
    degree = np.asarray(graph.sum(axis=1)).ravel()
    tau = degree.mean() if degree.mean() > 0 else 1.0
    scale = sparse.diags(1.0 / np.sqrt(degree + tau))
    normalised = (scale @ graph @ scale).tocsr()
    if n <= 1500:
        values, vectors = np.linalg.eigh(normalised.toarray())
        values, vectors = values[::-1][:dim], vectors[:, ::-1][:, :dim]
    else:
        v0 = np.random.default_rng(seed).uniform(0.5, 1.5, size=n)
        values, vectors = eigsh(normalised, k=dim, which="LA", v0=v0, tol=1e-6)
        values, vectors = values[::-1], vectors[:, ::-1]
    if weighted:
        vectors = vectors * np.clip(values, 0.0, None)
    pivot = np.abs(vectors).argmax(axis=0)  # fix each vector's sign: largest entry positive
    vectors *= np.sign(vectors[pivot, np.arange(vectors.shape[1])])
    vectors[:, degree[pivot] == 0] = 0.0  # vectors living on isolated items carry nothing
    return unit_rows(vectors)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row scaled to unit length; all-zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def kmeans(points: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded k-means: labels (n,) and centres (k', d), k' = min(k, distinct points)."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    distinct = len(np.unique(points, axis=0))
    k = max(1, min(k, distinct))
    if k == 1:
        return np.zeros(len(points), dtype=np.int64), points.mean(axis=0, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(points)
    return model.labels_.astype(np.int64), model.cluster_centers_


def residual_kmeans(points: np.ndarray, levels: int, k: int, seed: int) -> np.ndarray:
    """Residual quantisation codes (n, levels): k-means on what earlier levels left over."""
    residual = points.astype(np.float64, copy=True)
    codes = np.zeros((len(points), levels), dtype=np.int64)
    for level in range(levels):
        labels, centres = kmeans(residual, k, seed + level)
        codes[:, level] = labels
        residual -= centres[labels]
    return codes
