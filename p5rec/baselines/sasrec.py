"""SASRec: self-attentive sequential recommendation (Kang & McAuley, 2018), in torch.

A stack of causal self-attention blocks over a user's most recent items predicts, at every
position, the item that comes next. Output scores are dot products with the (shared) item
embedding table, so ranking the whole catalogue is one matrix product.

Architecture (documented choices):

* item embedding (row 0 is padding) plus a learned positional embedding. Positions count
  from the oldest item read (0 .. ``max_len - 1``), so with causal attention the output at
  position ``j`` of a training window is exactly what the model computes for a history made
  of the window's first ``j + 1`` items: training on every position is the same task as
  scoring a history. (Counting from the most recent item instead, as the original
  left-padded arrays do, trained measurably worse on Beauty.)
* the embedding sum is layer-normalised before dropout, so the blocks start from
  unit-scale inputs (without it, training on Beauty was several times slower to converge).
* ``layers`` pre-LN transformer blocks: ``x + Attn(LN(x))`` then ``x + FFN(LN(x))``, a
  final LayerNorm (``norm="post"`` gives the original Transformer's post-LN blocks,
  ``LN(x + Attn(x))`` then ``LN(x + FFN(x))``; it scored the same on Beauty); causal
  attention that never looks at padding; GELU feed-forward of width ``ffn``; dropout on the
  embeddings, the attention weights and both residual branches. Pre-LN trains stably at
  ``lr=1e-3`` without warm-up.
* Every position of a training window predicts its next item. A training sequence longer
  than ``max_len + 1`` is cut into consecutive windows (the last one ends at the
  sequence's end), so every training target is predicted exactly once per epoch.

Two losses:

* ``loss="bce"``: binary cross-entropy on the target's score against one negative per
  position, drawn uniformly from the catalogue items that are not in the user's training
  sequence (the original SASRec objective; the field's usual "SASRec" row).
* ``loss="ce"``: softmax cross-entropy over the whole catalogue (the strong variant).

Default dropout is 0.5 for ``ce`` and 0.2 for ``bce`` (``dropout=None``); these are the
values commonly used for each objective on the Amazon and MovieLens data sets.

Inputs are plain lists of item id strings, so the class is usable outside the task
framework. The item vocabulary is the sorted union of the ``items`` given at construction
and the items of the training sequences; catalogue items never seen in training keep
their (untrained) initial embeddings and are still ranked. Items of a history that are
not in the vocabulary are skipped.

Speed: full-catalogue scoring is batched under ``torch.no_grad``; the full-softmax loss
is computed in place (see ``_FullSoftmaxCE``). Torch's current thread count is used; on a
CPU shared with other work, ``torch.set_num_threads(1)`` was several times faster than two
threads in our runs.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

__all__ = ["LOSSES", "SASRec", "SASRecConfig"]

LOSSES = ("ce", "bce")
_DEFAULT_DROPOUT = {"ce": 0.5, "bce": 0.2}


@dataclass
class SASRecConfig:
    """Hyper-parameters of :class:`SASRec`.

    Attributes:
        hidden: embedding and hidden size.
        layers: number of self-attention blocks.
        heads: attention heads (``hidden`` must be divisible by it).
        ffn: width of the feed-forward layer of each block.
        norm: ``"pre"`` (LayerNorm before each sub-layer, plus a final one) or ``"post"``
            (LayerNorm after each residual sum, as in the original Transformer).
        dropout: dropout rate; ``None`` picks 0.5 for ``loss="ce"`` and 0.2 for ``"bce"``.
        max_len: the most recent items the model reads (longer histories are truncated).
        batch_size: training windows per step.
        lr: Adam learning rate.
        weight_decay: AdamW weight decay (0: plain Adam).
        epochs: maximum number of passes over the training windows.
        loss: ``"ce"`` (full softmax) or ``"bce"`` (one sampled negative per position).
        seed: seeds initialisation, batching, dropout and negative sampling.
        max_seconds: training time budget in seconds (checked after every step); ``None``
            for no limit.
        patience: with validation examples, stop after this many evaluations without an
            improvement of validation NDCG@10 (``None``: never stop early). The weights of
            the best evaluation are restored at the end either way.
        eval_every: evaluate on the validation examples every this many epochs.
        eval_batch_size: histories per forward pass when scoring.
        progress: show a tqdm bar over epochs.
        device: where the network trains and scores: ``"auto"`` (a CUDA GPU when one is
            available, else the CPU), or any torch device string.
    """

    hidden: int = 64
    layers: int = 2
    heads: int = 1
    ffn: int = 256
    norm: str = "pre"
    dropout: float | None = None
    max_len: int = 50
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    epochs: int = 200
    loss: str = "ce"
    seed: int = 0
    max_seconds: float | None = None
    patience: int | None = 10
    eval_every: int = 1
    eval_batch_size: int = 512
    progress: bool = True
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.norm not in ("pre", "post"):
            raise ValueError(f"SASRecConfig.norm must be 'pre' or 'post', got {self.norm!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"SASRecConfig.loss must be one of {LOSSES}, got {self.loss!r}")
        for name in ("hidden", "layers", "heads", "ffn", "max_len", "batch_size", "epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SASRecConfig.{name} must be a positive integer, got {value!r}")
        if self.eval_every < 1 or self.eval_batch_size < 1:
            raise ValueError("SASRecConfig.eval_every and eval_batch_size must be >= 1")
        if self.hidden % self.heads:
            raise ValueError(
                f"SASRecConfig.hidden ({self.hidden}) must be divisible by heads ({self.heads})"
            )
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"SASRecConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.lr <= 0:
            raise ValueError(f"SASRecConfig.lr must be > 0, got {self.lr!r}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"SASRecConfig.patience must be >= 1 or None, got {self.patience!r}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError(f"SASRecConfig.max_seconds must be > 0, got {self.max_seconds!r}")

    @property
    def torch_device(self) -> torch.device:
        """The device in effect (``device="auto"`` resolved)."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    @property
    def dropout_rate(self) -> float:
        """The dropout rate in effect (the per-loss default when ``dropout`` is None)."""
        return _DEFAULT_DROPOUT[self.loss] if self.dropout is None else self.dropout


