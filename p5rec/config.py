"""Typed experiment configuration: one frozen dataclass per concern.

An experiment config loads from YAML, takes ``key.sub=value`` overrides from the command
line, rejects unknown keys (naming the valid ones) and is written into every run directory
as ``config.yaml``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "ExperimentConfig",
    "IndexConfig",
    "ModelConfig",
    "TasksConfig",
    "TokenizerConfig",
    "TrainConfig",
    "apply_overrides",
    "config_hash",
    "from_dict",
    "load_config",
    "save_config",
    "to_dict",
]

FAMILIES = (
    "next_item",
    "candidate_ranking",
    "rating",
    "category",
    "sentiment",
    "explanation",
)


class ConfigError(ValueError):
    """A configuration value or key is invalid."""


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and seed of the embedded synthetic demo corpus."""

    num_users: int = 300
    num_items: int = 240
    num_groups: int = 8
    min_length: int = 8
    max_length: int = 18
    seed: int = 7

    def __post_init__(self) -> None:
        _check(self.num_users >= 2, "synthetic.num_users must be >= 2")
        _check(self.num_groups >= 2, "synthetic.num_groups must be >= 2")
        _check(
            self.num_items >= 2 * self.num_groups,
            "synthetic.num_items must be at least twice synthetic.num_groups",
        )
        _check(5 <= self.min_length <= self.max_length, "need 5 <= min_length <= max_length")


@dataclass(frozen=True)
class DataConfig:
    """Where the processed dataset comes from and how it is split (see PROTOCOLS.md)."""

    path: str | None = None
    max_history: int = 20
    num_candidates: int = 100
    review_split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    category_split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    exclude_holdout_from_reviews: bool = True
    split_seed: int = 2024
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def __post_init__(self) -> None:
        _check(self.max_history >= 1, "data.max_history must be >= 1")
        _check(
            self.num_candidates >= 2, "data.num_candidates must be >= 2 (1 positive + negatives)"
        )
        for name in ("review_split", "category_split"):
            ratios = getattr(self, name)
            _check(
                len(ratios) == 3 and all(r >= 0 for r in ratios) and abs(sum(ratios) - 1) < 1e-6,
                f"data.{name} must be three non-negative ratios summing to 1, got {ratios}",
            )


@dataclass(frozen=True)
class IndexConfig:
    """How items become token sequences (see ``p5rec.indexing``).

    ``scheme``: random | atomic | sequential | collaborative | semantic.
    ``tokens_per_item``: code length of random and semantic codes; for collaborative codes,
    the length the automatic cluster count aims at.
    ``codebook_size``: tokens per level (random, semantic), clusters per split
    (collaborative), number base (sequential); 0 picks one that fits the catalogue.
    ``leaf_size``: collaborative clusters at most this large are not split (0: codebook size).
    ``suffix``: append each item's own token, making every code unique (CID+IID, SemID+IID).
    ``embedder``: a local sentence-embedding model directory for semantic codes from text.
    ``semantic_source``: auto | text | collaborative (auto: text when items have any).
    ``embedding_dim``: dimensions of semantic embeddings (SVD, spectral); also caps the
    eigenvectors a collaborative split computes.
    """

    scheme: str = "random"
    tokens_per_item: int = 2
    codebook_size: int = 0
    leaf_size: int = 0
    suffix: bool = False
    embedder: str | None = None
    semantic_source: str = "auto"
    embedding_dim: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        _check(1 <= self.tokens_per_item <= 26, "index.tokens_per_item must be in 1..26")
        _check(
            self.codebook_size == 0 or self.codebook_size >= 2,
            "index.codebook_size must be 0 (automatic) or >= 2",
        )
        _check(self.leaf_size >= 0, "index.leaf_size must be >= 0 (0 = codebook size)")
        _check(self.embedding_dim >= 1, "index.embedding_dim must be >= 1")
        _check(
            self.semantic_source in ("auto", "text", "collaborative"),
            "index.semantic_source must be auto, text or collaborative",
        )
        _check(
            not (self.suffix and self.scheme == "atomic"),
            "index.suffix: atomic codes are already one token per item",
        )


