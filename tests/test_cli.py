import json

import pytest

from p5rec.cli import main


@pytest.mark.parametrize(
    "command", ["demo", "prepare", "stats", "index", "train", "evaluate", "recommend"]
)
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: p5rec " + command in capsys.readouterr().out


def test_prepare_writes_a_dataset(tmp_path, capsys):
    out = tmp_path / "ds"
    assert (
        main(
            [
                "prepare",
                "--source",
                "synthetic",
                "--out",
                str(out),
                "data.synthetic.num_users=20",
                "data.synthetic.num_items=40",
                "data.num_candidates=10",
            ]
        )
        == 0
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["users"] == 20 and manifest["counts"]["items"] == 40
    for name in ("interactions", "items", "users", "candidates"):
        assert (out / f"{name}.parquet").is_file()
    assert main(["stats", str(out)]) == 0
    card = capsys.readouterr().out
    assert "users 20  items 40" in card and "next_item          yes" in card


def test_errors_are_clear(tmp_path, capsys, tiny_run):
    assert main(["evaluate", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["recommend", str(tiny_run), "--user", "nobody"]) == 2
    assert "unknown user 'nobody'" in capsys.readouterr().err
    assert main(["recommend", str(tiny_run), "--user", "user_0000", "-k", "0"]) == 2
    assert "k must be between 1 and the catalogue size 48, got 0" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "r"), "train.epoch=1"]) == 2
    assert "valid keys" in capsys.readouterr().err
    assert main(["prepare", "--source", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown source 'nope'" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "not a prepared dataset" in capsys.readouterr().err


def test_evaluate_with_another_template(tiny_run, tiny_data, capsys):
    """p5rec evaluate --template FAMILY=TEMPLATE evaluates that family with a source text
    (or a template id); a value without FAMILY= is a usage error."""
    text = "How many stars would {user} give {item}?"
    overrides = [f"data.path={tiny_data}", "eval.max_examples=4"]
    args = ["evaluate", str(tiny_run), *overrides, "--families", "rating", "--split", "valid"]
    assert main([*args, "--template", f"rating={text}"]) == 0
    report = json.loads((tiny_run / "metrics.json").read_text())
    assert report["results"]["rating"]["template_source"] == text
    assert report["config"]["eval"]["templates"] == {"rating": text}
    with pytest.raises(SystemExit):
        main([*args, "--template", "rating"])
    assert "expected FAMILY=TEMPLATE" in capsys.readouterr().err


def test_recommend_json(tiny_run, capsys):
    assert main(["recommend", str(tiny_run), "--user", "user_0001", "-k", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in out] == [1, 2, 3]


def test_index_reports_and_saves_a_scheme(tiny_data, tmp_path, capsys):
    from p5rec.indexing import ItemIndex

    out = tmp_path / "index.json"
    args = ["index", "--data", str(tiny_data), "--out", str(out), "data.num_candidates=20"]
    assert main([*args, "index.scheme=semantic", "index.suffix=true"]) == 0
    printed = capsys.readouterr().out
    assert "semantic + item suffix, 48 items" in printed and "collisions_resolved:" in printed
    index = ItemIndex.load(out)
    assert len(index.codes) == 48 and index.meta["config"]["scheme"] == "semantic"
    assert main([*args, "index.scheme=nope"]) == 2
    assert "index.scheme 'nope' is unknown" in capsys.readouterr().err
