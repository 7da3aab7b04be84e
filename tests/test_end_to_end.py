"""Tiny train -> evaluate -> recommend."""

import dataclasses
import json

import pytest

from p5rec.assistant import Assistant, RequestError
from p5rec.config import ConfigError
from p5rec.evaluation import evaluate_run, format_table
from p5rec.training import train
from tests.conftest import tiny_config


def test_run_directory_contents(tiny_run):
    for name in (
        "config.yaml",
        "run.json",
        "item_index.json",
        "tokenizer",
        "model",
        "best",
        "checkpoints",
        "curves.png",
        "train_log.jsonl",
    ):
        assert (tiny_run / name).exists(), name
    info = json.loads((tiny_run / "run.json").read_text())
    assert info["data_fingerprint"] and info["config_hash"] and info["parameters"] > 0


def test_evaluate_writes_metrics_for_every_family(tiny_run, tiny_data):
    cfg = tiny_config(f"data.path={tiny_data}")
    report = evaluate_run(tiny_run, cfg, progress=False)
    assert json.loads((tiny_run / "metrics.json").read_text())["results"] == report["results"]
    assert set(report["results"]) == set(cfg.tasks.families)
    nxt = report["results"]["next_item"]
    assert set(nxt["model"]) == {"hr@5", "ndcg@5", "hr@10", "ndcg@10"}
    assert nxt["baseline"]["name"] == "popularity"
    assert all(0 <= v <= 1 for v in nxt["model"].values())
    assert report["results"]["rating"]["baseline"]["name"] == "global_mean"
    assert report["git_commit"] is None or len(report["git_commit"]) == 40
    table = format_table(report)
    assert "next_item" in table and "hr@10" in table and "rmse" in table


def test_evaluate_hands_back_the_predictions_it_scored(tiny_run, tiny_data):
    """``predictions=``: each family's predictions, one per evaluated example, which the
    family's evaluator scores to the reported metrics (the benchmark's bootstrap
    rescores them)."""
    import random

    from p5rec.tasks import get_family
    from p5rec.training import build_context

    cfg = tiny_config(f"data.path={tiny_data}", "eval.max_examples=0")
    predictions: dict[str, list] = {}
    report = evaluate_run(tiny_run, cfg, ["next_item", "rating"], False, predictions)
    ctx = build_context(cfg, tiny_data)
    for family, predicted in predictions.items():
        fam = get_family(family)
        examples = fam.examples(ctx, "test", random.Random(0))
        assert len(predicted) == len(examples) == report["results"][family]["n"]
        options = {"ks": cfg.eval.ks}
        assert fam.score(ctx, examples, predicted, options) == report["results"][family]["model"]
    assert set(predictions) == {"next_item", "rating"}


def test_calibrated_rating_is_the_validation_line(tiny_run, tiny_data):
    """eval.calibrate_rating: the test split's expected ratings go through the least-squares
    line from the validation split's expected ratings to its true ones (clipped to the
    rating range); the report keeps the fitted line and the uncalibrated metrics. A
    validation evaluation is left uncalibrated (it is what the line is fitted on)."""
    import random

    from p5rec.tasks import get_family
    from p5rec.tasks.rating import linear_fit
    from p5rec.training import build_context

    base = (f"data.path={tiny_data}", "eval.max_examples=0")
    got: dict[str, dict[str, list]] = {"raw": {}, "calibrated": {}, "valid": {}}
    raw = evaluate_run(tiny_run, tiny_config(*base), ["rating"], False, got["raw"])
    on = tiny_config(*base, "eval.calibrate_rating=true")
    calibrated = evaluate_run(tiny_run, on, ["rating"], False, got["calibrated"])
    valid_cfg = tiny_config(*base, "eval.calibrate_rating=true", "eval.split=valid")
    valid = evaluate_run(tiny_run, valid_cfg, ["rating"], False, got["valid"])
    assert "calibration" not in raw["results"]["rating"]
    assert "calibration" not in valid["results"]["rating"]

    ctx = build_context(on, tiny_data)
    truth = [
        e.meta["rating"] for e in get_family("rating").examples(ctx, "valid", random.Random(0))
    ]
    expected = [e for e, _ in got["valid"]["rating"]]
    slope, intercept = linear_fit(expected, truth)
    fit = calibrated["results"]["rating"]["calibration"]
    assert (fit["slope"], fit["intercept"]) == (pytest.approx(slope), pytest.approx(intercept))
    assert fit["valid_n"] == len(truth)
    assert fit["valid_rmse_calibrated"] <= fit["valid_rmse"] + 1e-12
    assert fit["uncalibrated"] == raw["results"]["rating"]["model"]
    lo, hi = ctx.corpus.rating_range
    for (e, d), (c, d2) in zip(got["raw"]["rating"], got["calibrated"]["rating"]):
        assert c == pytest.approx(min(hi, max(lo, slope * e + intercept)))
        assert d2 == d


