import subprocess
import sys
import zipfile

import pytest

from p5rec.prompts import PromptError, load_templates, prompts_dir
from p5rec.tasks import FAMILIES

VALUES = {
    "user": "user_1",
    "history": "<a_1><b_2> <a_3><b_4>",
    "rated_history": "<a_1><b_2> 4 <a_3><b_4> 5",
    "user_ratings": "average 3.9 of 14 ratings",
    "item_ratings": "average 4.2 of 8 ratings",
    "candidates": "<a_1><b_2> <a_5><b_6>",
    "item": "<a_1><b_2>",
    "item_title": "Avela hydrating serum",
    "review": "The serum is great.",
}


def test_six_families_registered():
    from p5rec.config import FAMILIES as CONFIG_FAMILIES

    assert len(CONFIG_FAMILIES) == 6 and set(FAMILIES) == set(CONFIG_FAMILIES)


@pytest.mark.parametrize(
    "family, template",
    [(f, t) for f, fam in sorted(FAMILIES.items()) for t in fam.templates],
    ids=lambda x: getattr(x, "id", x),
)
def test_every_template_renders(family, template):
    fam = FAMILIES[family]
    source, target = template.render({k: VALUES[k] for k in (*fam.required, *fam.optional)}, "4")
    assert "{" not in source and "}" not in source
    for name in fam.required:
        assert VALUES[name] in source
    assert template.parse_target(target) == "4"


def test_each_family_has_seen_and_unseen():
    for fam in FAMILIES.values():
        splits = [t.split for t in fam.templates]
        assert splits.count("seen") >= 3 and splits.count("unseen") >= 1


def _write(tmp_path, body):
    (tmp_path / "fam.yaml").write_text(body)
    return tmp_path


GOOD = '  - {id: %s, split: %s, source: "%s", target: "%s"}\n'


def _file(*templates):
    return "family: fam\ntemplates:\n" + "".join(GOOD % t for t in templates)


@pytest.mark.parametrize(
    "body, message",
    [
        (
            _file(("a", "seen", "{x} {y}", "{target}"), ("b", "unseen", "{x}", "{target}")),
            r"template 'a': unknown placeholder\(s\) \['y'\]",
        ),
        (
            _file(("a", "seen", "hello", "{target}"), ("b", "unseen", "{x}", "{target}")),
            r"template 'a': source must use placeholder\(s\) \['x'\]",
        ),
        (
            _file(("a", "seen", "{x}", "is {target}"), ("b", "unseen", "{x}", "{target}")),
            "must be exactly",
        ),
        (
            _file(("a", "seen", "{x}", "{label}"), ("b", "unseen", "{x}", "{target}")),
            "target must contain",
        ),
        (
            _file(("a", "seen", "{x}", "{target}"), ("a", "unseen", "{x}", "{target}")),
            "duplicate template id",
        ),
        (_file(("a", "seen", "{x}", "{target}")), "needs at least one 'unseen'"),
        (
            _file(("a", "often", "{x}", "{target}"), ("b", "unseen", "{x}", "{target}")),
            "split must be",
        ),
        (_file(("a", "seen", "{x!r}", "{target}"), ("b", "unseen", "{x}", "{target}")), "plain"),
        ("family: other\ntemplates: []\n", "expected a mapping with 'family: fam'"),
        ("family: fam\ntemplates: [\n", "not valid YAML"),
    ],
)
def test_bad_templates_are_named(tmp_path, body, message):
    d = _write(tmp_path, body)
    with pytest.raises(PromptError, match=message):
        load_templates("fam", ["x"], [], exact_target=True, directory=d)


def test_missing_family_file(tmp_path):
    with pytest.raises(PromptError, match="no template file"):
        load_templates("nothing", [], directory=tmp_path)


def test_templates_ship_inside_the_wheel(tmp_path):
    """A non-editable install, run outside the repository, still finds the templates."""
    root = prompts_dir().parent
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(root),
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "wheel"),
            "-q",
        ],
        capture_output=True,
        text=True,
    )
    if build.returncode != 0 and "hatchling" in build.stderr:
        pytest.skip("hatchling is not installed (pip install -e '.[dev]')")
    assert build.returncode == 0, build.stderr
    wheel = next((tmp_path / "wheel").glob("p5rec-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for family in FAMILIES:
        assert f"p5rec/_prompts/{family}.yaml" in names
    assert "p5rec/_configs/demo.yaml" in names
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(target)
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import p5rec.prompts as p; print(p.prompts_dir()); "
            "print(len(p.load_templates('rating', ['item'], "
            "['user', 'item_title', 'history', 'rated_history', 'user_ratings', 'item_ratings'])))",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(target)},
    )
    assert probe.returncode == 0, probe.stderr
    where, count = probe.stdout.split()
    assert where.startswith(str(target)) and int(count) >= 4


def test_template_noise_changes_only_the_template_words():
    import random

    from p5rec.config import ConfigError, TasksConfig
    from p5rec.prompts import Template

    t = Template(
        "t", "next_item", "seen", "Given the history of {user}: {history}, what next?", "{target}"
    )
    fields = {"user": "user 7", "history": "<a_1> {b} <a_2>"}
    assert t.render_noisy(fields, "x", random.Random(0), 0.0, ["zz"]) == t.render(fields, "x")
    variants = {t.render_noisy(fields, "x", random.Random(n), 0.5, ["zz"])[0] for n in range(40)}
    assert len(variants) > 10
    for source in variants:
        assert "user 7" in source and "<a_1> {b} <a_2>" in source  # values untouched
        words = source.replace("user 7", "").replace("<a_1> {b} <a_2>", "").split()
        known = {"Given", "the", "history", "of", "what", "next?", "zz", ":", ","}
        assert all(w in known or w.strip(":,") in known for w in words), source
    assert any("zz" in s for s in variants) and any("Given" not in s for s in variants)
    with pytest.raises(ConfigError, match="template_noise"):
        TasksConfig(template_noise=1.0)


