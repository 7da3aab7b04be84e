import pytest

from p5rec.config import ModelConfig, TokenizerConfig
from p5rec.modeling import add_item_tokens, build_model, build_tokenizer
from tests.conftest import SHARED_DATA

ITEM_TOKENS = ["<a_0>", "<a_1>", "<b_0>", "<b_1>"]


def test_sentencepiece_tokenizer_from_corpus_text():
    texts = ["great moisturizer for dry skin", "the serum is awful", "rated 4 stars"] * 50
    tok = build_tokenizer(TokenizerConfig(vocab_size=300), texts, ITEM_TOKENS)
    ids = tok("the serum <a_1><b_0> is great", add_special_tokens=False).input_ids
    tokens = tok.convert_ids_to_tokens(ids)
    assert "<a_1>" in tokens and "<b_0>" in tokens
    assert tok.unk_token_id not in ids  # every character of the training text is covered
    assert tok.decode(ids, skip_special_tokens=True).split() == ["the", "serum", "is", "great"]
    assert (tok.pad_token_id, tok.eos_token_id) == (0, 1)


@pytest.mark.skipif(not (SHARED_DATA / "t5-tokenizer").is_dir(), reason="shared data absent")
def test_local_tokenizer_directory():
    tok = build_tokenizer(TokenizerConfig(path=str(SHARED_DATA / "t5-tokenizer")), [], ITEM_TOKENS)
    assert len(tok) == 32100 + len(ITEM_TOKENS)
    assert add_item_tokens(tok, ITEM_TOKENS) == tok.convert_tokens_to_ids(ITEM_TOKENS)


def test_missing_tokenizer_directory():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_tokenizer(TokenizerConfig(path="/no/such/tokenizer"), [], ITEM_TOKENS)


def test_model_from_local_checkpoint_is_resized(tiny_run):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_run / "tokenizer")
    new = add_item_tokens(tok, ["<zz_0>", "<zz_1>"])
    model = build_model(ModelConfig(name_or_path=str(tiny_run / "model")), tok, new)
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    assert model.config.d_model == 32  # the checkpoint's size, not the config default


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_hidden_dropout_acts_in_training_mode_only(arch):
    """Decoder-only hidden dropout: with attention dropout off, two training-mode passes
    differ; in evaluation mode the model computes what the same weights compute without
    it. T5 refuses the setting (its dropout already covers these places)."""
    import torch

    from p5rec.config import ConfigError

    tok = build_tokenizer(TokenizerConfig(vocab_size=300), ["a b c d e f g"] * 20, ITEM_TOKENS)
    sizes = {"arch": arch, "d_model": 32, "d_ff": 64, "d_kv": 8, "num_heads": 4, "dropout": 0.0}
    plain = build_model(ModelConfig(**sizes), tok).eval()
    dropped = build_model(ModelConfig(**sizes, hidden_dropout=0.5), tok)
    dropped.load_state_dict(plain.state_dict())
    ids = torch.tensor([[3, 4, 5, 6, 7, 8]])
    dropped.train()
    torch.manual_seed(0)
    first = dropped(input_ids=ids).logits
    second = dropped(input_ids=ids).logits
    assert not torch.allclose(first, second)
    dropped.eval()
    assert torch.allclose(dropped(input_ids=ids).logits, plain(input_ids=ids).logits)
    with pytest.raises(ConfigError, match="decoder-only"):
        ModelConfig(arch="t5", hidden_dropout=0.1)
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        ModelConfig(arch="llama", hidden_dropout=1.0)