@dataclass(frozen=True)
class TokenizerConfig:
    """A local tokenizer directory, or a SentencePiece model trained on the corpus text.

    With ``model.name_or_path`` set and no ``path``, the checkpoint's own tokenizer is used.
    """

    path: str | None = None
    vocab_size: int = 1000

    def __post_init__(self) -> None:
        _check(self.vocab_size >= 50, "tokenizer.vocab_size must be >= 50")


ARCHITECTURES = ("t5", "llama", "qwen2")


@dataclass(frozen=True)
class ModelConfig:
    """The backbone: built from these sizes, or loaded from ``name_or_path``.

    ``arch``: t5 (encoder-decoder) | llama | qwen2 (decoder-only), for a model built from
    the sizes. A checkpoint (a local directory, or a hub name where there is internet)
    brings its own architecture, T5-family or causal LM.
    ``finetune``: full | lora. LoRA trains adapters on ``lora_target_modules`` (empty:
    peft's default modules for the architecture, e.g. q,v for T5, q_proj,v_proj for
    Llama/Qwen) plus the item-token rows of the embedding; everything else stays frozen.
    ``dropout``: T5's dropout (every sub-layer); for a decoder-only model built from sizes,
    the attention weights' dropout. ``hidden_dropout`` (decoder-only): dropout on the token
    embeddings and on the attention and MLP outputs of every layer before they join the
    residual stream (GPT-2's embedding and residual dropout), during training only.
    """

    name_or_path: str | None = None
    arch: str = "t5"
    d_model: int = 128
    d_ff: int = 256
    d_kv: int = 32
    num_heads: int = 4
    num_kv_heads: int = 0  # decoder-only: key/value heads (0: num_heads)
    num_layers: int = 2
    num_decoder_layers: int = 2  # T5 only
    dropout: float = 0.1
    hidden_dropout: float = 0.0  # decoder-only: embeddings and residual branches
    finetune: str = "full"  # "full" or "lora"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check(self.arch in ARCHITECTURES, f"model.arch must be one of {list(ARCHITECTURES)}")
        _check(self.finetune in ("full", "lora"), "model.finetune must be 'full' or 'lora'")
        _check(
            self.finetune == "full" or self.name_or_path is not None,
            "model.finetune=lora needs a pretrained model.name_or_path (LoRA on randomly "
            "initialised weights would freeze them)",
        )
        _check(self.d_model > 0 and self.num_layers > 0, "model sizes must be positive")
        _check(self.num_heads >= 1 and self.num_kv_heads >= 0, "model heads must be positive")
        _check(
            self.num_kv_heads == 0 or self.num_heads % self.num_kv_heads == 0,
            "model.num_heads must be a multiple of model.num_kv_heads",
        )
        _check(0 <= self.dropout < 1, "model.dropout must be in [0, 1)")
        _check(0 <= self.hidden_dropout < 1, "model.hidden_dropout must be in [0, 1)")
        _check(
            self.hidden_dropout == 0 or self.arch != "t5" or self.name_or_path is not None,
            "model.hidden_dropout is for decoder-only models (llama, qwen2); T5's "
            "model.dropout already covers its embeddings and residual branches",
        )
        _check(self.lora_r >= 1, "model.lora_r must be >= 1")


USER_TEXTS = ("id", "generic", "token")
RATING_TEXTS = ("digits", "token")
RATED_HISTORIES = ("recent", "similar", "neighbours")


