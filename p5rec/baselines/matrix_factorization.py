"""Biased matrix factorisation for rating prediction, trained with minibatch Adam in torch.

Prediction for user ``u`` and item ``i``::

    r_hat(u, i) = mu + b_u + b_i + p_u . q_i        (clipped to the rating range)

``mu`` is the mean training rating (fixed); biases and factors are learned by minimising
the mean over a minibatch of ``(r - r_hat)^2 + reg * (|p_u|^2 + |q_i|^2)
+ bias_reg * (b_u^2 + b_i^2)``, i.e. L2 applied per observed rating as in the classic
SGD formulation. With validation triples, validation RMSE is computed after every epoch,
the best epoch's parameters are kept and training stops after ``patience`` epochs without
improvement.

Unknown users or items (not in the training triples) fall back to what exists: an unknown
user gets ``mu + b_i``, an unknown item ``mu + b_u``, both unknown ``mu``; the factor
term is used only when both are known.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

__all__ = ["BiasedMF", "BiasedMFConfig"]


@dataclass
class BiasedMFConfig:
    """Hyper-parameters of :class:`BiasedMF`.

    Attributes:
        factors: latent dimension (0: biases only, ``mu + b_u + b_i``).
        lr: Adam learning rate.
        reg: L2 weight of the factor vectors, per observed rating.
        bias_reg: L2 weight of the biases, per observed rating.
        epochs: maximum passes over the training triples.
        batch_size: triples per step.
        init_std: standard deviation of the normal initialisation of the factors
            (biases start at 0).
        patience: with validation triples, stop after this many epochs without a lower
            validation RMSE (``None``: run all epochs; the best epoch is kept either way).
        rating_range: ``(low, high)`` predictions are clipped to; ``None``: the training
            minimum and maximum.
        seed: seeds initialisation and shuffling.
        progress: show a tqdm bar over epochs.
    """

    factors: int = 64
    lr: float = 2e-3
    reg: float = 0.1
    bias_reg: float = 0.01
    epochs: int = 100
    batch_size: int = 256
    init_std: float = 0.1
    patience: int | None = 5
    rating_range: tuple[float, float] | None = None
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.factors, int) or self.factors < 0:
            raise ValueError(
                f"BiasedMFConfig.factors must be an integer >= 0, got {self.factors!r}"
            )
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"BiasedMFConfig.{name} must be a positive integer, got {value!r}")
        if self.lr <= 0:
            raise ValueError(f"BiasedMFConfig.lr must be > 0, got {self.lr!r}")
        if self.reg < 0 or self.bias_reg < 0 or self.init_std < 0:
            raise ValueError("BiasedMFConfig.reg, bias_reg and init_std must be >= 0")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"BiasedMFConfig.patience must be >= 1 or None, got {self.patience!r}")
        if self.rating_range is not None and not self.rating_range[0] <= self.rating_range[1]:
            raise ValueError(
                f"BiasedMFConfig.rating_range must be (low, high), got {self.rating_range!r}"
            )


Triple = tuple[Hashable, Hashable, float]


def _check_triples(triples: Sequence[Triple], what: str) -> None:
    for n, t in enumerate(triples):
        if len(t) != 3:
            raise ValueError(f"BiasedMF: {what}[{n}] must be (user, item, rating), got {t!r}")
        if not isinstance(t[2], (int, float)) or not math.isfinite(t[2]):
            raise ValueError(f"BiasedMF: {what}[{n}] has a non-numeric rating {t[2]!r}")


class BiasedMF:
    """Biased matrix factorisation (see the module docstring).

    Example::

        mf = BiasedMF(BiasedMFConfig(factors=64)).fit(train_triples, valid=valid_triples)
        preds = mf.predict([(user, item), ...])

    Attributes set by :meth:`fit`: ``mu``, ``users``/``items`` (id -> row), ``low``/``high``
    (clipping range), ``history_`` (per epoch: ``epoch``, ``train_loss``, optionally
    ``valid_rmse``), ``best_epoch_`` and ``best_valid_rmse_``.
    """

    name = "biased_mf"

    def __init__(self, config: BiasedMFConfig | None = None) -> None:
        self.config = config or BiasedMFConfig()
        self.users: dict[Hashable, int] = {}
        self.items: dict[Hashable, int] = {}
        self.mu = 0.0
        self.low, self.high = -math.inf, math.inf
        self._params: dict[str, torch.Tensor] | None = None
        self.history_: list[dict] = []
        self.best_epoch_: int | None = None
        self.best_valid_rmse_: float | None = None

    def fit(self, train: Sequence[Triple], valid: Sequence[Triple] | None = None) -> BiasedMF:
        """Learn biases and factors from ``(user, item, rating)`` triples.

        Raises:
            ValueError: if ``train`` is empty or a triple is malformed.
        """
        cfg = self.config
        train = list(train)
        if not train:
            raise ValueError("BiasedMF.fit: train is empty (no (user, item, rating) triples)")
        _check_triples(train, "train")
        valid = list(valid) if valid else []
        _check_triples(valid, "valid")
        # sorted ids (by repr when ids of mixed types) so rows do not depend on input order
        self.users = {u: n for n, u in enumerate(sorted({t[0] for t in train}, key=repr))}
        self.items = {i: n for n, i in enumerate(sorted({t[1] for t in train}, key=repr))}
        ratings = np.asarray([float(t[2]) for t in train])
        self.mu = float(ratings.mean())
        if cfg.rating_range is None:
            self.low, self.high = float(ratings.min()), float(ratings.max())
        else:
            self.low, self.high = map(float, cfg.rating_range)
        u = torch.tensor([self.users[t[0]] for t in train])
        i = torch.tensor([self.items[t[1]] for t in train])
        r = torch.tensor(ratings, dtype=torch.float32)

        self.history_, self.best_epoch_, self.best_valid_rmse_ = [], None, None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            gen = torch.Generator().manual_seed(cfg.seed)
            k = cfg.factors
            p = {
                "bu": torch.zeros(len(self.users)),
                "bi": torch.zeros(len(self.items)),
                "pu": torch.randn(len(self.users), k) * cfg.init_std,
                "qi": torch.randn(len(self.items), k) * cfg.init_std,
            }
            for t in p.values():
                t.requires_grad_(True)
            self._params = p
            opt = torch.optim.Adam(p.values(), lr=cfg.lr)
            best, since = None, 0
            bar = tqdm(range(1, cfg.epochs + 1), desc="biased_mf", disable=not cfg.progress)
            for epoch in bar:
                order = torch.randperm(len(r), generator=gen)
                total = 0.0
                for lo in range(0, len(r), cfg.batch_size):
                    b = order[lo : lo + cfg.batch_size]
                    bu, bi, pu, qi = p["bu"][u[b]], p["bi"][i[b]], p["pu"][u[b]], p["qi"][i[b]]
                    err = r[b] - (self.mu + bu + bi + (pu * qi).sum(1))
                    loss = (
                        err.square()
                        + cfg.reg * (pu.square().sum(1) + qi.square().sum(1))
                        + cfg.bias_reg * (bu.square() + bi.square())
                    ).mean()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += loss.item() * len(b)
                row = {"epoch": epoch, "train_loss": total / len(r)}
                if valid:
                    score = self._rmse(valid)
                    row["valid_rmse"] = score
                    if self.best_valid_rmse_ is None or score < self.best_valid_rmse_:
                        self.best_valid_rmse_, self.best_epoch_ = score, epoch
                        best, since = copy.deepcopy({n: t.detach() for n, t in p.items()}), 0
                    else:
                        since += 1
                self.history_.append(row)
                bar.set_postfix({n: f"{v:.4f}" for n, v in row.items() if n != "epoch"})
                if valid and cfg.patience is not None and since >= cfg.patience:
                    break
            bar.close()
        self._params = {n: t.detach().clone() for n, t in (best or p).items()}
        return self

    def _rmse(self, triples: Sequence[Triple]) -> float:
        pred = np.asarray(self.predict([(t[0], t[1]) for t in triples]))
        true = np.asarray([float(t[2]) for t in triples])
        return float(np.sqrt(np.mean((pred - true) ** 2)))

    def predict(self, pairs: Sequence[tuple[Hashable, Hashable]]) -> list[float]:
        """Predicted ratings of ``(user, item)`` pairs, clipped to the rating range; unknown
        users or items fall back to the biases that exist (module docstring)."""
        if self._params is None:
            raise ValueError("BiasedMF is not fitted: call fit() first")
        p = {n: t.detach().numpy() for n, t in self._params.items()}
        nu = np.asarray([self.users.get(user, -1) for user, _ in pairs], dtype=np.int64)
        ni = np.asarray([self.items.get(item, -1) for _, item in pairs], dtype=np.int64)
        ku, ki = nu >= 0, ni >= 0
        value = np.full(len(nu), self.mu)
        value[ku] += p["bu"][nu[ku]]
        value[ki] += p["bi"][ni[ki]]
        both = ku & ki
        value[both] += (p["pu"][nu[both]] * p["qi"][ni[both]]).sum(1)
        return np.clip(value, self.low, self.high).tolist()

    @property
    def biases(self) -> tuple[dict[Hashable, float], dict[Hashable, float]]:
        """(user biases, item biases) by id."""
        if self._params is None:
            raise ValueError("BiasedMF is not fitted: call fit() first")
        bu, bi = self._params["bu"].tolist(), self._params["bi"].tolist()
        return {u: bu[n] for u, n in self.users.items()}, {i: bi[n] for i, n in self.items.items()}
