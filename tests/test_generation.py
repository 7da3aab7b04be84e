import math

import pytest
import torch

from p5rec.config import IndexConfig
from p5rec.generation import Engine, TrieConstraint
from p5rec.indexing import SchemeInput, build_index
from p5rec.modeling import load_trained
from p5rec.trie import ItemTrie
from tests.engines import random_engine


def test_trie_constraint_masks_and_never_empties():
    trie = ItemTrie([[5, 6], [5, 7], [8, 6]], end_id=1)
    proc = TrieConstraint(trie, start=1)
    ids = torch.tensor([[0], [0], [0]])  # (beams, cur_len): only the start token
    out = proc(ids, torch.zeros(3, 10))
    assert torch.isfinite(out[0]).nonzero().flatten().tolist() == [5, 8]
    ids = torch.tensor([[0, 5], [0, 8], [0, 9]])  # [0, 9] has left the trie
    out = proc(ids, torch.zeros(3, 10))
    assert torch.isfinite(out[0]).nonzero().flatten().tolist() == [6, 7]
    assert torch.isfinite(out[1]).nonzero().flatten().tolist() == [6]
    assert torch.isfinite(out[2]).nonzero().flatten().tolist() == [1]  # may only end
    # a decoder-only prompt of width 3 before the generated part
    proc = TrieConstraint(trie, start=3)
    out = proc(torch.tensor([[7, 7, 7, 5]]), torch.zeros(1, 10))
    assert torch.isfinite(out[0]).nonzero().flatten().tolist() == [6, 7]


@pytest.fixture(scope="module")
def engine(tiny_run):
    model, tok, index = load_trained(tiny_run)
    return Engine(model, tok, index, device="cpu")


SOURCES = [
    "Items interacted with so far: <a_1><b_2>. Which item comes next?",
    "hello",
    "Given the purchase history of user_0003: <a_0><b_0> <a_3><b_1>, what is next?",
]


def test_rank_returns_real_distinct_items(engine):
    catalogue = set(engine.index.codes)
    for beams in (1, 5, 10):
        for ranked in engine.rank(SOURCES, beams):
            items = [i for i, _ in ranked]
            assert len(items) == beams
            assert len(set(items)) == len(items)
            assert set(items) <= catalogue
            scores = [s for _, s in ranked]
            assert scores == sorted(scores, reverse=True)
            assert all(math.isfinite(s) for s in scores)


def test_beam_over_whole_catalogue_matches_exact_scores(engine):
    """With as many beams as items, beam search is exact: same order as scoring every item."""
    items = sorted(engine.index.codes)
    ranked = engine.rank(SOURCES[:1], len(items))[0]
    assert {i for i, _ in ranked} == set(items)
    exact = dict(zip(items, engine.score_items(SOURCES[:1], [items])[0]))
    for item, score in ranked:
        assert score == pytest.approx(exact[item], abs=1e-4)


def test_generate_text_returns_strings(engine):
    out = engine.generate_text(["What star rating will user_0001 give?"], 4)
    assert len(out) == 1 and isinstance(out[0], str)


def test_missing_item_tokens_are_an_error(tiny_run):
    model, tok, index = load_trained(tiny_run)
    index.codes["ghost"] = ("<zz_1>",)
    with pytest.raises(ValueError, match="missing from the tokenizer"):
        Engine(model, tok, index.__class__(index.scheme, index.codes), device="cpu")


def prefix_code_index():
    """25 items with P5-style sequential codes in base 3: item 1's code is a prefix of
    items 3-5's (1, 10, 11, 12 ...), so EOS must compete with longer codes."""
    items = [f"it{n:02d}" for n in range(25)]
    index = build_index(
        SchemeInput(items, [items]), IndexConfig(scheme="sequential", codebook_size=3)
    )
    codes = list(index.codes.values())
    assert any(a != b and b[: len(a)] == a for a in codes for b in codes)
    return index


@pytest.fixture(scope="module", params=["t5", "decoder-only"])
def prefix_engine(request, tiny_run):
    return random_engine(
        tiny_run / "tokenizer", prefix_code_index(), decoder_only=request.param == "decoder-only"
    )


def test_exact_check_beam_over_catalogue_equals_scoring_every_item(prefix_engine):
    """Beams >= items: beam search returns every item, in the order of exact scoring."""
    engine = prefix_engine
    items = list(engine.index.codes)
    for source in SOURCES:
        ranked = engine.rank([source], len(items))[0]
        exact = dict(zip(items, engine.score_items([source], [items])[0]))
        assert [i for i, _ in ranked] == sorted(items, key=lambda i: -exact[i])
        for item, score in ranked:
            assert score == pytest.approx(exact[item], rel=1e-5, abs=1e-4)


