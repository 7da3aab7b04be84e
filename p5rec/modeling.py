"""Tokenizer and backbone: a local tokenizer or one trained on the corpus, plus item (and
user) tokens; T5 or a decoder-only LM built from the config or loaded from a checkpoint;
optional LoRA."""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from p5rec.config import ConfigError, ModelConfig, TokenizerConfig

__all__ = [
    "add_item_tokens",
    "apply_lora",
    "build_model",
    "build_tokenizer",
    "check_run_files",
    "load_backbone",
    "load_trained",
    "run_artefacts",
    "tokenizer_fingerprint",
]


def _train_sentencepiece(texts: Iterable[str], vocab_size: int, directory: Path) -> None:
    import sentencepiece as spm

    corpus = directory / "corpus.txt"
    chars: set[str] = set()
    with corpus.open("w", encoding="utf-8") as f:
        for text in texts:
            text = " ".join(text.split())
            if text:
                chars.update(text)
                f.write(text + "\n")
    # The vocabulary must hold every character of the training text plus pad/eos/unk;
    # a character never seen there encodes as <unk>.
    needed = len(chars) + 3 + 8
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(directory / "spiece"),
        vocab_size=max(vocab_size, needed),
        hard_vocab_limit=False,  # small corpora cannot always fill the vocabulary
        model_type="unigram",
        character_coverage=1.0,
        split_digits=True,  # ratings and numbers as digit pieces
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,  # T5 convention: pad 0, eos 1, unk 2, no bos
        minloglevel=2,
    )


def build_tokenizer(
    cfg: TokenizerConfig,
    texts: Iterable[str],
    new_tokens: Sequence[str],
    checkpoint: str | None = None,
):
    """A local tokenizer directory (``cfg.path``, else the ``checkpoint``'s own tokenizer),
    or SentencePiece trained on ``texts``.

    ``new_tokens`` (item tokens, and user tokens with ``tasks.user_text: token``) are added
    as special tokens, so they are never split or normalised.
    """
    from transformers import AutoTokenizer, T5Tokenizer

    path = cfg.path or checkpoint
    if path:
        if not Path(path).exists() and Path(path).is_absolute():
            raise FileNotFoundError(f"tokenizer directory {path!r} does not exist")
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
        except OSError as err:
            raise FileNotFoundError(
                f"no tokenizer in {path!r} (set tokenizer.path to the checkpoint's tokenizer)"
            ) from err
    else:
        with tempfile.TemporaryDirectory() as tmp:
            _train_sentencepiece(texts, cfg.vocab_size, Path(tmp))
            tokenizer = T5Tokenizer.from_pretrained(tmp, extra_ids=0)
    add_item_tokens(tokenizer, new_tokens)
    return tokenizer


def add_item_tokens(tokenizer, item_tokens: Sequence[str]) -> list[int]:
    """Add item (or user) tokens, those not yet present, and return the ids of all of them."""
    tokenizer.add_tokens(list(item_tokens), special_tokens=True)
    ids = tokenizer.convert_tokens_to_ids(list(item_tokens))
    if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids:
        raise ValueError("a token could not be added to the tokenizer")
    return ids


@dataclass(frozen=True)
class RunArtefacts:
    """Where a p5rec run (or export) keeps its model, tokenizer and item index."""

    model: Path
    tokenizer: Path
    index: Path


def run_artefacts(path: str | Path) -> RunArtefacts | None:
    """The artefacts of the p5rec run at ``path`` (the run directory or its ``model/``),
    or None if ``path`` is not one (a plain checkpoint or a hub name)."""
    p = Path(path)
    if (p / "model").is_dir() and (p / "item_index.json").is_file():
        run = p
    elif p.name == "model" and (p.parent / "item_index.json").is_file():
        run = p.parent
    else:
        return None
    return RunArtefacts(run / "model", run / "tokenizer", run / "item_index.json")