def test_training_stores_the_model_label_prior_the_assistant_answers_with(tmp_path, tiny_data):
    """With eval.label_prior_from=model, training ends by storing each label family's prior
    under its first seen template (the model's mean answer on validation prompts) in
    run.json; the assistant decides with it from the start, as evaluation decides."""
    import random

    from p5rec.generation import Engine
    from p5rec.modeling import load_trained
    from p5rec.tasks import get_family
    from p5rec.tasks.labels import label_prior
    from p5rec.training import build_context

    cfg = tiny_config(
        f"data.path={tiny_data}", "eval.label_prior_from=model", "eval.label_prior={category: 1}"
    )
    summary = train(cfg, tmp_path / "run", progress=False)
    stored = json.loads((tmp_path / "run" / "run.json").read_text())["label_priors"]
    assert stored == summary["label_priors"] and "category" in stored
    family = get_family("category")
    template = family.eval_template("seen")
    model, tokenizer, index = load_trained(tmp_path / "run")
    ctx = build_context(cfg, tiny_data, index)
    engine = Engine(model, tokenizer, index, cfg.train.max_source_length)
    fresh = label_prior(family, engine, ctx, template, cfg.eval.options())
    assert stored["category"]["template"] == template.id
    assert stored["category"]["prior"] == pytest.approx(fresh, abs=1e-6)
    assert sum(fresh.values()) == pytest.approx(1.0)

    assistant = Assistant(tmp_path / "run")
    assert assistant._label_priors["category"] == stored["category"]["prior"]
    examples = family.examples(ctx, "test", random.Random(0))[:4]
    sources = [ctx.prompt("category", template.render(e.fields, e.target)[0]) for e in examples]
    want = family.predict(engine, ctx, examples, sources, cfg.eval.options())
    got = [
        assistant.answer([assistant.query("category", item=e.meta["item"])])[0]["label"]
        for e in examples
    ]
    assert got == want


def test_served_ratings_go_through_the_trained_line(tmp_path, tiny_data, tiny_run):
    """With eval.calibrate_rating, training ends by fitting the kept model's rating line on
    the validation split (the seen template, as evaluation fits it) into run.json; the
    assistant's ratings are the expectation through that line, the raw one kept as
    ``expected``."""
    from p5rec.tasks.rating import expectation, on_line

    cfg = tiny_config(f"data.path={tiny_data}", "eval.calibrate_rating=true")
    summary = train(cfg, tmp_path / "run", progress=False)
    line = summary["rating_calibration"]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["rating_calibration"] == line
    evaluated = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, max_examples=0))
    report = evaluate_run(tmp_path / "run", evaluated, ["rating"], False)
    fit = report["results"]["rating"]["calibration"]
    assert fit["template"] == line["template"]
    assert (fit["slope"], fit["intercept"]) == (
        pytest.approx(line["slope"]),
        pytest.approx(line["intercept"]),
    )
    assistant = Assistant(tmp_path / "run")
    user, item = sorted(assistant.ctx.sequences)[0], sorted(assistant.ctx.index.codes)[3]
    answer = assistant.answer([assistant.query("rating", user=user, item=item)])[0]
    values = [float(v) for v in answer["distribution"]]
    raw = expectation(list(answer["distribution"].values()), values)
    assert answer["expected"] == pytest.approx(raw, abs=1e-3)
    lo, hi = assistant.ctx.corpus.rating_range
    assert answer["rating"] == pytest.approx(on_line(line, answer["expected"], lo, hi), abs=1e-3)
    # a run trained without the setting rates with the expectation itself
    plain = Assistant(tiny_run)
    again = plain.answer([plain.query("rating", user=user, item=item)])[0]
    assert plain.rating_line is None and "expected" not in again
    values = [float(v) for v in again["distribution"]]
    assert again["rating"] == pytest.approx(
        expectation(list(again["distribution"].values()), values), abs=1e-3
    )


def test_calibrated_training_needs_validation_ratings(tmp_path):
    """A run that is to fit its rating line on validation ratings says before training
    that the dataset has none."""
    from p5rec.data.dataset import prepare

    no_valid = ("data.review_split=[0.9, 0.0, 0.1]",)
    prepare("synthetic", None, tmp_path / "data", tiny_config(*no_valid).data)
    cfg = tiny_config(*no_valid, f"data.path={tmp_path / 'data'}", "eval.calibrate_rating=true")
    with pytest.raises(ConfigError, match="no validation ratings"):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "model").exists()


