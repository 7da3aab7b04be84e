"""The benchmark specs of ``eval/benchmark.py`` are valid configs, and the in-run target
checks compare the way their relation says."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("benchmark", ROOT / "eval" / "benchmark.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["benchmark"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_every_model_of_every_benchmark_is_a_valid_config(bench, tmp_path):
    for name, spec in bench.BENCHMARKS.items():
        assert spec.models["multitask"].label == bench.MT, name
        for model in spec.models.values():
            cfg = bench._config(spec, model, tmp_path)
            assert set(model.families) <= set(cfg.tasks.families), (name, model.label)
            assert cfg.train.max_minutes == model.minutes
            assert cfg.eval.split == "test"
        assert set(spec.headline) == set(spec.families), name
        systems = {t[2] for t in spec.targets}
        assert systems == {bench.MT}, name


def test_target_relations(bench):
    spec = bench.BENCHMARKS["movielens-100k"]

    def task(rows):
        return {"rows": [{"system": s, "metrics": m} for s, m in rows]}

    tasks = {
        "next_item": task(
            [
                (bench.MT, {"ndcg@10": 0.06}),
                (bench.MT_UNSEEN, {"ndcg@10": 0.0571}),  # 4.8% below: within 5%
                ("SASRec (CE)", {"ndcg@10": 0.06}),  # a tie meets >=
                ("SASRec (BCE)", {"ndcg@10": 0.05}),
            ]
        ),
        "rating": task([(bench.MT, {"rmse": 0.95}), ("biased MF", {"rmse": 0.93})]),
    }
    got = {(t["task"], t["against"]): t["met"] for t in bench.check_targets(spec, tasks)}
    assert got[("next_item", "SASRec (CE)")] is True
    assert got[("next_item", "SASRec (BCE)")] is True
    assert got[("next_item", bench.MT)] is True  # the unseen-template check
    assert got[("rating", "biased MF")] is False  # lower is better: 0.95 > 0.93
    assert got[("next_item", "p5rec next item only")] is None  # no such row: not checked


def test_seeded_jobs_keep_the_single_seed_names(bench):
    assert bench.seeded_jobs("multitask", 1) == [("multitask", 0)]
    assert bench.seeded_jobs("baselines-other", 3) == [
        ("baselines-other", 0),
        ("baselines-other-seed1", 1),
        ("baselines-other-seed2", 2),
    ]
    spec = bench.BENCHMARKS["musical-instruments"]
    model = spec.models["multitask"]
    assert bench._reseeded(spec, model, 0) is model
    cfg = bench._config(spec, bench._reseeded(spec, model, 2), ROOT / spec.data)
    assert cfg.train.seed == bench._config(spec, model, ROOT / spec.data).train.seed + 2


def test_merge_seeds_hand_computed(bench):
    def rows(mt, mf):
        return [
            {"system": bench.MT, "kind": "model", "metrics": {"rmse": mt}, "seconds": 10},
            {"system": "biased MF", "kind": "baseline", "metrics": {"rmse": mf}, "seconds": 2},
        ]

    one = rows(0.9, 0.8)
    assert bench.merge_seeds([one]) is one
    merged = bench.merge_seeds([rows(0.9, 0.8), rows(1.0, 0.8), rows(0.8, 0.8)])
    assert [r["system"] for r in merged] == [bench.MT, "biased MF"]
    assert merged[0]["metrics"]["rmse"] == pytest.approx(0.9)
    assert merged[0]["std"]["rmse"] == pytest.approx(0.1)  # sample deviation of .9, 1, .8
    assert merged[0]["seeds"] == [{"rmse": 0.9}, {"rmse": 1.0}, {"rmse": 0.8}]
    assert merged[1]["std"]["rmse"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="biased MF.*1 of 2 seeds"):
        bench.merge_seeds([rows(0.9, 0.8), rows(0.9, 0.8)[:1]])


def test_history_slots_measures_the_evaluated_rankings(tiny_run):
    """eval/history_slots.py: the kept-history metrics are the evaluator's own, and the
    counts of past items in the top 10 are consistent, the model's and SASRec's."""
    from p5rec.config import load_config
    from p5rec.evaluation import evaluate_run

    spec = importlib.util.spec_from_file_location(
        "history_slots", ROOT / "eval" / "history_slots.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    row = module.measure(tiny_run, "test", sasrec_minutes=0.02)
    for ranker in (row, row["sasrec_ce"]):
        assert 0 <= ranker["prompt_items_in_top10"] <= ranker["past_items_in_top10"] <= 10
        assert ranker["targets_in_past"] == row["targets_in_past"]
        assert 0 <= ranker["history_removed"]["hr@10"] <= 1
    cfg = load_config(tiny_run / "config.yaml", ["eval.max_examples=0"])  # every test user
    assert cfg.eval.num_beams >= 10 and not cfg.eval.remove_history
    evaluated = evaluate_run(tiny_run, cfg, ["next_item"], progress=False)
    assert evaluated["results"]["next_item"]["n"] == row["users"]
    model = evaluated["results"]["next_item"]["model"]
    for metric in ("hr@10", "ndcg@10"):
        assert row["history_kept"][metric] == pytest.approx(model[metric])


def test_target_intervals_rescore_the_saved_predictions(bench, tiny_data, tmp_path):
    """Each target gets the paired-bootstrap interval of its difference from the jobs'
    saved predictions, every seed's; a system without saved predictions gets none."""
    import random

    from p5rec.tasks import get_family

    spec = bench.Benchmark(
        title="tiny",
        source="synthetic",
        input="-",
        data=str(tiny_data),
        config="configs/demo.yaml",
        families=("next_item", "rating"),
        headline={"next_item": "ndcg@10", "rating": "rmse"},
        models={},
        sasrec_minutes=0.0,
        targets=(),
        overrides=tuple(TINY),  # the tiny dataset's settings
    )
    _, ctx, options = bench._test_context(spec, tiny_data)
    items = get_family("next_item").examples(ctx, "test", random.Random(0))
    rated = get_family("rating").examples(ctx, "test", random.Random(0))
    truth = [ex.meta["item"] for ex in items]
    others = sorted(set(truth))
    wrong = [[o for o in others if o != t][:10] for t in truth]  # never the target
    right = [[t, *w[:9]] for t, w in zip(truth, wrong)]  # the target first
    stars = [ex.meta["rating"] for ex in rated]
    saved = {
        "multitask": {
            "next_item": {bench.MT: right, bench.MT_UNSEEN: right},
            "rating": {bench.MT: [(s, s) for s in stars]},
        },
        "multitask-seed1": {
            "next_item": {bench.MT: wrong, bench.MT_UNSEEN: right},
            "rating": {bench.MT: [(s, s) for s in stars]},
        },
        "baselines-sasrec-ce": {"next_item": {"SASRec (CE)": wrong}},
        "baselines-sasrec-ce-seed1": {"next_item": {"SASRec (CE)": wrong}},
        # seed 1 lacks the rating baseline's predictions (a job saved before they were kept)
        "baselines-other": {"rating": {"biased MF": [(3.0, 3.0)] * len(stars)}},
    }
    path = bench.predictions_path(tmp_path, "multitask")
    path.parent.mkdir()
    bench.save_predictions(path, saved["multitask"])
    assert bench.load_predictions(path) == saved["multitask"]
    assert bench.load_predictions(bench.predictions_path(tmp_path, "missing")) == {}

    def target(task, metric, system, relation, against):
        return dict(task=task, metric=metric, system=system, relation=relation, against=against)

    targets = [
        target("next_item", "ndcg@10", bench.MT, ">=", "SASRec (CE)"),
        target("next_item", "ndcg@10", bench.MT_UNSEEN, "within 5%", bench.MT),
        target("rating", "rmse", bench.MT, "<=", "biased MF"),
    ]
    names = ["multitask", "baselines-sasrec-ce", "baselines-other"]
    bench.target_intervals(spec, targets, tiny_data, saved, names, 2, 50)
    # seed 0 ranks every target first (NDCG 1), seed 1 never: the mean is 0.5 on every
    # resample, against SASRec's 0
    assert targets[0]["interval"] == pytest.approx([0.5, 0.5])
    assert targets[1]["interval"] == pytest.approx([1.0, 1.0])  # (1 - 0.5) / 0.5
    assert targets[2]["interval"] is None  # biased MF has no second seed's predictions
    bench.target_intervals(spec, targets, tiny_data, saved, names, 1, 50)
    lo, hi = targets[2]["interval"]  # exact ratings: RMSE 0 against a constant 3
    assert lo <= hi < 0