def test_narrow_beams_on_prefix_codes_give_real_distinct_items(prefix_engine):
    catalogue = set(prefix_engine.index.codes)
    for beams in (1, 3, 10):
        for ranked in prefix_engine.rank(SOURCES, beams):
            items = [i for i, _ in ranked]
            assert len(items) == beams and len(set(items)) == beams and set(items) <= catalogue


def test_decoder_only_left_padding_does_not_change_answers(tiny_run):
    """A batch of prompts of different lengths (left-padded) ranks like each prompt alone."""
    engine = random_engine(tiny_run / "tokenizer", prefix_code_index(), decoder_only=True)
    together = engine.rank(SOURCES, 5)
    for source, ranked in zip(SOURCES, together):
        alone = engine.rank([source], 5)[0]
        assert [i for i, _ in alone] == [i for i, _ in ranked]
        assert [s for _, s in alone] == pytest.approx([s for _, s in ranked], abs=1e-4)
    texts = engine.generate_text(SOURCES, 3)
    assert len(texts) == len(SOURCES) and all(isinstance(t, str) for t in texts)


def test_checkpoint_generation_defaults_do_not_change_free_text(tiny_run):
    """A checkpoint's generation config (here: a heavy repetition penalty) must not change
    the engine's free-text answers, and the model keeps its own config."""
    engine = random_engine(tiny_run / "tokenizer", prefix_code_index())
    before = engine.generate_text(SOURCES, 12)
    engine.model.generation_config.repetition_penalty = 50.0
    engine.model.generation_config.no_repeat_ngram_size = 1
    raw = engine.model.generate(**engine._encode(SOURCES), max_new_tokens=12)
    raw_texts = engine.tokenizer.batch_decode(raw, skip_special_tokens=True)
    assert [t.strip() for t in raw_texts] != before  # the defaults do change plain generate()
    assert engine.generate_text(SOURCES, 12) == before
    assert engine.model.generation_config.repetition_penalty == 50.0


