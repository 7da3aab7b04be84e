"""Semantic IDs (TIGER-style): residual k-means codes over item embeddings.

The embeddings come from, in order of preference (``index.semantic_source: auto``):

1. item text embedded by a sentence-embedding model from a local directory
   (``index.embedder``; mean-pooled last hidden states, unit length);
2. TF-IDF + truncated SVD of the item text, when items have text;
3. a spectral embedding of the training co-occurrence graph, when they have none.

``semantic_source: text`` or ``collaborative`` forces a source. Items with equal codes are
told apart by ``build_index``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from p5rec.config import IndexConfig
from p5rec.indexing.basic import fitting_codebook
from p5rec.indexing.clustering import (
    cooccurrence,
    residual_kmeans,
    spectral_embedding,
    unit_rows,
)
from p5rec.indexing.index import SchemeInput, SchemeResult, level_token, register_scheme


@register_scheme("semantic")
def semantic_codes(data: SchemeInput, cfg: IndexConfig) -> SchemeResult:
    texts = [data.texts.get(item, "").strip() for item in data.items]
    with_text = sum(1 for t in texts if t)
    source = cfg.semantic_source
    extra: dict = {}
    if source == "auto":
        source = "text" if with_text else "collaborative"
    if source == "text":
        if not with_text:
            raise ValueError("index.semantic_source=text, but no item has a title or text")
        if cfg.embedder:
            vectors = embed_with_model(texts, cfg.embedder)
            source = f"model:{cfg.embedder}"
        else:
            vectors = tfidf_svd(texts, cfg.embedding_dim, cfg.seed)
            source = "tfidf-svd"
    else:
        graph = cooccurrence(data.items, data.train_sequences)
        vectors = spectral_embedding(graph, cfg.embedding_dim, cfg.seed, weighted=True)
        isolated = int((graph.getnnz(axis=1) == 0).sum())  # these share one (zero) embedding
        extra["items_without_cooccurrence"] = isolated
    size = cfg.codebook_size or fitting_codebook(len(data.items), cfg.tokens_per_item)
    numbers = residual_kmeans(vectors, cfg.tokens_per_item, size, cfg.seed)
    codes = {
        item: tuple(level_token(lv, int(c)) for lv, c in enumerate(numbers[i]))
        for i, item in enumerate(data.items)
    }
    return SchemeResult(
        codes,
        {
            "embedding_source": source,
            "embedding_dim": int(vectors.shape[1]),
            "codebook_size": size,
            "items_without_text": len(texts) - with_text,
            **extra,
        },
    )


def tfidf_svd(texts: list[str], dim: int, seed: int) -> np.ndarray:
    """Unit-length TF-IDF + truncated SVD vectors of ``texts`` (word unigrams and bigrams)."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    try:
        matrix = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(texts)
    except ValueError as err:  # e.g. no word of two or more characters in any text
        raise ValueError(f"index: cannot build TF-IDF vectors of the item text ({err})") from None
    dim = min(dim, matrix.shape[1] - 1, matrix.shape[0] - 1)
    if dim < 1:
        vectors = matrix.toarray()
    else:
        vectors = TruncatedSVD(dim, random_state=seed).fit_transform(matrix)
    return unit_rows(vectors)


def embed_with_model(texts: list[str], directory: str, batch_size: int = 64) -> np.ndarray:
    """Mean-pooled, unit-length sentence embeddings from a local Hugging Face model."""
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModel, AutoTokenizer

    path = Path(directory)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"index.embedder: {directory!r} is not a model directory (no config.json there)"
        )
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    out = []
    with torch.no_grad():
        for start in tqdm(range(0, len(texts), batch_size), desc="embedding items", leave=False):
            batch = tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=128,
                return_tensors="pt",
            ).to(device)
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy())
    return np.concatenate(out)
