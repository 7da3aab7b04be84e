"""Corrupted inputs, generated: every reader either reads them or stops with an error that
names the file; under ``--on-error skip`` whatever is skipped is counted."""

import gzip
import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p5rec.config import DataConfig
from p5rec.data.corpus import CorpusError
from p5rec.data.dataset import prepare
from p5rec.data.problems import ReadError
from p5rec.data.readers import ReadOptions
from tests import readers_fixtures as fx

CFG = DataConfig(num_candidates=2)

edit = st.tuples(
    st.sampled_from(["flip", "insert", "delete", "truncate", "dup_line", "drop_line"]),
    st.floats(0, 1, exclude_max=True),
    st.binary(min_size=1, max_size=4),
)
edits = st.lists(edit, min_size=1, max_size=4)


def corrupt(data: bytes, ops) -> bytes:
    for op, where, junk in ops:
        if not data:
            data = junk
            continue
        i = int(where * len(data))
        if op == "flip":
            data = data[:i] + bytes([data[i] ^ junk[0]]) + data[i + 1 :]
        elif op == "insert":
            data = data[:i] + junk + data[i:]
        elif op == "delete":
            data = data[:i] + data[i + len(junk) :]
        elif op == "truncate":
            data = data[:i]
        else:
            lines = data.split(b"\n")
            k = int(where * len(lines))
            lines[k : k + 1] = [lines[k]] * 2 if op == "dup_line" else []
            data = b"\n".join(lines)
    return data


def _s3rec(tmp, data, role):
    root = fx.s3rec_dir(tmp / "in")
    name = {
        "seq": "Toy.txt",
        "attrs": "Toy_item2attributes.json",
        "maps": "datamaps.json",
        "texts": "item_texts.txt",
    }[role]
    (root / name).write_bytes(data)
    return "s3rec", root, {}


def _amazon(tmp, data, role):
    name = "reviews_Toys.json" + (".gz" if role == "gz" else "")
    (tmp / "in").mkdir()
    (tmp / "in" / name).write_bytes(data)
    return "amazon", tmp / "in" / name, {}


def _movielens(tmp, data, role):
    root = fx.movielens_dir(tmp / "in")
    (root / role).write_bytes(data)
    return "movielens", root, {}


def _generic(tmp, data, role):
    (tmp / "in").mkdir()
    path = tmp / "in" / f"log.{role}"
    path.write_bytes(data)
    return role, path, fx.CSV_COLUMNS


def _jsonl() -> bytes:
    header, *rows = [r.split(",") for r in fx.CSV.strip().splitlines()]
    return "\n".join(json.dumps(dict(zip(header, r))) for r in rows).encode()


def _parquet(tmp) -> bytes:
    header, *rows = [r.split(",") for r in fx.CSV.strip().splitlines()]
    path = tmp / "clean.parquet"
    pq.write_table(pa.table({h: [r[n] for r in rows] for n, h in enumerate(header)}), path)
    return path.read_bytes()


CASES = {
    "s3rec-seq": (_s3rec, "seq", lambda t: fx.S3REC_SEQ.encode()),
    "s3rec-attrs": (_s3rec, "attrs", lambda t: json.dumps(fx.S3REC_ATTRS).encode()),
    "s3rec-maps": (_s3rec, "maps", lambda t: json.dumps(fx.S3REC_MAPS).encode()),
    "s3rec-texts": (_s3rec, "texts", lambda t: fx.S3REC_TEXTS.encode()),
    "amazon": (_amazon, "plain", lambda t: "\n".join(fx.amazon_lines(3)).encode()),
    "amazon-gz": (_amazon, "gz", lambda t: gzip.compress("\n".join(fx.amazon_lines()).encode())),
    "movielens-data": (_movielens, "u.data", lambda t: fx.RATINGS_100K.encode()),
    "movielens-item": (_movielens, "u.item", lambda t: fx.MOVIES_100K.encode()),
    "csv": (_generic, "csv", lambda t: fx.CSV.encode()),
    "jsonl": (_generic, "jsonl", lambda t: _jsonl()),
    "parquet": (_generic, "parquet", _parquet),
}


@pytest.mark.parametrize("case", sorted(CASES))
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=edits, policy=st.sampled_from(["raise", "skip"]))
def test_corrupted_inputs_read_or_fail_clearly(tmp_path_factory, case, ops, policy):
    tmp = tmp_path_factory.mktemp(case)
    build, role, clean = CASES[case]
    source, inp, cols = build(tmp, corrupt(clean(tmp), ops), role)
    try:
        m = prepare(
            source, inp, tmp / "ds", CFG, ReadOptions(on_error=policy, progress=False, **cols)
        )
    except ReadError as e:
        assert e.path and str(e).startswith(e.path) and e.kind in str(e)
        return
    except CorpusError as e:  # everything was bad: nothing left to write
        assert "no interactions" in str(e) or "empty" in str(e)
        return
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert m["counts"]["interactions"] > 0
    if policy == "raise":
        assert m["skipped"]["skipped"] == {}
    # every skipped kind comes with examples that name the damaged input file and line
    for kind in m["skipped"]["skipped"]:
        assert m["skipped"]["examples"][kind]
        assert all(e.startswith(str(tmp / "in")) for e in m["skipped"]["examples"][kind])