@pytest.mark.parametrize("decoder_only", [False, True])
def test_decoder_agrees_with_generate_and_the_logits_processor(tiny_run, decoder_only):
    """On fixed-length codes both are plain beam search: same items, same scores."""
    from transformers import GenerationConfig, LogitsProcessorList

    items = [f"it{n:03d}" for n in range(120)]
    index = build_index(SchemeInput(items, []), IndexConfig(tokens_per_item=3, codebook_size=6))
    engine = random_engine(tiny_run / "tokenizer", index, decoder_only=decoder_only)
    beams = 6
    ours = engine.rank(SOURCES, beams)
    enc = engine._encode(SOURCES, left=decoder_only)
    start = enc["input_ids"].shape[1] if decoder_only else 1
    out = engine.model.generate(
        **enc,
        generation_config=GenerationConfig(
            **engine._generation_ids,
            num_beams=beams,
            num_return_sequences=beams,
            max_new_tokens=engine.trie.max_length,
            length_penalty=0.0,
            early_stopping=True,
            output_scores=True,
            return_dict_in_generate=True,
        ),
        logits_processor=LogitsProcessorList([TrieConstraint(engine.trie, start)]),
    )
    rows = engine.trie.items_of(out.sequences[:, start:]).view(len(SOURCES), beams)
    scores = out.sequences_scores.view(len(SOURCES), beams)
    for b, ranked in enumerate(ours):
        assert [i for i, _ in ranked] == [engine.items[r] for r in rows[b].tolist()]
        assert [s for _, s in ranked] == pytest.approx(scores[b].tolist(), rel=1e-5, abs=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_decoder_on_cuda_matches_cpu(tiny_run):
    for decoder_only in (False, True):
        engine = random_engine(tiny_run / "tokenizer", prefix_code_index(), decoder_only)
        on_cpu = engine.rank(SOURCES, 8)
        engine = Engine(engine.model, engine.tokenizer, engine.index, device="cuda")
        on_gpu = engine.rank(SOURCES, 8)
        for a, b in zip(on_cpu, on_gpu):
            assert [i for i, _ in a] == [i for i, _ in b]
            assert [s for _, s in a] == pytest.approx([s for _, s in b], rel=1e-4, abs=1e-3)


def test_decoder_only_scoring_equals_a_full_forward_per_option(tiny_run):
    """The shared-prompt scoring (prompt cache repeated per option) gives the log-probability
    a plain forward pass over prompt + option gives, for options of different lengths."""
    engine = random_engine(tiny_run / "tokenizer", prefix_code_index(), decoder_only=True)
    items = list(engine.index.codes)
    options = [items[:7], items[3:12], items[::4]]
    assert_full_forward_scores(engine, SOURCES, options, engine.score_items(SOURCES, options))


def assert_full_forward_scores(engine, sources, options, got):
    """``got`` holds, per source and option item, the log-probability of the item's code
    (EOS included) after the prompt under one plain forward pass of a decoder-only model."""
    for source, cands, scores in zip(sources, options, got):
        prompt = engine.tokenizer(source).input_ids
        for item, score in zip(cands, scores):
            target = [*engine.item_ids[item], engine.eos]
            ids = torch.tensor([prompt + target])
            with torch.no_grad():
                logp = torch.log_softmax(engine.model(input_ids=ids).logits[0].float(), -1)
            want = sum(logp[len(prompt) - 1 + j, t].item() for j, t in enumerate(target))
            assert score == pytest.approx(want, rel=1e-5, abs=1e-4)


def test_decoder_only_scoring_feeds_each_distinct_prefix_once(tiny_run):
    """After the prompt pass, a decoder-only model is fed one row per distinct (prompt,
    option prefix) of the prefix tree, one token each: sequential codes share their first
    tokens, so the rows are fewer than the options' tokens, and the scores are a full
    forward's."""
    engine = random_engine(tiny_run / "tokenizer", prefix_code_index(), decoder_only=True)
    items = list(engine.index.codes)
    options = [items, items[5:]]
    fed = []
    hook = engine.model.register_forward_pre_hook(
        lambda _m, _a, kw: fed.append(tuple(kw["input_ids"].shape)), with_kwargs=True
    )
    try:
        got = engine.score_items(SOURCES[:2], options)
    finally:
        hook.remove()
    codes = [[[*engine.item_ids[i], engine.eos] for i in cands] for cands in options]
    nodes = {(b, tuple(c[:k])) for b, cs in enumerate(codes) for c in cs for k in range(1, len(c))}
    assert fed[1:] and all(width == 1 for _, width in fed[1:])  # fed[0]: the prompts
    assert sum(rows for rows, _ in fed[1:]) == len(nodes)
    assert len(nodes) < sum(len(c) - 1 for cs in codes for c in cs)
    assert_full_forward_scores(engine, SOURCES[:2], options, got)


@pytest.mark.parametrize("decoder_only", [False, True])
def test_scoring_in_small_chunks_equals_one_pass(tiny_run, decoder_only):
    """Options are scored in chunks of at most ``score_logits`` logits (bounded memory for
    large option sets); chunks of one option give the same scores as a single pass."""
    engine = random_engine(tiny_run / "tokenizer", prefix_code_index(), decoder_only)
    items = list(engine.index.codes)
    options = [items[:7], items[3:12], items[::4]]
    whole = engine.score_items(SOURCES, options)
    texts = engine.score_texts(SOURCES, ["positive", "not so good", "5"])
    engine.score_logits = 1  # every option a pass of its own
    assert engine.score_items(SOURCES, options) == [pytest.approx(w, abs=1e-4) for w in whole]
    assert engine.score_texts(SOURCES, ["positive", "not so good", "5"]) == [
        pytest.approx(t, abs=1e-4) for t in texts
    ]


@pytest.mark.parametrize("decoder_only", [False, True])
def test_cache_argument_follows_the_installed_release(tiny_run, decoder_only, monkeypatch):
    """Beam search and option scoring pass the key/value cache under the name the installed
    transformers takes (``cache`` on newer releases, where ``past_key_values`` warns and is
    to be removed); the older name, which releases before the rename need, answers alike."""
    import inspect
    import warnings

    import p5rec.decoding
    import p5rec.generation
    from p5rec.decoding import cache_kwarg

    engine = random_engine(tiny_run / "tokenizer", prefix_code_index(), decoder_only)
    params = inspect.signature(type(engine.model).forward).parameters
    assert cache_kwarg(engine.model) == ("cache" if "cache" in params else "past_key_values")

    class Wrapper:  # a peft model: its own forward takes **kwargs
        def get_base_model(self):
            return engine.model

        def forward(self, *args, **kwargs): ...

    assert cache_kwarg(Wrapper()) == cache_kwarg(engine.model)
    items = list(engine.index.codes)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*past_key_values.*deprecated")
        ranked = engine.rank(SOURCES, 5)
        scored = engine.score_items(SOURCES, [items[:7]] * len(SOURCES))
    for module in (p5rec.decoding, p5rec.generation):
        monkeypatch.setattr(module, "cache_kwarg", lambda model: "past_key_values")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert engine.rank(SOURCES, 5) == [
            [(i, pytest.approx(s, abs=1e-4)) for i, s in r] for r in ranked
        ]
        old = engine.score_items(SOURCES, [items[:7]] * len(SOURCES))
    assert old == [pytest.approx(s, abs=1e-4) for s in scored]