def tokenizer_fingerprint(tokenizer) -> str:
    """Short hash of a tokenizer's vocabulary (token -> id), recorded with checkpoints."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return hashlib.sha256(json.dumps(vocab).encode()).hexdigest()[:12]


def check_same_vocabulary(tokenizer, reference: str | Path, what: str) -> None:
    """Every token of the tokenizer at ``reference`` must keep its id in ``tokenizer``
    (which may add tokens after them); raises naming the first that does not."""
    from transformers import AutoTokenizer

    ours = tokenizer.get_vocab()
    for token, i in sorted(AutoTokenizer.from_pretrained(reference).get_vocab().items()):
        if ours.get(token) != i:
            raise ConfigError(
                f"{what}: this tokenizer is not the one {reference} was trained with "
                f"(token {token!r} has id {i} there and {ours.get(token)} here)"
            )


def load_backbone(name_or_path: str | Path, vocab_size: int = 0):
    """A checkpoint of either kind: T5-family (encoder-decoder) or a causal LM, in float32;
    a LoRA adapter directory loads its base model, resized to ``vocab_size`` rows, and
    merges."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    if (Path(name_or_path) / "adapter_config.json").is_file():
        from peft import PeftConfig, PeftModel

        base = load_backbone(PeftConfig.from_pretrained(name_or_path).base_model_name_or_path)
        if base.get_input_embeddings().weight.shape[0] < vocab_size:
            base.resize_token_embeddings(vocab_size, mean_resizing=False)
        return PeftModel.from_pretrained(base, name_or_path).merge_and_unload()

    try:
        config = AutoConfig.from_pretrained(name_or_path)
    except OSError as err:
        raise FileNotFoundError(
            f"model.name_or_path {name_or_path!r}: no model checkpoint there ({err})"
        ) from None
    cls = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    # float32 weights: training keeps fp32 master weights (mixed precision is autocast);
    # transformers would otherwise keep a checkpoint's stored bf16/fp16
    return cls.from_pretrained(name_or_path, dtype=torch.float32)


def _from_sizes(cfg: ModelConfig, tokenizer, max_positions: int):
    """A randomly initialised backbone (the caller seeds torch)."""
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
        T5Config,
        T5ForConditionalGeneration,
    )

    ids = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
    if cfg.arch == "t5":
        config = T5Config(
            vocab_size=len(tokenizer),
            d_model=cfg.d_model,
            d_kv=cfg.d_kv,
            d_ff=cfg.d_ff,
            num_layers=cfg.num_layers,
            num_decoder_layers=cfg.num_decoder_layers,
            num_heads=cfg.num_heads,
            dropout_rate=cfg.dropout,
            feed_forward_proj="relu",
            decoder_start_token_id=tokenizer.pad_token_id,
            **ids,
        )
        return T5ForConditionalGeneration(config)
    config_cls, model_cls = {
        "llama": (LlamaConfig, LlamaForCausalLM),
        "qwen2": (Qwen2Config, Qwen2ForCausalLM),
    }[cfg.arch]
    config = config_cls(
        vocab_size=len(tokenizer),
        hidden_size=cfg.d_model,
        intermediate_size=cfg.d_ff,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads or cfg.num_heads,
        head_dim=cfg.d_kv,
        max_position_embeddings=max_positions,
        attention_dropout=cfg.dropout,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        **ids,
    )
    return model_cls(config)


def build_model(
    cfg: ModelConfig,
    tokenizer,
    new_token_ids: Sequence[int] = (),
    max_positions: int = 1024,
    seed: int = 0,
):
    """The backbone from ``cfg`` sizes or a checkpoint, resized to the tokenizer; LoRA if
    asked (``max_positions``: the longest sequence a decoder-only model built from sizes
    must take, prompt and answer together). ``seed`` fixes every random initialisation
    (weights built from sizes, new embedding rows, LoRA matrices)."""
    import torch

    torch.manual_seed(seed)
    if cfg.name_or_path:
        artefacts = run_artefacts(cfg.name_or_path)
        if (
            cfg.finetune == "lora"
            and artefacts
            and (artefacts.model / "adapter_config.json").is_file()
        ):
            raise ConfigError(
                f"model.name_or_path {cfg.name_or_path}: LoRA on a run that saved a LoRA "
                "adapter would lose that adapter; export it merged first "
                "(`p5rec export RUN --out DIR`) and fine-tune DIR"
            )
        model = load_backbone(artefacts.model if artefacts else cfg.name_or_path, len(tokenizer))
    else:
        model = _from_sizes(cfg, tokenizer, max_positions)
    if model.get_input_embeddings().weight.shape[0] < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    if cfg.hidden_dropout:
        add_hidden_dropout(model, cfg.hidden_dropout)
    if cfg.finetune == "lora":
        model = apply_lora(model, cfg, new_token_ids)
    return model