@dataclass(frozen=True)
class TasksConfig:
    """Which task families train together, and how they share each epoch and the loss.

    ``mixture``: a family's share of ``train.samples_per_epoch`` (default 1 each); when
    that is 0, the share scales the family's own example count (0.5: half of them).
    ``samples``: examples per epoch for a family, overriding its share (a family with
    millions of examples cannot drown a small one).
    ``loss_weights``: the alpha of each family in the joint loss (default 1).
    ``balancing``: fixed (the alpha weights only) | uncertainty (Kendall et al. 2018: each
    family's loss also scaled by a learned exp(-s), plus s/2).
    ``template_noise``: the probability that a word of a training template's own text is
    dropped or replaced by a random vocabulary word (``Template.render_noisy``), for
    robustness to unseen wording; 0 renders templates as written.
    ``template_noise_max``: > 0: each training example draws its noise rate uniformly
    between ``template_noise`` and this, so that some prompts keep their wording and others
    lose most of it, as an unseen template shares few words with the seen ones; 0: every
    example uses ``template_noise``.
    ``noise_ranges``: a family's own noise rates, ``[low, high]``: each of its training
    examples draws its rate uniformly between them, in place of ``template_noise`` and
    ``template_noise_max`` (e.g. ``{candidate_ranking: [0.0, 0.8]}``: wide noise for the
    one family whose unseen template is far from its seen ones); a family not trained
    ignores its entry.
    ``template_insert``: the probability that a kept word of a training template's own text
    is followed by an extra random vocabulary word, for robustness to unseen templates
    that say more than the seen ones (unfamiliar words around the placeholders and just
    before the answer); 0: no insertions.
    ``template_tail``: the probability that a training template's source ends with an
    extra sentence of 2 to 6 random vocabulary words, for robustness to unseen templates
    that close with an instruction of their own ("Answer with its category."), just
    before the answer; 0: none.
    ``template_shuffle``: the probability that a training template's segments (each
    placeholder with the text before it) are put in random order, for robustness to unseen
    templates that ask for the same inputs in another order.
    ``max_review_words``: a longer review placeholder keeps its first and last words
    (``TaskContext.review_text``), so the prompt around it fits ``train.max_source_length``;
    0 shows reviews whole.
    ``balance_labels``: families with a class-balanced decision (sentiment) draw each
    epoch's examples in equal numbers per label, so a rare class gets as much training as a
    frequent one; their decision is then the plain most probable label.
    ``user_text``: how the ``{user}`` placeholder renders: ``id`` (the dataset's user
    ID), ``generic`` ("the user" for everyone) or ``token`` (each user of the training
    data has a token of their own, ``<user_ID>``, added to the tokenizer like the item
    tokens; a user unknown to the training data is "the user"). A model trained from
    scratch cannot read anything from an ID string (each one occurs only in that user's
    examples, and a reviewer ID such as A00414041RD0BXM6WK0GX is some twenty tokens of
    noise); a user token is one learned embedding per user, as matrix factorisation has.
    ``rating_text``: how the rating means and counts of ``{user_ratings}`` and
    ``{item_ratings}`` render: ``digits`` ("average 4.2 of 12 ratings") or ``token`` (one
    added token per mean, to a tenth of a star, and per count bucket: "average <avg_4.2>
    of <ratings_10-14> ratings"). A model trained from scratch reads a digit string slowly
    (the value hangs on the digit after the point); a value token is one learned embedding,
    as a feature of a regression is one weight.
    ``rated_history``: which of the user's training-split ratings ``{rated_history}`` shows
    (at most ``data.max_history``): ``recent`` (those before the event, latest last) or
    ``similar`` (those of the items whose sets of training-split raters overlap the
    prompt item's most by cosine, most alike first, chosen from all the user's training
    ratings but the event's own, later ones included as in ``{user_ratings}``;
    ``TaskContext.similar_rated``). Recent ratings tell the model the user's level, which
    their mean already says; ratings of similar items tell it how this user rates items of
    this kind, the neighbourhood that item-based collaborative filtering predicts from.
    ``neighbours``: ``similar``'s ratings, then the prompt item's training-split ratings by
    the users whose sets of rated items overlap the user's most (``TaskContext.
    neighbour_ratings``, most alike first), the user-based neighbourhood beside the
    item-based one.
    ``family_tokens``: every prompt starts with its family's own added token
    (``<task_next_item>``, ``<task_rating>``, ...; ``p5rec.tasks.base.family_token``), so
    the model is told which task it answers and the words around the fields only have to
    be read, not decoded into a task. Whoever renders a prompt names its family (training,
    evaluation, the assistant's detected or given task). Off: the task must be inferred
    from the wording alone, which an unseen template can confuse (an unseen explanation
    prompt that asks how a user "feels" answered with a sentiment label).
    ``templates``: the seen template ids a family trains on (default: all its seen
    templates); the list must include the family's first seen template, the one seen-split
    evaluation uses (``p5rec.training.mixture.training_templates`` checks the ids). A
    family not trained ignores its entry, so a config's choice survives an override of
    ``tasks.families``.
    """

    families: tuple[str, ...] = FAMILIES
    mixture: dict[str, float] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    loss_weights: dict[str, float] = field(default_factory=dict)
    balancing: str = "fixed"
    template_noise: float = 0.0
    template_noise_max: float = 0.0
    noise_ranges: dict[str, tuple[float, ...]] = field(default_factory=dict)
    template_insert: float = 0.0
    template_tail: float = 0.0
    template_shuffle: float = 0.0
    max_review_words: int = 128
    balance_labels: bool = False
    user_text: str = "id"
    rating_text: str = "digits"
    rated_history: str = "recent"
    family_tokens: bool = False
    templates: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(0 <= self.template_noise < 1, "tasks.template_noise must be in [0, 1)")
        _check(
            self.template_noise_max == 0 or self.template_noise <= self.template_noise_max < 1,
            "tasks.template_noise_max must be 0 (off) or in [tasks.template_noise, 1)",
        )
        for family, bounds in self.noise_ranges.items():
            _check(family in FAMILIES, f"tasks.noise_ranges: unknown family {family!r}")
            _check(
                len(bounds) == 2 and 0 <= bounds[0] <= bounds[1] < 1,
                f"tasks.noise_ranges.{family} must be [low, high] with 0 <= low <= high < 1, "
                f"got {list(bounds)}",
            )
        _check(0 <= self.template_insert < 1, "tasks.template_insert must be in [0, 1)")
        _check(0 <= self.template_tail <= 1, "tasks.template_tail must be in [0, 1]")
        _check(0 <= self.template_shuffle <= 1, "tasks.template_shuffle must be in [0, 1]")
        _check(self.max_review_words >= 0, "tasks.max_review_words must be >= 0")
        unknown = [f for f in self.families if f not in FAMILIES]
        _check(not unknown, f"tasks.families: unknown {unknown}; known: {list(FAMILIES)}")
        _check(len(self.families) > 0, "tasks.families must name at least one family")
        _check(len(set(self.families)) == len(self.families), "tasks.families has duplicates")
        for name in ("mixture", "samples", "loss_weights"):
            values = getattr(self, name)
            extra = [f for f in values if f not in self.families]
            _check(not extra, f"tasks.{name} names families not trained: {extra}")
            _check(all(v > 0 for v in values.values()), f"tasks.{name} must be positive")
        unknown = [f for f in self.templates if f not in FAMILIES]
        _check(not unknown, f"tasks.templates: unknown families {unknown}")
        for family, ids in self.templates.items():
            _check(len(ids) > 0, f"tasks.templates.{family} must name at least one template")
            repeated = sorted({i for i in ids if ids.count(i) > 1})
            _check(not repeated, f"tasks.templates.{family} repeats {repeated}")
        _check(self.user_text in USER_TEXTS, f"tasks.user_text must be one of {USER_TEXTS}")
        _check(self.rating_text in RATING_TEXTS, f"tasks.rating_text must be one of {RATING_TEXTS}")
        _check(
            self.rated_history in RATED_HISTORIES,
            f"tasks.rated_history must be one of {RATED_HISTORIES}",
        )
        _check(
            self.balancing in ("fixed", "uncertainty"),
            "tasks.balancing must be fixed or uncertainty",
        )

    def noise_range(self, family: str) -> tuple[float, float | None]:
        """(low, high) template-noise rate of a family's training examples, each drawing
        its rate between them; high None: every example at low."""
        if family in self.noise_ranges:
            return tuple(self.noise_ranges[family])
        return self.template_noise, self.template_noise_max or None

    @property
    def noisy(self) -> bool:
        """Whether any training template is rendered with noise, insertions or tails."""
        return (
            bool(self.template_insert)
            or bool(self.template_tail)
            or any(any(self.noise_range(f)) for f in self.families)
        )

    def share(self, family: str) -> float:
        return float(self.mixture.get(family, 1.0))

    def loss_weight(self, family: str) -> float:
        return float(self.loss_weights.get(family, 1.0))


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, validation, checkpointing and logging.

    Steps are optimizer steps (``grad_accum_steps`` batches of ``batch_size`` per process).
    ``select_metric``: ``loss`` (validation loss, lower is better), ``loss/FAMILY`` or
    ``FAMILY/METRIC`` such as ``next_item/ndcg@10`` (RMSE, MAE and losses lower, everything
    else higher), or a list of them: a validation is then better than the best so far when
    its metrics' mean relative change is positive (p5rec.training.selection). The best
    checkpoint becomes the run's model, and ``patience`` validations without improvement
    stop training (0: never stop early).
    """

    epochs: int = 10
    max_steps: int = 0  # > 0: train this many steps instead of ``epochs`` epochs
    # > 0: a time budget. Training stops at the first log point past it, validates and keeps
    # the best model so far; the learning-rate schedule still spans the planned steps.
    max_minutes: float = 0.0
    samples_per_epoch: int = 0  # 0: one pass over every family's examples (times its share)
    batch_size: int = 32
    grad_accum_steps: int = 1
    lr: float = 1e-3
    # Learning-rate multiplier for the token embeddings. A model trained from scratch starts
    # with unit-scale embeddings that AdamW moves by about ``lr`` per step; a larger rate
    # lets item tokens find their place within a short CPU run. Use 1 for pretrained models.
    # (Full fine-tuning only: under LoRA the item rows train at ``lr``.)
    embedding_lr_scale: float = 1.0
    # The embedding rows that rate applies to: all | added (only the tokens the run adds:
    # items, users, rating values, family tokens; the vocabulary's own rows train at ``lr``,
    # p5rec.training.row_rates)
    embedding_lr_rows: str = "all"
    weight_decay: float = 0.01
    scheduler: str = "linear"  # linear | cosine | constant (after warmup)
    warmup_ratio: float = 0.05
    max_grad_norm: float = 1.0
    # > 0: validate and keep as the best model an exponential moving average of the
    # trainable weights with this decay (0.999: about the last 1000 steps; see
    # p5rec.training.averaging), less noisy than the last step's weights.
    ema_decay: float = 0.0
    mixed_precision: str = "auto"  # auto (bf16 on a GPU that has it) | no | bf16 | fp16
    length_bucketing: bool = True
    # Decoder-only models: also supervise the item tokens of a next-item example's history
    # after its first token (each predicted from the prompt and the items before it), as
    # SASRec supervises every position, instead of the target item alone.
    history_loss: bool = False
    # With history_loss: a user's longest training prefix already supervises every earlier
    # target, so train each next-item user on that prefix alone (and, for a sequence longer
    # than data.max_history, on the windows of max_history items before it): every training
    # target once per pass over the examples, as SASRec trains, instead of every prefix.
    history_windows: bool = False
    # > 0: add this weight times the squared error of the expected value (the rating
    # family's score tokens) to the cross-entropy (p5rec.training.expectation)
    expectation_loss: float = 0.0
    max_source_length: int = 512
    max_target_length: int = 32
    eval_every: int = 0  # steps between validations (0: after every epoch)
    eval_examples: int = 200  # validation examples per family (0: all)
    eval_families: tuple[str, ...] = ()  # families scored at validation (empty: all trained)
    select_metric: tuple[str, ...] = ("loss",)
    patience: int = 0
    checkpoint_every: int = 0  # steps between checkpoints (0: after every epoch)
    keep_checkpoints: int = 2
    log_every: int = 10  # steps between training-log lines
    num_workers: int = 0  # DataLoader workers that tokenise batches
    tensorboard: bool = True  # log through accelerate's TensorBoard tracker when installed
    export: str = "merged"  # LoRA runs: merged weights or the adapter in RUN/model
    seed: int = 42
    resume: bool = False

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, "train.epochs must be >= 1")
        _check(
            self.history_loss or not self.history_windows,
            "train.history_windows needs train.history_loss (the windows supervise their "
            "history items)",
        )
        _check(self.max_steps >= 0, "train.max_steps must be >= 0")
        _check(self.max_minutes >= 0, "train.max_minutes must be >= 0 (0: no time budget)")
        _check(self.batch_size >= 1, "train.batch_size must be >= 1")
        _check(self.grad_accum_steps >= 1, "train.grad_accum_steps must be >= 1")
        _check(self.lr > 0, "train.lr must be > 0")
        _check(self.embedding_lr_scale > 0, "train.embedding_lr_scale must be > 0")
        _check(
            self.embedding_lr_rows in ("all", "added"),
            f"train.embedding_lr_rows must be all or added, got {self.embedding_lr_rows!r}",
        )
        _check(self.samples_per_epoch >= 0, "train.samples_per_epoch must be >= 0")
        _check(0 <= self.warmup_ratio < 1, "train.warmup_ratio must be in [0, 1)")
        _check(0 <= self.ema_decay < 1, "train.ema_decay must be in [0, 1) (0: off)")
        _check(self.expectation_loss >= 0, "train.expectation_loss must be >= 0 (0: off)")
        _check(
            self.scheduler in ("linear", "cosine", "constant"),
            "train.scheduler must be linear, cosine or constant",
        )
        _check(
            self.mixed_precision in ("auto", "no", "bf16", "fp16"),
            "train.mixed_precision must be auto, no, bf16 or fp16",
        )
        for name in ("eval_every", "eval_examples", "patience", "checkpoint_every", "num_workers"):
            _check(getattr(self, name) >= 0, f"train.{name} must be >= 0")
        _check(self.keep_checkpoints >= 1, "train.keep_checkpoints must be >= 1")
        _check(self.log_every >= 1, "train.log_every must be >= 1")
        _check(self.export in ("merged", "adapter"), "train.export must be merged or adapter")
        _check(self.select_metric, "train.select_metric needs at least one metric")
        _check(
            len(set(self.select_metric)) == len(self.select_metric),
            f"train.select_metric names a metric twice: {list(self.select_metric)}",
        )
        for metric in self.select_metric:
            _check(
                metric == "loss" or metric.count("/") == 1,
                f"train.select_metric entries must be 'loss', 'loss/FAMILY' or FAMILY/METRIC, "
                f"got {metric!r}",
            )


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation settings."""

    split: str = "test"
    ks: tuple[int, ...] = (5, 10)
    num_beams: int = 20
    batch_size: int = 32
    template_split: str = "seen"  # which template evaluates: first of "seen" or "unseen"
    # per family, the template that evaluates instead: the id of one of its templates (seen
    # or unseen) or a source text with its placeholders ("Rank {candidates} for {history}.")
    templates: dict[str, str] = field(default_factory=dict)
    max_examples: int = 0  # 0: every example of the split
    remove_history: bool = False  # S3-Rec-style: drop the user's past items from rankings
    # category answers are label sets (movie genres), not paths: answer with every label
    # the model rates likelier than its training frequency (Category.predict)
    multilabel: bool = False
    # rating: the expected rating mapped through its least-squares line to the true rating,
    # fitted on the validation split (Rating.calibrate); applies when evaluating test
    calibrate_rating: bool = False
    # per label family (sentiment, category), the weight w of the closed-set decision
    # log p(label) - w * log prior(label): 0 answers the most probable training label, 1
    # decides class-balanced. Unset, a family's default (tasks.labels.prior_weight): 1 for
    # sentiment trained on its natural label mix, else 0
    label_prior: dict[str, float] = field(default_factory=dict)
    # the prior of those decisions (and of eval.multilabel's label shares): "training", the
    # labels' training frequencies, or "model", the model's mean probability of each label
    # over validation prompts of the template evaluated, so an unfamiliar wording's pull
    # toward some labels is discounted (tasks.labels.label_prior)
    label_prior_from: str = "training"

    def options(self, template_split: str | None = None) -> dict[str, Any]:
        """The options a family's ``predict``, ``score`` and ``calibrate`` read, with
        ``template_split`` in place of ``eval.template_split`` when given (validation and
        the benchmark's rescoring use the seen templates)."""
        return {
            "ks": self.ks,
            "num_beams": self.num_beams,
            "batch_size": self.batch_size,
            "template_split": template_split or self.template_split,
            "multilabel": self.multilabel,
            "remove_history": self.remove_history,
            "calibrate_rating": self.calibrate_rating,
            "label_prior": dict(self.label_prior),
            "label_prior_from": self.label_prior_from,
        }

    def __post_init__(self) -> None:
        _check(self.split in ("valid", "test"), "eval.split must be 'valid' or 'test'")
        _check(len(self.ks) > 0 and all(k >= 1 for k in self.ks), "eval.ks must be >= 1")
        _check(
            self.num_beams >= max(self.ks),
            f"eval.num_beams ({self.num_beams}) must be >= the largest K ({max(self.ks)})",
        )
        _check(self.template_split in ("seen", "unseen"), "eval.template_split: seen|unseen")
        unknown = [f for f in self.templates if f not in FAMILIES]
        _check(not unknown, f"eval.templates: unknown families {unknown}")
        for family, spec in self.templates.items():
            _check(
                isinstance(spec, str) and spec.strip() != "",
                f"eval.templates.{family} must be a template id or a source text",
            )
        for family, weight in self.label_prior.items():
            _check(
                family in ("sentiment", "category"),
                f"eval.label_prior: {family!r} is not a label family (sentiment, category)",
            )
            _check(
                isinstance(weight, int | float) and 0 <= weight <= 1,
                f"eval.label_prior.{family} must be a number from 0 to 1, got {weight!r}",
            )
        _check(
            not (self.multilabel and "category" in self.label_prior),
            "eval.label_prior.category: multi-label categories (eval.multilabel) keep each "
            "label likelier than its prior share; the weight decides single answers only",
        )
        _check(
            self.label_prior_from in ("training", "model"),
            f"eval.label_prior_from must be 'training' or 'model', got {self.label_prior_from!r}",
        )


