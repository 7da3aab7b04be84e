import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from p5rec.config import DataConfig
from p5rec.data.dataset import load_dataset, prepare
from p5rec.data.problems import ReadError
from p5rec.data.readers import READERS, ReadOptions
from tests import readers_fixtures as fx

CFG = DataConfig(num_candidates=2)


def prep(source, inp, out, **opts):
    return prepare(source, inp, out, CFG, ReadOptions(progress=False, **opts))


def test_registry_names_every_reader():
    assert set(READERS) >= {"synthetic", "s3rec", "amazon", "movielens", "csv", "jsonl", "parquet"}


# --- S3-Rec -----------------------------------------------------------------------------


def test_s3rec_maps_ids_and_takes_brand_out_of_the_categories(tmp_path):
    m = prep("s3rec", fx.s3rec_dir(tmp_path / "in"), tmp_path / "ds")
    assert m["counts"] == {**m["counts"], "users": 4, "items": 5, "interactions": 14}
    corpus, splits, _ = load_dataset(tmp_path / "ds")
    assert set(corpus.items) == {f"ASIN{n}" for n in range(1, 6)}
    item = corpus.items["ASIN1"]  # attributes [Acme, Makeup, Eyes]: Acme only ever leads
    assert item.categories == ("Makeup", "Eyes") and item.text == "brand Acme"
    assert item.title == "product number 1"
    # leave-one-out: the test target is each line's last item, validation the one before
    test = {e.user: e for e in splits.next_item["test"]}
    assert test["U1"].target == "ASIN4" and test["U1"].history == ("ASIN1", "ASIN2", "ASIN3")
    assert {e.user: e.target for e in splits.next_item["valid"]}["U3"] == "ASIN5"
    items = pq.read_table(tmp_path / "ds" / "items.parquet").to_pydict()
    assert dict(zip(items["item"], items["source_id"]))["ASIN3"] == "3"
    assert m["source"]["notes"]["brand_attributes"] == 2
    assert set(m["source"]["files"]) == {
        "sequences",
        "attributes",
        "attribute_names",
        "datamaps",
        "item_texts",
    }


def test_s3rec_without_datamaps_keeps_integer_ids(tmp_path):
    root = fx.s3rec_dir(tmp_path / "in", **{"datamaps.json": None, "item_texts.txt": None})
    prep("s3rec", root, tmp_path / "ds")
    corpus, _, _ = load_dataset(tmp_path / "ds")
    assert set(corpus.items) == {"1", "2", "3", "4", "5"}


@pytest.mark.parametrize(
    "seq, kind, line",
    [
        ("1 1 2 3\n2\n", "missing_field", 2),
        ("1 1 2 3\n2 2 x 3\n", "bad_value", 2),
        ("1 1 2 3\n1 2 3 4\n", "duplicate_user", 2),
        ("1 1 2 3\n9 1 2 3\n", "datamaps_mismatch", 2),
        (b"1 1 2 3\n2 2 \xff 3\n", "encoding", 2),
    ],
)
def test_s3rec_bad_sequence_lines_name_file_and_line(tmp_path, seq, kind, line):
    root = fx.s3rec_dir(tmp_path / "in", seq)
    with pytest.raises(ReadError) as err:
        prep("s3rec", root, tmp_path / "ds")
    assert err.value.kind == kind and err.value.line == line
    assert f"Toy.txt:{line}:" in str(err.value)


def test_s3rec_attribute_and_text_problems(tmp_path):
    attrs = {**fx.S3REC_ATTRS, "99": [1]}
    with pytest.raises(ReadError, match=r"item 99: names an item not in the sequences"):
        prep(
            "s3rec",
            fx.s3rec_dir(tmp_path / "a", **{"Toy_item2attributes.json": attrs}),
            tmp_path / "ds",
        )
    names = {k: v for k, v in fx.S3REC_NAMES.items() if k != "3"}
    with pytest.raises(ReadError, match=r"no name for attributes \['3'\]"):
        prep(
            "s3rec",
            fx.s3rec_dir(tmp_path / "b", **{"Toy_attrid2name.json": names}),
            tmp_path / "ds",
        )
    texts = fx.S3REC_TEXTS + "NOPE unknown thing\n"
    with pytest.raises(ReadError, match=r"item_texts.txt:6: ASIN 'NOPE'"):
        prep("s3rec", fx.s3rec_dir(tmp_path / "c", **{"item_texts.txt": texts}), tmp_path / "ds")
    bad_maps = {**fx.S3REC_MAPS, "id2item": {"1": 5}}
    with pytest.raises(ReadError, match=r"datamaps.json: expected 'id2user' and 'id2item'"):
        prep("s3rec", fx.s3rec_dir(tmp_path / "e", **{"datamaps.json": bad_maps}), tmp_path / "ds")
    with pytest.raises(ReadError, match=r"datamaps.json:1: datamaps: invalid JSON"):
        prep("s3rec", fx.s3rec_dir(tmp_path / "d", **{"datamaps.json": "{oops"}), tmp_path / "ds")


