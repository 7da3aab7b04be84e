"""Untrained engines over any item index: a small T5 or Llama-style model built from a
config with random weights, for tests of the decoding path (not of model quality)."""

from __future__ import annotations

import torch
from transformers import (
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    T5Config,
    T5ForConditionalGeneration,
)

from p5rec.generation import Engine
from p5rec.modeling import add_item_tokens


def random_engine(tokenizer_dir, index, decoder_only: bool = False, seed: int = 0) -> Engine:
    """An engine whose model has peaked (large-scale) random weights, so that beam pruning
    matters and scores are far from ties."""
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    add_item_tokens(tok, index.tokens)
    torch.manual_seed(seed)
    if decoder_only:
        config = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            initializer_range=0.3,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            bos_token_id=None,
            tie_word_embeddings=True,
        )
        model = LlamaForCausalLM(config)
    else:
        config = T5Config(
            vocab_size=len(tok),
            d_model=32,
            d_ff=64,
            d_kv=8,
            num_heads=2,
            num_layers=1,
            num_decoder_layers=1,
            initializer_factor=4.0,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            decoder_start_token_id=tok.pad_token_id,
        )
        model = T5ForConditionalGeneration(config)
    return Engine(model, tok, index, device="cpu")