@dataclass(frozen=True)
class ExperimentConfig:
    """The whole experiment; written to ``config.yaml`` in every run directory."""

    name: str = "experiment"
    data: DataConfig = field(default_factory=DataConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    tasks: TasksConfig = field(default_factory=TasksConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        evaluated = self.train.eval_families or self.tasks.families
        extra = [f for f in self.train.eval_families if f not in self.tasks.families]
        _check(not extra, f"train.eval_families names families not trained: {extra}")
        for metric in self.train.select_metric:
            head, _, tail = metric.partition("/")
            family, families = (tail, self.tasks.families) if head == "loss" else (head, evaluated)
            _check(
                metric == "loss" or family in families,
                f"train.select_metric {metric!r}: {family!r} is not among the "
                f"{'trained' if head == 'loss' else 'validated'} families {list(families)}",
            )
        _check(
            self.model.finetune == "lora" or self.train.export == "merged",
            "train.export=adapter needs model.finetune=lora",
        )


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert a YAML value to the annotated type, or raise naming ``where``."""
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(annotation, value, where)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            value = [value]
        item_type = args[0] if args else Any
        return tuple(_coerce(v, item_type, f"{where}[]") for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): _coerce(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if annotation in (int, float):
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if annotation is int and float(value) != int(value):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return annotation(value)
    if annotation is str:
        if not isinstance(value, (str, int, float)):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from a nested mapping, rejecting unknown keys."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key(s) {[prefix + k for k in unknown]}; valid keys here: {names}"
        )
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise ConfigError(f"{where or 'config'}: {err}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict of a config (tuples become lists), ready for YAML or JSON."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(config)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=c`` overrides (values parsed as YAML) to a nested dict copy."""
    result = yaml.safe_load(yaml.safe_dump(data)) or {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key.sub=value")
        node = result
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = yaml.safe_load(raw) if raw != "" else ""
    return result


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> ExperimentConfig:
    """Load an experiment config from YAML (defaults when ``path`` is None) plus overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        data = loaded or {}
    data = apply_overrides(data, overrides or [])
    return from_dict(ExperimentConfig, data)


def save_config(config: ExperimentConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (through a temporary file and a rename)."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(yaml.safe_dump(to_dict(config), sort_keys=False), encoding="utf-8")
    tmp.replace(path)


def config_hash(config: Any) -> str:
    """Short stable hash of a config (or part of one), recorded beside derived artefacts."""
    import hashlib
    import json

    blob = json.dumps(to_dict(config), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