class _Block(nn.Module):
    """Pre-LN block: ``x + Attn(LN(x))``, then ``x + FFN(LN(x))``; post-LN block:
    ``LN(x + Attn(x))``, then ``LN(x + FFN(x))``."""

    def __init__(self, d: int, heads: int, ffn: int, p: float, post_ln: bool = False) -> None:
        super().__init__()
        self.heads, self.p, self.post_ln = heads, p, post_ln
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ff1, self.ff2 = nn.Linear(d, ffn), nn.Linear(ffn, d)
        self.drop = nn.Dropout(p)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = x if self.post_ln else self.ln1(x)
        q, k, v = self.qkv(h).view(b, n, 3, self.heads, d // self.heads).unbind(2)
        att = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            attn_mask=mask,
            dropout_p=self.p if self.training else 0.0,
        )
        x = x + self.drop(self.out(att.transpose(1, 2).reshape(b, n, d)))
        if self.post_ln:
            x = self.ln1(x)
            return self.ln2(x + self.drop(self.ff2(self.drop(F.gelu(self.ff1(x))))))
        return x + self.drop(self.ff2(self.drop(F.gelu(self.ff1(self.ln2(x))))))


class _Net(nn.Module):
    def __init__(self, n_items: int, cfg: SASRecConfig) -> None:
        super().__init__()
        d, p = cfg.hidden, cfg.dropout_rate
        self.max_len = cfg.max_len
        self.post_ln = cfg.norm == "post"
        self.item = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.pos = nn.Embedding(cfg.max_len, d)
        self.emb_ln = nn.LayerNorm(d)
        self.drop = nn.Dropout(p)
        self.blocks = nn.ModuleList(
            _Block(d, cfg.heads, cfg.ffn, p, cfg.norm == "post") for _ in range(cfg.layers)
        )
        self.ln = nn.LayerNorm(d)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            self.item.weight[0].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, L, hidden) of left-padded item ids ``seq`` (B, L)."""
        n = seq.shape[1]
        keep = seq > 0
        pos = (keep.cumsum(1) - 1).clamp(min=0)  # 0 for the oldest item read
        x = self.drop(self.emb_ln(self.item(seq) + self.pos(pos))) * keep.unsqueeze(-1)
        eye = torch.eye(n, dtype=torch.bool, device=seq.device)
        causal = torch.ones(n, n, dtype=torch.bool, device=seq.device).tril()
        # attend to earlier real items; every position may attend to itself, so a padded
        # query never has an empty row (its output is ignored)
        mask = ((causal & keep.unsqueeze(1)) | eye).unsqueeze(1)
        for block in self.blocks:
            x = block(x, mask)
        return x if self.post_ln else self.ln(x)


class _FullSoftmaxCE(torch.autograd.Function):
    """Mean cross-entropy of ``softmax(h @ table.T)`` against ``targets``, computed in
    place on one (positions, items) buffer. Same value and gradients as
    ``F.cross_entropy(h @ table.T, targets)``, with fewer passes over the largest tensor
    (the full-catalogue logits), which dominates training time on CPU."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, table: torch.Tensor, targets: torch.Tensor):
        z = h @ table.T
        top = z.max(1, keepdim=True).values
        z.sub_(top).exp_()
        total = z.sum(1, keepdim=True)
        z.div_(total)  # z is now the softmax
        picked = (h * table[targets]).sum(1)
        ctx.save_for_backward(h, table, targets, z)
        return (total.log().squeeze(1) + top.squeeze(1) - picked).mean()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        h, table, targets, z = ctx.saved_tensors
        z[torch.arange(len(targets)), targets] -= 1
        z.mul_(grad / len(targets))
        return z @ table, z.T @ h, None