def test_linear_fit_by_hand():
    from p5rec.tasks.rating import linear_fit

    assert linear_fit([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]) == (pytest.approx(2.0), pytest.approx(0.0))
    # x = 0, 1, 2, 3 and y = 1, 1, 2, 4: slope 1, intercept 0.5 (by the normal equations)
    assert linear_fit([0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 2.0, 4.0]) == (
        pytest.approx(1.0),
        pytest.approx(0.5),
    )
    assert linear_fit([3.0, 3.0], [1.0, 4.0]) == (0.0, 2.5)
    with pytest.raises(ValueError, match="equal, non-empty"):
        linear_fit([1.0], [1.0, 2.0])


def test_evaluate_with_chosen_templates(tiny_run, tiny_data):
    """eval.templates evaluates a family with one of its templates by id (the same metrics
    as eval.template_split picking it) or with a source text; the report names the template
    and its source. A text without a required placeholder, an unknown id and a family not
    evaluated are errors that name the problem."""
    from p5rec.prompts import PromptError
    from p5rec.tasks import get_family

    base = (f"data.path={tiny_data}", "eval.max_examples=6")
    unseen = evaluate_run(
        tiny_run, tiny_config(*base, "eval.template_split=unseen"), ["rating"], progress=False
    )["results"]["rating"]
    rating = get_family("rating")
    chosen = tiny_config(*base, f"eval.templates={{rating: {rating.eval_template('unseen').id}}}")
    by_id = evaluate_run(tiny_run, chosen, ["rating", "sentiment"], progress=False)["results"]
    assert by_id["rating"]["model"] == unseen["model"]
    assert by_id["rating"]["template"] == unseen["template"] == rating.eval_template("unseen").id
    assert by_id["sentiment"]["template"] == get_family("sentiment").eval_template("seen").id
    text = "Stars from {user} for {item}, please?"
    cfg = dataclasses.replace(
        chosen, eval=dataclasses.replace(chosen.eval, templates={"rating": text})
    )
    custom = evaluate_run(tiny_run, cfg, ["rating"], progress=False)["results"]["rating"]
    assert custom["template"] == "custom" and custom["template_source"] == text
    assert custom["model"]["rmse"] != unseen["model"]["rmse"]
    assert json.loads((tiny_run / "metrics.json").read_text())["results"]["rating"] == custom
    for spec, message in (
        ("Stars from {user}?", r"must use placeholder\(s\) \['item'\]"),
        ("rating-99", "neither a template id"),
    ):
        cfg = dataclasses.replace(
            chosen, eval=dataclasses.replace(chosen.eval, templates={"rating": spec})
        )
        with pytest.raises(PromptError, match=message):
            evaluate_run(tiny_run, cfg, ["rating"], progress=False)
    with pytest.raises(ConfigError, match=r"not evaluated: \['rating'\]"):
        evaluate_run(tiny_run, chosen, ["sentiment"], progress=False)
    with pytest.raises(ConfigError, match="eval.templates: unknown families"):
        tiny_config("eval.templates={ratings: rating-1}")


def test_recommend(tiny_run, tiny_ctx):
    rec = Assistant(tiny_run)
    user = sorted(tiny_ctx.sequences)[0]
    out = rec.recommend(user, k=5)
    assert [r["rank"] for r in out] == [1, 2, 3, 4, 5]
    assert len({r["item"] for r in out}) == 5
    assert all(r["item"] in tiny_ctx.corpus.items for r in out)
    unseen = rec.recommend(user, k=5, exclude_seen=True)
    assert not {r["item"] for r in unseen} & set(tiny_ctx.sequences[user])
    with pytest.raises(RequestError, match="unknown user 'nobody'"):
        rec.recommend("nobody")
    with pytest.raises(RequestError, match="k must be between 1"):
        rec.recommend(user, k=0)


def test_split_settings_must_match_the_dataset(tmp_path, tiny_data):
    with pytest.raises(ConfigError, match=r"data.max_history: dataset 20, config 5"):
        train(
            tiny_config(f"data.path={tiny_data}", "data.max_history=5"),
            tmp_path / "r",
            progress=False,
        )


def test_evaluate_refuses_another_dataset(tiny_run, tmp_path):
    from p5rec.data.dataset import prepare

    other = tmp_path / "other"
    prepare("synthetic", None, other, tiny_config("data.synthetic.seed=99").data)
    with pytest.raises(ConfigError, match="is not the dataset"):
        evaluate_run(tiny_run, tiny_config(f"data.path={other}"), progress=False)
