"""Tokenizer and backbone: a local tokenizer or one trained on the corpus, plus item tokens;
T5 built from the config or loaded from a local checkpoint; optional LoRA."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from p5rec.config import ModelConfig, TokenizerConfig

__all__ = ["add_item_tokens", "build_model", "build_tokenizer", "load_trained"]


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
    item_tokens: Sequence[str],
    checkpoint: str | None = None,
):
    """A local tokenizer directory (``cfg.path``, else the ``checkpoint``'s own tokenizer),
    or SentencePiece trained on ``texts``.

    Item tokens are added as special tokens, so they are never split or normalised.
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
    add_item_tokens(tokenizer, item_tokens)
    return tokenizer


def add_item_tokens(tokenizer, item_tokens: Sequence[str]) -> list[int]:
    """Add item tokens (those not yet present) and return the ids of all of them."""
    tokenizer.add_tokens(list(item_tokens), special_tokens=True)
    ids = tokenizer.convert_tokens_to_ids(list(item_tokens))
    if tokenizer.unk_token_id is not None and tokenizer.unk_token_id in ids:
        raise ValueError("an item token could not be added to the tokenizer")
    return ids


def build_model(cfg: ModelConfig, tokenizer, item_token_ids: Sequence[int] = ()):
    """T5 from ``cfg`` sizes, or a local checkpoint, resized to the tokenizer; LoRA if asked."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, T5Config, T5ForConditionalGeneration

    if cfg.name_or_path:
        model = AutoModelForSeq2SeqLM.from_pretrained(cfg.name_or_path)
    else:
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
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id,
        )
        torch.manual_seed(0)
        model = T5ForConditionalGeneration(config)
    if model.get_input_embeddings().weight.shape[0] != len(tokenizer):
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    if cfg.finetune == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        lora = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=list(cfg.lora_target_modules),
            task_type=TaskType.SEQ_2_SEQ_LM,
            # only the new item-token rows of the shared embedding train (tie kept)
            trainable_token_indices={"shared": list(item_token_ids)} if item_token_ids else None,
        )
        model = get_peft_model(model, lora)
    return model


def load_trained(run_dir: str | Path):
    """Model, tokenizer and item index saved by training in ``run_dir``."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from p5rec.indexing import ItemIndex

    run_dir = Path(run_dir)
    for name in ("model", "tokenizer", "item_index.json"):
        if not (run_dir / name).exists():
            raise FileNotFoundError(f"{run_dir}: missing {name}; is this a finished training run?")
    model = AutoModelForSeq2SeqLM.from_pretrained(run_dir / "model")
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "tokenizer")
    return model, tokenizer, ItemIndex.load(run_dir / "item_index.json")
