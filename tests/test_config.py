import pytest
import yaml

from p5rec.config import (
    ConfigError,
    ExperimentConfig,
    apply_overrides,
    config_hash,
    load_config,
    save_config,
    to_dict,
)


def test_defaults_and_overrides():
    cfg = load_config(None, ["train.epochs=3", "model.d_model=64", "eval.ks=[1, 5]"])
    assert cfg.train.epochs == 3
    assert cfg.model.d_model == 64
    assert cfg.eval.ks == (1, 5)
    assert cfg.data.max_history == 20
    assert isinstance(cfg, ExperimentConfig)


def test_yaml_file_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ntrain:\n  epochs: 2\n  lr: 0.01\n")
    cfg = load_config(path, ["train.epochs=5"])
    assert (cfg.name, cfg.train.epochs, cfg.train.lr) == ("x", 5, 0.01)


def test_unknown_key_lists_valid_keys(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key.*train.epoch'.*valid keys.*epochs"):
        load_config(None, ["train.epoch=3"])
    path = tmp_path / "c.yaml"
    path.write_text("trian: {}\n")
    with pytest.raises(ConfigError, match=r"'trian'.*valid keys.*'train'"):
        load_config(path)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochs=two", "expected a number"),
        ("train.epochs=1.5", "expected an integer"),
        ("train.resume=maybe", "true or false"),
        ("train.epochs=0", "train.epochs must be >= 1"),
        ("train.expectation_loss=-1", "train.expectation_loss must be >= 0"),
        ("model.finetune=half", "'full' or 'lora'"),
        ("eval.num_beams=5", "must be >= the largest K"),
        ("tasks.families=[next_item, weather]", "unknown.*weather"),
        ("data.review_split=[0.5, 0.1, 0.1]", "summing to 1"),
        ("tasks.user_text=anonymous", r"user_text must be one of \('id', 'generic', 'token'\)"),
        ("train", "expected key.sub=value"),
        ("eval.label_prior={rating: 0.5}", "'rating' is not a label family"),
        ("eval.label_prior={category: 2}", "label_prior.category must be a number from 0 to 1"),
        ("eval.label_prior={category: 0.5}", None),
        ("eval.label_prior_from=validation", "label_prior_from must be 'training' or 'model'"),
        ("eval.label_prior_from=model", None),
    ],
)
def test_bad_values_are_named(override, message):
    if message is None:  # a good value, next to the bad ones
        load_config(None, [override])
        return
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_label_prior_decides_single_answers_only():
    with pytest.raises(ConfigError, match="multi-label categories"):
        load_config(None, ["eval.multilabel=true", "eval.label_prior={category: 0.5}"])
    cfg = load_config(None, ["eval.multilabel=true", "eval.label_prior={sentiment: 0}"])
    assert cfg.eval.options()["label_prior"] == {"sentiment": 0}


def test_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent/config.yaml")


def test_save_roundtrip(tmp_path):
    cfg = load_config(
        None, ["tasks.loss_weights={rating: 2.0}", "model.lora_target_modules=[q, k, v]"]
    )
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg
    assert config_hash(again) == config_hash(cfg)
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["tasks"]["loss_weights"] == {
        "rating": 2.0
    }


def test_overrides_do_not_mutate_input():
    data = {"train": {"epochs": 1}}
    out = apply_overrides(data, ["train.epochs=4"])
    assert data == {"train": {"epochs": 1}} and out["train"]["epochs"] == 4


def test_to_dict_is_plain():
    blob = to_dict(load_config())
    assert isinstance(blob["eval"]["ks"], list)
    assert set(blob) == {"name", "data", "index", "tokenizer", "model", "tasks", "train", "eval"}


def test_exponent_without_a_dot_is_a_number():
    assert load_config(None, ["train.lr=1e-4"]).train.lr == 1e-4
    with pytest.raises(ConfigError, match="expected a number"):
        load_config(None, ["train.lr=fast"])


def test_selection_metrics_one_or_several():
    assert load_config(None, ["train.select_metric=next_item/ndcg@10"]).train.select_metric == (
        "next_item/ndcg@10",
    )
    several = ["train.select_metric=[next_item/ndcg@10, rating/rmse, loss/category]"]
    assert load_config(None, several).train.select_metric == (
        "next_item/ndcg@10",
        "rating/rmse",
        "loss/category",
    )
    with pytest.raises(ConfigError, match="'weather' is not among the validated families"):
        load_config(None, ["train.select_metric=[next_item/hr@10, weather/f1]"])
    with pytest.raises(ConfigError, match="'weather' is not among the trained families"):
        load_config(None, ["train.select_metric=loss/weather"])
    with pytest.raises(ConfigError, match="names a metric twice"):
        load_config(None, ["train.select_metric=[loss, loss]"])
    with pytest.raises(ConfigError, match="needs at least one metric"):
        load_config(None, ["train.select_metric=[]"])
    with pytest.raises(ConfigError, match="got 'ndcg'"):
        load_config(None, ["train.select_metric=[loss, ndcg]"])