def add_hidden_dropout(model, p: float) -> None:
    """Dropout ``p`` on a decoder-only model's token embeddings and on each layer's
    attention and MLP outputs before the residual sums (GPT-2's embedding and residual
    dropout, which Llama and Qwen2 lack), applied by forward hooks while the model is in
    training mode; evaluation and saved weights are unchanged."""
    import torch.nn.functional as F

    if model.config.is_encoder_decoder:
        raise ConfigError(
            "model.hidden_dropout is for decoder-only models; T5's model.dropout already "
            "covers its embeddings and residual branches"
        )

    def drop(module, _inputs, out):
        if isinstance(out, tuple):  # attention: (output, weights)
            return (F.dropout(out[0], p, module.training), *out[1:])
        return F.dropout(out, p, module.training)

    layers = [m for m in model.modules() if hasattr(m, "self_attn") and hasattr(m, "mlp")]
    if not layers:
        raise ConfigError(
            f"model.hidden_dropout: no decoder layer (self_attn + mlp) in this "
            f"{model.config.model_type} model"
        )
    model.get_input_embeddings().register_forward_hook(drop)
    for layer in layers:
        layer.self_attn.register_forward_hook(drop)
        layer.mlp.register_forward_hook(drop)


def embedding_module_name(model) -> str:
    """Name (last component) of the input embedding module: ``shared`` for T5,
    ``embed_tokens`` for Llama/Qwen; what peft's ``trainable_token_indices`` keys on."""
    embedding = model.get_input_embeddings()
    for name, module in model.named_modules():
        if module is embedding:
            return name.rsplit(".", 1)[-1]
    raise ValueError("the model's input embedding is not one of its modules")


def check_lora_targets(model, targets: Sequence[str]) -> None:
    """Every target must name a module (peft's rule: the full name or its last part)."""
    import torch

    names = [n for n, _ in model.named_modules()]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        linear = sorted(
            {
                n.rsplit(".", 1)[-1]
                for n, m in model.named_modules()
                if isinstance(m, torch.nn.Linear)
            }
        )
        raise ConfigError(
            f"model.lora_target_modules: {missing} match no module of this "
            f"{model.config.model_type} model; its linear layers are {linear}"
        )


def apply_lora(model, cfg: ModelConfig, new_token_ids: Sequence[int]):
    """Wrap ``model`` in LoRA adapters; the rows of the added (item and user) tokens in the
    embedding train too (the tie to the output layer is kept), every other weight is
    frozen."""
    from peft import LoraConfig, TaskType, get_peft_model

    targets = list(cfg.lora_target_modules) or None  # None: peft's default for the arch
    if targets:
        check_lora_targets(model, targets)
    encoder_decoder = bool(model.config.is_encoder_decoder)
    rows = None
    if new_token_ids:
        rows = {embedding_module_name(model): list(new_token_ids)}
        output = model.get_output_embeddings()
        if output is not None and output.weight is not model.get_input_embeddings().weight:
            # untied output layer (many causal LMs): its new rows must train as well
            name = next(n for n, m in model.named_modules() if m is output)
            rows[name.rsplit(".", 1)[-1]] = list(new_token_ids)
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        task_type=TaskType.SEQ_2_SEQ_LM if encoder_decoder else TaskType.CAUSAL_LM,
        trainable_token_indices=rows,
    )
    try:
        return get_peft_model(model, lora)
    except ValueError as err:  # e.g. no default target modules for this architecture
        raise ConfigError(f"model.lora_target_modules: {err}") from None


def check_run_files(run_dir: str | Path) -> Path:
    """``run_dir`` as a Path, if it holds what a finished run (or export) serves from."""
    run_dir = Path(run_dir)
    for name in ("model", "tokenizer", "item_index.json"):
        if not (run_dir / name).exists():
            raise FileNotFoundError(f"{run_dir}: missing {name}; is this a finished training run?")
    return run_dir


def load_trained(run_dir: str | Path):
    """Model, tokenizer and item index saved by training (or export) in ``run_dir``.

    ``RUN/model`` holds full weights, or a LoRA adapter whose base checkpoint is loaded,
    resized to the tokenizer and merged with it.
    """
    from transformers import AutoTokenizer

    from p5rec.indexing import ItemIndex

    run_dir = check_run_files(run_dir)
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "tokenizer")
    model = load_backbone(run_dir / "model", len(tokenizer))
    return model, tokenizer, ItemIndex.load(run_dir / "item_index.json")