def _left_pad(rows: Sequence[Sequence[int]], width: int) -> np.ndarray:
    out = np.zeros((len(rows), width), dtype=np.int64)
    for r, row in enumerate(rows):
        if len(row):
            out[r, width - len(row) :] = row
    return out


class SASRec:
    """SASRec next-item recommender (see the module docstring for the model).

    Example::

        model = SASRec(SASRecConfig(loss="ce", epochs=50), items=catalogue)
        model.fit(train_sequences, valid=[(history, target), ...])
        top10 = model.rank(histories, k=10)

    Attributes set by :meth:`fit`: ``history_`` (one dict per epoch: ``epoch``, ``loss``,
    ``seconds`` and, when evaluated, ``valid_ndcg10``), ``best_epoch_`` and
    ``best_valid_ndcg10_`` (with validation data), ``stop_reason_`` and ``train_seconds_``.
    """

    name = "sasrec"

    def __init__(self, config: SASRecConfig | None = None, items: Iterable[str] | None = None):
        self.config = config or SASRecConfig()
        self._given_items = sorted(set(items)) if items is not None else []
        self.items: list[str] = list(self._given_items)
        self.item_index: dict[str, int] = {}  # item id -> row of the embedding table (>= 1)
        self.net: _Net | None = None
        self.history_: list[dict] = []
        self.best_epoch_: int | None = None
        self.best_valid_ndcg10_: float | None = None
        self.stop_reason_ = ""
        self.train_seconds_ = 0.0

    # ------------------------------------------------------------------ training data

    def _windows(self, seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """(windows, owner): left-padded id windows of up to ``max_len + 1`` items (every
        item after the window's first is a target of the items before it), and the index of
        the sequence each came from."""
        m = self.config.max_len
        rows, owner = [], []
        for u, seq in enumerate(seqs):
            end = len(seq)
            while end >= 2:
                rows.append(seq[max(0, end - m - 1) : end])
                owner.append(u)
                end -= m
        return _left_pad(rows, m + 1), np.asarray(owner, dtype=np.int64)

    def _batches(self, lengths: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        """Shuffled batches of window indices; windows of similar length share a batch
        (sorted within groups of 32 batches) so less padding is computed."""
        bs = self.config.batch_size
        order = rng.permutation(len(lengths))
        group = bs * 32
        batches = []
        for lo in range(0, len(order), group):
            chunk = order[lo : lo + group]
            chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
            batches.extend(chunk[i : i + bs] for i in range(0, len(chunk), bs))
        return [batches[i] for i in rng.permutation(len(batches))]

    def _negatives(
        self,
        targets: torch.Tensor,
        owners: torch.Tensor,
        user_items: torch.Tensor,
        full: torch.Tensor,
        gen: torch.Generator,
    ) -> torch.Tensor:
        """One uniform negative per target, not among its user's training items (users
        who have every item get an unrestricted draw)."""
        n = len(self.items)
        neg = torch.randint(1, n + 1, targets.shape, generator=gen)
        own = user_items[owners]  # (P, S) the user's items, 0-padded
        for _ in range(1000):
            bad = (own == neg.unsqueeze(1)).any(1) & ~full[owners]
            if not bad.any():
                break
            neg[bad] = torch.randint(1, n + 1, (int(bad.sum()),), generator=gen)
        return neg

    # ------------------------------------------------------------------ fit

    def fit(
        self,
        train_sequences: Sequence[Sequence[str]],
        valid: Sequence[tuple[Sequence[str], str]] | None = None,
    ) -> SASRec:
        """Train on each user's training sequence (oldest first).

        Args:
            train_sequences: one sequence per user, the training portion only (for the
                leave-one-out protocol, s1..s(n-2)); every item from the second on is a
                training target predicted from the items before it.
            valid: optional ``(history, target)`` examples; NDCG@10 over the full
                catalogue (history not removed) is computed every ``eval_every`` epochs,
                drives early stopping, and the best weights are kept.

        Raises:
            ValueError: if there is no sequence with at least two items.
        """
        cfg = self.config
        seqs = [list(s) for s in train_sequences]
        for n, s in enumerate(seqs):
            if any(not isinstance(i, str) for i in s):
                raise ValueError(f"SASRec.fit: train_sequences[{n}] must hold item id strings")
        if not any(len(s) >= 2 for s in seqs):
            raise ValueError(
                "SASRec.fit: train_sequences is empty or has no sequence with at least two "
                "items (nothing to predict)"
            )
        self.items = sorted(set(self._given_items).union(*map(set, seqs)))
        self.item_index = {item: n + 1 for n, item in enumerate(self.items)}
        ids = [[self.item_index[i] for i in s] for s in seqs]
        windows, owners = self._windows(ids)
        lengths = (windows > 0).sum(1)
        width = max((len(set(s)) for s in ids), default=1)
        user_items = torch.from_numpy(_left_pad([sorted(set(s)) for s in ids], width))
        full = torch.tensor([len(set(s)) >= len(self.items) for s in ids])
        windows_t = torch.from_numpy(windows)
        owners_t = torch.from_numpy(owners)

        self.history_ = []
        self.best_epoch_ = self.best_valid_ndcg10_ = None
        start = time.perf_counter()
        device = cfg.torch_device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(cfg.seed)
            gen = torch.Generator().manual_seed(cfg.seed + 1)
            rng = np.random.default_rng(cfg.seed)
            self.net = _Net(len(self.items), cfg).to(device)
            opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            best_state, since_best, stop = None, 0, "epochs"
            bar = tqdm(range(1, cfg.epochs + 1), desc="sasrec", disable=not cfg.progress)
            for epoch in bar:
                self.net.train()
                total, count = torch.zeros((), device=device), 0
                for batch in self._batches(lengths, rng):
                    width_b = int(lengths[batch].max())
                    win = windows_t[batch, -width_b:].to(device)
                    inp, tgt = win[:, :-1], win[:, 1:]
                    keep = inp > 0  # a target needs a real item before it
                    h = self.net(inp)[keep]
                    tgt = tgt[keep]
                    if cfg.loss == "ce":
                        loss = _FullSoftmaxCE.apply(h, self.net.item.weight[1:], tgt - 1)
                    else:
                        own = owners_t[batch].unsqueeze(1).expand_as(keep)[keep.cpu()]
                        neg = self._negatives(tgt.cpu(), own, user_items, full, gen).to(device)
                        pos_logit = (h * self.net.item(tgt)).sum(-1)
                        neg_logit = (h * self.net.item(neg)).sum(-1)
                        loss = F.binary_cross_entropy_with_logits(
                            pos_logit, torch.ones_like(pos_logit)
                        ) + F.binary_cross_entropy_with_logits(
                            neg_logit, torch.zeros_like(neg_logit)
                        )
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += loss.detach() * len(tgt)  # no device sync per step
                    count += len(tgt)
                    if (
                        cfg.max_seconds is not None
                        and time.perf_counter() - start > cfg.max_seconds
                    ):
                        stop = "max_seconds"
                        break
                row = {"epoch": epoch, "loss": total.item() / max(count, 1)}
                last = stop == "max_seconds" or epoch == cfg.epochs
                if valid and (epoch % cfg.eval_every == 0 or last):
                    ndcg = self._valid_ndcg10(valid)
                    row["valid_ndcg10"] = ndcg
                    if self.best_valid_ndcg10_ is None or ndcg > self.best_valid_ndcg10_:
                        self.best_valid_ndcg10_, self.best_epoch_ = ndcg, epoch
                        best_state = copy.deepcopy(self.net.state_dict())
                        since_best = 0
                    else:
                        since_best += 1
                row["seconds"] = time.perf_counter() - start
                self.history_.append(row)
                bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k != "epoch"})
                if stop == "max_seconds":
                    break
                if cfg.patience is not None and since_best >= cfg.patience:
                    stop = "patience"
                    break
            bar.close()
        if best_state is not None:
            self.net.load_state_dict(best_state)
        self.net.eval()
        self.stop_reason_ = stop
        self.train_seconds_ = time.perf_counter() - start
        return self

    def _valid_ndcg10(self, valid: Sequence[tuple[Sequence[str], str]]) -> float:
        ranked = self.rank([h for h, _ in valid], 10)
        total = 0.0
        for top, (_, target) in zip(ranked, valid):
            if target in top:
                total += 1.0 / math.log2(top.index(target) + 2)
        return total / len(valid)

    # ------------------------------------------------------------------ inference

    def _check_fitted(self) -> _Net:
        if self.net is None:
            raise ValueError("SASRec is not fitted: call fit() first")
        return self.net

    def _encode(self, histories: Sequence[Sequence[str]]) -> list[list[int]]:
        m = self.config.max_len
        out = []
        for h in histories:
            if isinstance(h, str):
                raise ValueError("SASRec: each history must be a sequence of item ids, not a str")
            ids = [self.item_index[i] for i in h if i in self.item_index]
            out.append(ids[-m:])
        return out

    @torch.no_grad()
    def _user_vectors(self, histories: Sequence[Sequence[str]]) -> Iterable[torch.Tensor]:
        """Last-position hidden states, one (batch, hidden) tensor per eval batch."""
        net = self._check_fitted()
        net.eval()
        ids = self._encode(histories)
        bs = self.config.eval_batch_size
        for lo in range(0, len(ids), bs):
            rows = ids[lo : lo + bs]
            width = max(1, max(len(r) for r in rows))
            seq = torch.from_numpy(_left_pad(rows, width)).to(self.config.torch_device)
            yield net(seq)[:, -1]

    @torch.no_grad()
    def scores(self, histories: Sequence[Sequence[str]]) -> np.ndarray:
        """(len(histories), len(self.items)) scores of every vocabulary item, column ``j``
        for ``self.items[j]``."""
        net = self._check_fitted()
        table = net.item.weight[1:]
        parts = [(h @ table.T).cpu().numpy() for h in self._user_vectors(histories)]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.items)), np.float32)

    @torch.no_grad()
    def rank(
        self,
        histories: Sequence[Sequence[str]],
        k: int,
        exclude: Sequence[Iterable[str]] | None = None,
    ) -> list[list[str]]:
        """Top ``k`` vocabulary items for each history, best first, without duplicates.

        Args:
            histories: each user's items, oldest first (only the last ``max_len`` are read;
                items outside the vocabulary are skipped).
            k: list length; lists are shorter only when fewer items remain.
            exclude: optional per-history item sets left out of that list (e.g. the user's
                past items for S3-Rec-style full-sort evaluation).
        """
        net = self._check_fitted()
        if k < 1:
            raise ValueError(f"SASRec.rank: k must be >= 1, got {k}")
        if exclude is not None and len(exclude) != len(histories):
            raise ValueError(
                f"SASRec.rank: exclude has {len(exclude)} entries for {len(histories)} histories"
            )
        table = net.item.weight[1:]
        out: list[list[str]] = []
        lo = 0
        for h in self._user_vectors(histories):
            s = h @ table.T
            if exclude is not None:
                for r in range(len(s)):
                    drop = [self.item_index[i] - 1 for i in exclude[lo + r] if i in self.item_index]
                    if drop:
                        s[r, drop] = -math.inf
            kk = min(k, s.shape[1])
            vals, idx = torch.topk(s, kk, dim=1)
            for v_row, i_row in zip(vals.tolist(), idx.tolist()):
                out.append([self.items[i] for v, i in zip(v_row, i_row) if v != -math.inf])
            lo += len(s)
        return out

    @torch.no_grad()
    def score(
        self, histories: Sequence[Sequence[str]], candidates: Sequence[Sequence[str]]
    ) -> list[list[float]]:
        """Scores of each history's candidate items (candidate ranking); a candidate outside
        the vocabulary scores ``-inf``."""
        net = self._check_fitted()
        if len(candidates) != len(histories):
            raise ValueError(
                f"SASRec.score: {len(candidates)} candidate lists for {len(histories)} histories"
            )
        out: list[list[float]] = []
        lo = 0
        for h in self._user_vectors(histories):
            for r in range(len(h)):
                cands = candidates[lo + r]
                idx = torch.tensor([self.item_index.get(i, 0) for i in cands], dtype=torch.long)
                vals = (net.item.weight[idx.to(h.device)] @ h[r]).tolist()
                out.append([v if j else -math.inf for v, j in zip(vals, idx.tolist())])
            lo += len(h)
        return out