def test_s3rec_skip_counts_every_kind(tmp_path, capsys):
    from p5rec.cli import main

    seq = fx.S3REC_SEQ + "5\n6 1 x\n1 1 2 3\n9 1 2 3\n"
    root = fx.s3rec_dir(tmp_path / "in", seq)
    m = prep("s3rec", root, tmp_path / "ds", on_error="skip")
    assert m["skipped"]["skipped"] == {
        "bad_value": 1,
        "datamaps_mismatch": 1,
        "duplicate_user": 1,
        "missing_field": 1,
    }
    assert m["counts"]["users"] == 4  # the good lines are all kept
    assert (
        main(
            [
                "prepare",
                "--source",
                "s3rec",
                "--input",
                str(root),
                "--out",
                str(tmp_path / "cli"),
                "--on-error",
                "skip",
                "--quiet",
                "data.num_candidates=2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "skipped 1 record(s): duplicate_user" in out and "Toy.txt:7" in out


# --- Amazon -----------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [None, "gz", "zip"])
def test_amazon_json_and_python_literal_lines(tmp_path, compress):
    lines = fx.amazon_lines(literal_every=3)
    assert lines[2].startswith("{'")  # a Python literal, as in the original 2014 dumps
    path = fx.write(tmp_path / "reviews_Toys.json", "\n".join(lines) + "\n", compress)
    m = prep("amazon", path, tmp_path / "ds")
    assert m["counts"]["interactions"] == 12 and m["counts"]["users"] == 4
    corpus, splits, _ = load_dataset(tmp_path / "ds")
    e = corpus.interactions[0]
    assert e.review == f"{e.user} on {e.item}" and e.summary == "fine thing" and e.rating
    # each user's last two events are next-item holdouts, left out of the review tasks
    assert m["split_report"]["reviews_left_out_next_item_holdout"] == 8
    assert sum(len(v) for v in splits.reviews.values()) == 4


def test_amazon_2018_layout_with_metadata(tmp_path):
    recs = [
        fx.review(f"U{u}", f"I{(u + k) % 4}", 100 * u + k, verified=bool(k), style={"Size:": "L"})
        for u in range(3)
        for k in range(3)
    ]
    fx.write(tmp_path / "Toys_5.json", "\n".join(json.dumps(r) for r in recs), "gz")
    meta = [
        repr(
            {
                "asin": "I0",
                "title": "Red ball",
                "brand": "Acme",
                "categories": [["Toys", "Balls", "Red"]],
            }
        ),
        json.dumps({"asin": "I1", "title": "Blue ball", "category": ["Toys", "Balls"]}),
        json.dumps({"asin": "I9", "title": "Not reviewed", "category": ["Toys", "Kites"]}),
    ]
    fx.write(tmp_path / "meta_Toys.json", "\n".join(meta), "gz")
    m = prep("amazon", tmp_path, tmp_path / "ds")
    assert m["source"]["notes"] == {"verified": 6, "not_verified": 3, "with_style": 9}
    assert set(m["source"]["files"]) == {"reviews", "meta"}
    assert m["cleaning"]["metadata_items_without_events"] == 1
    assert m["cleaning"]["items_without_metadata"] == 2
    corpus, _, _ = load_dataset(tmp_path / "ds")
    # the root shared by every item ("Toys") is dropped
    assert corpus.items["I0"].categories == ("Balls", "Red")
    assert corpus.items["I0"].title == "Red ball" and corpus.items["I0"].text == "brand Acme"


@pytest.mark.parametrize(
    "line, kind",
    [
        ("{not json at all", "malformed"),
        ("[1, 2, 3]", "malformed"),
        ("{'asin': __import__('os').system('echo hacked')}", "malformed"),
        (json.dumps({"asin": "I0", "overall": 5.0, "unixReviewTime": 1}), "missing_field"),
        (json.dumps(fx.review("U9", "I0", 5, rating=7.0)), "rating_out_of_range"),
        (json.dumps(fx.review("U9", "I0", 5, rating="five")), "bad_value"),
        (json.dumps({**fx.review("U9", "I0", 5), "unixReviewTime": "soon"}), "missing_field"),
    ],
)
def test_amazon_bad_lines(tmp_path, line, kind):
    lines = fx.amazon_lines()
    lines.insert(4, line)
    path = fx.write(tmp_path / "reviews_Toys.json", "\n".join(lines))
    with pytest.raises(ReadError) as err:
        prep("amazon", path, tmp_path / "ds")
    assert err.value.kind == kind and err.value.line == 5
    assert "reviews_Toys.json:5:" in str(err.value)
    m = prep("amazon", path, tmp_path / "ds", on_error="skip")
    assert m["skipped"]["skipped"] == {kind: 1} and m["counts"]["interactions"] == 12


def test_amazon_review_time_fallback_and_empty_file(tmp_path):
    rec = fx.review("U0", "I0", 0)
    del rec["unixReviewTime"]
    rec["reviewTime"] = "09 1, 2016"
    lines = [*fx.amazon_lines(), json.dumps(rec)]
    prep("amazon", fx.write(tmp_path / "r.json", "\n".join(lines)), tmp_path / "ds")
    corpus, _, _ = load_dataset(tmp_path / "ds")
    assert max(e.timestamp for e in corpus.interactions) == 1472688000
    with pytest.raises(ReadError, match="empty.json: the file is empty"):
        prep("amazon", fx.write(tmp_path / "empty.json", "\n\n"), tmp_path / "ds2")


# --- MovieLens --------------------------------------------------------------------------


@pytest.mark.parametrize("one_m", [False, True])
def test_movielens_reads_ratings_genres_users(tmp_path, one_m):
    m = prep("movielens", fx.movielens_dir(tmp_path / "ml", one_m), tmp_path / "ds")
    assert (m["counts"]["users"], m["counts"]["items"], m["counts"]["interactions"]) == (4, 4, 16)
    corpus, _, _ = load_dataset(tmp_path / "ds")
    if one_m:
        assert corpus.items["1"].categories == ("Comedy", "Drama")
    else:
        assert corpus.items["1"].categories == ("Action",)  # flag 1 of the genre list
    assert corpus.items["2"].title.startswith("Movie 2")
    users = pq.read_table(tmp_path / "ds" / "users.parquet").to_pydict()
    assert json.loads(users["attributes"][0])["occupation"] in ("engineer", "3")
    assert m["cleaning"]["metadata_items_without_events"] == 1  # movie 5 has no rating


@pytest.mark.parametrize(
    "name, content, kind, line",
    [
        ("u.data", fx.RATINGS_100K + "1\t2\t3\n", "columns", 17),
        ("u.data", fx.RATINGS_100K + "1\t99\t3\t5\n", "unknown_item", 17),
        ("u.data", fx.RATINGS_100K + "1\t2\t6\t5\n", "rating_out_of_range", 17),
        ("u.data", fx.RATINGS_100K + "9\t2\t3\t5\n", "unknown_user", 17),
        ("u.data", fx.RATINGS_100K + "1\t2\t3\tnoon\n", "bad_value", 17),
        ("u.item", fx.MOVIES_100K.replace("|0|0|0\n", "|0|2|0\n", 1), "bad_value", 1),
    ],
)
def test_movielens_bad_records(tmp_path, name, content, kind, line):
    root = fx.movielens_dir(tmp_path / "ml", **{name: content})
    with pytest.raises(ReadError) as err:
        prep("movielens", root, tmp_path / "ds")
    assert (err.value.kind, err.value.line) == (kind, line)
    assert f"{name}:{line}:" in str(err.value)


def test_movielens_missing_file_is_named(tmp_path):
    root = fx.movielens_dir(tmp_path / "ml", **{"u.item": None})
    with pytest.raises(ReadError, match="no u.item found"):
        prep("movielens", root, tmp_path / "ds")


# --- generic CSV / JSONL / Parquet ------------------------------------------------------


def _check_generic(tmp_path, source, path):
    m = prep(source, path, tmp_path / "ds", **fx.CSV_COLUMNS)
    assert (m["counts"]["users"], m["counts"]["items"], m["counts"]["interactions"]) == (4, 5, 16)
    corpus, _, _ = load_dataset(tmp_path / "ds")
    assert corpus.items["i1"].title == "Thing 1" and corpus.items["i1"].categories == (
        "toys",
        "red",
    )
    seq = corpus.sequences()["u1"]
    assert seq == ["i1", "i2", "i3", "i4"]  # ordered by the ISO dates
    return m


def test_csv_reader(tmp_path):
    _check_generic(tmp_path, "csv", fx.write(tmp_path / "log.csv", fx.CSV, "gz"))


def test_jsonl_reader(tmp_path):
    header, *rows = [r.split(",") for r in fx.CSV.strip().splitlines()]
    text = "\n".join(json.dumps(dict(zip(header, r))) for r in rows)
    _check_generic(tmp_path, "jsonl", fx.write(tmp_path / "log.jsonl", text))


def test_parquet_reader(tmp_path):
    header, *rows = [r.split(",") for r in fx.CSV.strip().splitlines()]
    table = pa.table({h: [r[n] for r in rows] for n, h in enumerate(header)})
    pq.write_table(table, tmp_path / "log.parquet")
    _check_generic(tmp_path, "parquet", tmp_path / "log.parquet")


def test_without_time_column_input_order_is_time(tmp_path):
    path = fx.write(tmp_path / "log.csv", "u,i\na,x\na,z\na,y\nb,x\nb,y\nb,z\n")
    prep("csv", path, tmp_path / "ds", user_col="u", item_col="i")
    corpus, _, _ = load_dataset(tmp_path / "ds")
    assert corpus.sequences()["a"] == ["x", "z", "y"]


@pytest.mark.parametrize(
    "extra, kind",
    [
        ("u9,i1,2020-01-01,3,T,toys,EXTRA\n", "columns"),
        (",i1,2020-01-01,3,T,toys\n", "missing_field"),
        ("u9,i1,yesterday,3,T,toys\n", "bad_value"),
        ("u9,i1,2020-01-01,0,T,toys\n", "rating_out_of_range"),
    ],
)
def test_csv_bad_rows(tmp_path, extra, kind):
    path = fx.write(tmp_path / "log.csv", fx.CSV + extra)
    with pytest.raises(ReadError) as err:
        prep("csv", path, tmp_path / "ds", **fx.CSV_COLUMNS)
    assert (err.value.kind, err.value.line) == (kind, 18)
    m = prep("csv", path, tmp_path / "ds", on_error="skip", **fx.CSV_COLUMNS)
    assert m["skipped"]["skipped"] == {kind: 1}


def test_generic_fatal_errors(tmp_path):
    with pytest.raises(ReadError, match=r"column\(s\) \['nope'\] not found"):
        prep(
            "csv",
            fx.write(tmp_path / "a.csv", fx.CSV),
            tmp_path / "ds",
            **{**fx.CSV_COLUMNS, "rating_col": "nope"},
        )
    with pytest.raises(ValueError, match="need a column mapping"):
        prep("csv", fx.write(tmp_path / "b.csv", fx.CSV), tmp_path / "ds")
    with pytest.raises(ReadError, match="the file is empty"):
        prep("csv", fx.write(tmp_path / "c.csv", ""), tmp_path / "ds", **fx.CSV_COLUMNS)
    with pytest.raises(ReadError, match="not a readable Parquet file"):
        prep("parquet", fx.write(tmp_path / "d.parquet", "nope"), tmp_path / "ds", **fx.CSV_COLUMNS)


def test_cli_prepare_options_are_checked(tmp_path, capsys):
    from p5rec.cli import main

    path = fx.write(tmp_path / "log.csv", fx.CSV)
    base = [
        "prepare",
        "--source",
        "csv",
        "--input",
        str(path),
        "--out",
        str(tmp_path / "ds"),
        "--user-col",
        "user",
        "--item-col",
        "item",
        "--quiet",
        "data.num_candidates=2",
    ]
    assert main([*base, "--file", "nonsense"]) == 2
    assert "--file expects ROLE=PATH" in capsys.readouterr().err
    assert main([*base, "--rating-range", "5"]) == 2
    assert "--rating-range expects LOW,HIGH" in capsys.readouterr().err
    assert main([*base, "--rating-range", "5,1"]) == 2
    assert "LOW < HIGH" in capsys.readouterr().err
    assert main([*base, "--k-core", "2", "--time-col", "when"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["stats", str(tmp_path / "nothing")]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_csv_quotes_line_breaks_bom_and_encodings(tmp_path):
    cols = {"user_col": "user", "item_col": "item", "review_col": "review"}
    good = "".join(f"u{n % 3},i{n % 4},fine\n" for n in range(12))
    # an unbalanced quote is an error at the line where its record starts
    path = fx.write(tmp_path / "q.csv", 'user,item,review\nu1,i1,"bad quote\n' + good)
    with pytest.raises(ReadError) as err:
        prep("csv", path, tmp_path / "ds", **cols)
    assert (err.value.kind, err.value.line) == ("malformed", 2)
    # line breaks inside a quoted field are kept; a byte-order mark is ignored
    text = '\ufeffuser,item,review\nu1,i1,"line one\nline two"\n' + good
    prep("csv", fx.write(tmp_path / "ok.csv", text), tmp_path / "ds", **cols)
    corpus, _, _ = load_dataset(tmp_path / "ds")
    assert any(e.review == "line one\nline two" for e in corpus.interactions)
    with pytest.raises(ValueError, match="not ASCII-compatible"):
        prep("csv", path, tmp_path / "ds", encoding="utf-16", **cols)


def test_out_of_range_numbers_are_bad_values(tmp_path):
    cols = {"user_col": "user", "item_col": "item", "time_col": "t"}
    rows = "".join(f"u{n % 3},i{n % 4},{n}\n" for n in range(12))
    for bad in ("99999999999999999999", "1e300"):
        path = fx.write(tmp_path / "t.csv", f"user,item,t\n{rows}u1,i1,{bad}\n")
        with pytest.raises(ReadError) as err:
            prep("csv", path, tmp_path / "ds", **cols)
        assert (err.value.kind, err.value.line) == ("bad_value", 14)
    lines = fx.amazon_lines()
    lines.append(json.dumps(fx.review("U1", "I1", 10**20)))
    lines.append('{"reviewerID": "U1", "asin": "I1", "overall": ' + "9" * 5000 + "}")
    path = fx.write(tmp_path / "r.json", "\n".join(lines))
    m = prep("amazon", path, tmp_path / "ds", on_error="skip")
    assert m["skipped"]["skipped"] == {"missing_field": 1, "malformed": 1}


def test_s3rec_blank_attribute_names_are_reported(tmp_path):
    names = {**fx.S3REC_NAMES, "2": " "}
    root = fx.s3rec_dir(tmp_path / "in", **{"Toy_attrid2name.json": names})
    with pytest.raises(ReadError, match=r"item 1: category attributes \['2'\] have no name"):
        prep("s3rec", root, tmp_path / "ds")
    names = {**fx.S3REC_NAMES, "2": 7}
    root = fx.s3rec_dir(tmp_path / "in2", **{"Toy_attrid2name.json": names})
    with pytest.raises(ReadError, match=r"names of attributes \['2'\] are not text"):
        prep("s3rec", root, tmp_path / "ds")
    # a blank brand (Amazon metadata has items with brand "") just means no brand
    names = {**fx.S3REC_NAMES, "10": ""}
    prep(
        "s3rec", fx.s3rec_dir(tmp_path / "in3", **{"Toy_attrid2name.json": names}), tmp_path / "ds"
    )
    corpus, _, _ = load_dataset(tmp_path / "ds")
    assert corpus.items["ASIN1"].text == "" and corpus.items["ASIN1"].categories == (
        "Makeup",
        "Eyes",
    )


def test_tabular_item_metadata_from_the_first_row_that_has_each_field(tmp_path):
    text = "user,item,title,genre\nu1,i1,Ball,\nu2,i1,,toys\nu3,i1,Other,games\n"
    path = fx.write(tmp_path / "m.csv", text)
    prep(
        "csv",
        path,
        tmp_path / "ds",
        user_col="user",
        item_col="item",
        title_col="title",
        category_col="genre",
    )
    corpus, _, _ = load_dataset(tmp_path / "ds")
    assert corpus.items["i1"].title == "Ball" and corpus.items["i1"].categories == ("toys",)