def test_template_insert_adds_words_after_template_words_only():
    import random
    import re

    from p5rec.config import ConfigError, TasksConfig
    from p5rec.prompts import Template

    t = Template("t", "category", "seen", "Item {item} titled {item_title} category?", "{target}")
    fields = {"item": "<a_1>", "item_title": "Toy {Story}"}
    plain = t.render(fields, "Toys")
    # off: the plain rendering, and no draws from the generator (other settings reproduce)
    rng = random.Random(0)
    assert t.render_noisy(fields, "Toys", rng, 0.0, ["zz"], 0.0, 0.0) == plain
    assert rng.random() == random.Random(0).random()
    counts = set()
    for n in range(30):
        source, target = t.render_noisy(fields, "Toys", random.Random(n), 0.0, ["{z}"], 0.0, 0.5)
        assert target == "Toys"
        # every template word kept in order, each followed by zero or one inserted word;
        # the values untouched (an inserted word never lands inside one)
        expected = r"Item( \{z\})? <a_1> titled( \{z\})? Toy \{Story\} category\?( \{z\})?"
        assert re.fullmatch(expected, source), source
        counts.add(source.count("{z}"))
    assert counts == {0, 1, 2, 3}
    always = t.render_noisy(fields, "Toys", random.Random(0), 0.0, ["zz"], 0.0, 0.999999)[0]
    assert always == "Item zz <a_1> titled zz Toy {Story} category? zz"
    with pytest.raises(ConfigError, match="template_insert"):
        TasksConfig(template_insert=1.0)


def test_template_tail_closes_the_source_with_a_sentence_of_noise_words():
    import random
    import re

    from p5rec.config import ConfigError, TasksConfig
    from p5rec.prompts import Template

    t = Template("t", "category", "seen", "Item {item} titled {item_title} category?", "{target}")
    fields = {"item": "<a_1>", "item_title": "Toy {Story}"}
    plain = t.render(fields, "Toys")
    # off: the plain rendering, and no draws from the generator
    rng = random.Random(0)
    assert t.render_noisy(fields, "Toys", rng, 0.0, ["zz"], tail=0.0) == plain
    assert rng.random() == random.Random(0).random()
    lengths, tailed = set(), 0
    for n in range(60):
        source, target = t.render_noisy(fields, "Toys", random.Random(n), 0.0, ["{z}"], tail=0.5)
        assert target == "Toys"
        # the template as written, then nothing or 2 to 6 words and a full stop (braces in a
        # drawn word stay literal)
        m = re.fullmatch(r"Item <a_1> titled Toy \{Story\} category\?((?: \{z\})+\.)?", source)
        assert m, source
        if m.group(1):
            tailed += 1
            lengths.add(m.group(1).count("{z}"))
    assert 15 <= tailed <= 45
    assert lengths == {2, 3, 4, 5, 6}
    always = t.render_noisy(fields, "Toys", random.Random(0), 0.0, ["zz"], tail=1.0)[0]
    assert always.startswith(plain[0] + " zz zz") and always.endswith(" zz.")
    assert t.render_noisy(fields, "Toys", random.Random(0), 0.0, [], tail=1.0) == plain
    with pytest.raises(ConfigError, match="template_tail"):
        TasksConfig(template_tail=1.5)
    assert TasksConfig(template_tail=0.3).noisy and not TasksConfig().noisy


def test_template_shuffle_reorders_whole_segments_and_keeps_the_end():
    import random

    from p5rec.config import ConfigError, TasksConfig
    from p5rec.prompts import Template

    t = Template("t", "rating", "seen", "Will {user} like {item} ({item_title})? Say.", "{target}")
    fields = {"user": "U", "item": "<a_1>", "item_title": "Toy {Story}"}
    plain = t.render(fields, "5")
    assert t.render_noisy(fields, "5", random.Random(0), 0.0, ["zz"], 0.0) == plain
    segments = {"Will U", "like <a_1>", "(Toy {Story}"}  # each placeholder with its text
    orders = set()
    for n in range(30):
        source, target = t.render_noisy(fields, "5", random.Random(n), 0.0, ["zz"], 1.0)
        assert target == "5" and source.endswith(" )? Say.")  # segments joined by spaces
        head = source.removesuffix(" )? Say.")
        assert all(s in head for s in segments), source
        order = tuple(sorted(segments, key=head.index))
        assert " ".join(order) == head, source
        orders.add(order)
    assert len(orders) == 6  # every order of the three segments occurs
    # noise and shuffle together: values intact, every word from the template or the noise
    for n in range(20):
        source, _ = t.render_noisy(fields, "5", random.Random(n), 0.5, ["zz"], 0.5)
        rest = source
        for value in fields.values():
            assert value in rest
            rest = rest.replace(value, " ")
        assert set(rest.split()) <= {"Will", "like", "(", ")?", "Say.", "zz"}, source
    with pytest.raises(ConfigError, match="template_shuffle"):
        TasksConfig(template_shuffle=1.5)
