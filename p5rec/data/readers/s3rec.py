"""S3-Rec / ICLRec / P5 sequential benchmark files.

Inputs (in the ``--input`` directory, or named with ``--file ROLE=PATH``):

* ``sequences`` (required): ``<Name>.txt``, one line per user, ``user item item ...`` in
  time order, positive integer ids. Timestamps are the positions in the line.
* ``attributes``: ``<Name>_item2attributes.json``, ``{item: [attribute, ...]}``. For the
  Amazon sets each list is ``[brand] + category path``; a leading attribute that never
  occurs at a later position in any list is taken as the brand (the protocol's category
  excludes it) and kept in the item text.
* ``attribute_names``: ``*attrid2name*.json``, ``{attribute: name}``.
* ``datamaps``: P5's ``datamaps.json`` (``id2user``, ``id2item``): ids become Amazon
  reviewer ids and ASINs; the integers are kept as ``source_id``.
* ``item_texts``: ``ASIN text`` per line, joined through the datamaps.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from p5rec.data.corpus import Item
from p5rec.data.events import EventBuilder
from p5rec.data.files import iter_lines
from p5rec.data.problems import ReadError
from p5rec.data.readers.base import SourceData, is_integer, load_json, locate, register


def _sequences(path, problems, progress, datamaps):
    """Parse the sequence file; returns (user -> items) in file order, raw integer ids."""
    id2user = datamaps.get("id2user") if datamaps else None
    id2item = datamaps.get("id2item") if datamaps else None
    seqs: dict[str, list[str]] = {}
    for n, line in iter_lines(path, problems, progress=progress):
        tokens = line.split()
        if len(tokens) < 2:
            problems.report(path, n, "missing_field", "expected 'user item [item ...]'")
            continue
        bad = next((t for t in tokens if not is_integer(t) or int(t) <= 0), None)
        if bad is not None:
            problems.report(path, n, "bad_value", f"{bad!r} is not a positive integer id")
            continue
        user, items = tokens[0], tokens[1:]
        if user in seqs:
            problems.report(path, n, "duplicate_user", f"user {user} already has a line")
            continue
        if id2user is not None:
            missing = [user] if user not in id2user else []
            missing += [i for i in items if i not in id2item]
            if missing:
                problems.report(
                    path,
                    n,
                    "datamaps_mismatch",
                    f"ids {missing[:5]} are not in the datamaps file; is it for this dataset?",
                )
                continue
        seqs[user] = items
    return seqs


def _attributes(path, names_path, known_items, problems):
    """item -> (brand or None, category names); attributes naming unknown items reported."""
    raw = load_json(path, "item attributes")
    if not isinstance(raw, dict):
        problems.report(path, None, "malformed", "expected an object {item: [attribute, ...]}")
        return {}, {}
    names = load_json(names_path, "attribute names") if names_path else None
    if names is not None and not isinstance(names, dict):
        problems.report(names_path, None, "malformed", "expected an object {attribute: name}")
        names = None
    lists: dict[str, list[str]] = {}
    for key, attrs in raw.items():
        where = f"item {key}"
        if key not in known_items:
            problems.report(path, where, "unknown_item", "names an item not in the sequences")
            continue
        if not isinstance(attrs, list) or not all(isinstance(a, int) for a in attrs):
            problems.report(path, where, "bad_value", "expected a list of integer attribute ids")
            continue
        ids = [str(a) for a in attrs]
        if names is not None:
            unknown = [a for a in ids if a not in names]
            if unknown:
                problems.report(
                    names_path, where, "unknown_attribute", f"no name for attributes {unknown}"
                )
                continue
            not_text = [a for a in ids if not isinstance(names[a], str)]
            if not_text:
                problems.report(
                    names_path, where, "bad_value", f"names of attributes {not_text} are not text"
                )
                continue
        lists[key] = ids
    later = {a for ids in lists.values() for a in ids[1:]}
    brands = {ids[0] for ids in lists.values() if ids and ids[0] not in later}

    def name(a: str) -> str:
        return names[a].strip() if names is not None else f"attribute {a}"

    out = {}
    for key, ids in lists.items():
        brand = name(ids[0]) if ids and ids[0] in brands else None  # may be blank: no brand
        blank = [a for a in ids if a not in brands and not name(a)]
        if blank:
            problems.report(
                names_path, f"item {key}", "bad_value", f"category attributes {blank} have no name"
            )
            continue
        out[key] = (brand, tuple(name(a) for a in ids if a not in brands))
    return out, {"brand_attributes": len(brands), "named": names is not None}


def _item_texts(path, asin2id, problems, progress):
    texts: dict[str, str] = {}
    for n, line in iter_lines(path, problems, progress=progress):
        asin, _, text = line.partition(" ")
        if asin not in asin2id:
            problems.report(path, n, "unknown_item", f"ASIN {asin!r} is not in the datamaps")
            continue
        texts[asin2id[asin]] = text.strip()
    return texts


def _is_datamaps(blob) -> bool:
    if not isinstance(blob, dict):
        return False
    maps = [blob.get("id2user"), blob.get("id2item")]
    return all(
        isinstance(m, dict) and all(isinstance(v, str) and v for v in m.values()) for m in maps
    )


def _looks_like_sequences(path: Path) -> bool:
    with open(path, "rb") as f:
        tokens = f.readline().split()
    return len(tokens) >= 2 and all(t.isascii() and t.isdigit() for t in tokens)


def _find_sequences(path: Path | None, options) -> Path:
    """``--file sequences=``, the input file, ``<Name>.txt`` beside ``<Name>_item2attributes``,
    or the one ``.txt`` in the directory whose first line is integer ids."""
    if options.file("sequences") or path is None:
        return locate(path, options, "sequences", (), "sequence file")
    if path.is_file():
        return path
    if not path.is_dir():
        raise ReadError(path, None, "missing_file", "input not found")
    txt = sorted(path.glob("*.txt"))
    paired = [p for p in txt if (path / f"{p.stem}_item2attributes.json").is_file()]
    found = paired if len(paired) == 1 else [p for p in txt if _looks_like_sequences(p)]
    if len(found) != 1:
        raise ReadError(
            path,
            None,
            "ambiguous_input" if found else "missing_file",
            f"expected one sequence file ('user item item ...' lines), found "
            f"{[p.name for p in found]}; name it with --file sequences=PATH",
        )
    return found[0]


@register("s3rec")
def read_s3rec(path, cfg, options, problems) -> SourceData:
    seq_path = _find_sequences(path, options)
    folder = seq_path.parent
    stem = seq_path.stem
    files = {"sequences": seq_path}
    dm_path = locate(folder, options, "datamaps", ("datamaps.json",), "datamaps", False)
    datamaps = load_json(dm_path, "datamaps") if dm_path else None
    if dm_path:
        files["datamaps"] = dm_path
        if not _is_datamaps(datamaps):
            problems.report(
                dm_path,
                None,
                "malformed",
                "expected 'id2user' and 'id2item' objects mapping ids to non-empty text",
            )
            datamaps = None
    seqs = _sequences(seq_path, problems, options.progress, datamaps)
    known = {i for items in seqs.values() for i in items}

    attr_path = locate(
        folder,
        options,
        "attributes",
        (f"{stem}_item2attributes.json", "*item2attributes*.json"),
        "item attributes file",
        False,
    )
    names_path = locate(
        folder, options, "attribute_names", ("*attrid2name*.json",), "attribute names", False
    )
    attrs, notes = ({}, {})
    if attr_path:
        files["attributes"] = attr_path
        if names_path:
            files["attribute_names"] = names_path
        attrs, notes = _attributes(attr_path, names_path, known, problems)

    texts: dict[str, str] = {}
    text_path = locate(folder, options, "item_texts", ("item_texts.txt",), "item texts", False)
    if text_path:
        if datamaps is None:
            raise ReadError(
                text_path,
                None,
                "missing_file",
                "item texts are keyed by ASIN; they need a usable datamaps.json "
                "(--file datamaps=PATH) to join them to the sequence ids",
            )
        files["item_texts"] = text_path
        asin2id = {asin: i for i, asin in datamaps["id2item"].items()}
        texts = _item_texts(text_path, asin2id, problems, options.progress)

    id2user = datamaps["id2user"] if datamaps else {}
    id2item = datamaps["id2item"] if datamaps else {}
    builder = EventBuilder()
    for user, items in seqs.items():
        for t, item in enumerate(items):
            builder.add(id2user.get(user, user), id2item.get(item, item), t)
    items_meta = {}
    for raw in known:  # attributes of items not in the sequences were reported, not kept
        brand, cats = attrs.get(raw, (None, ()))
        iid = id2item.get(raw, raw)
        items_meta[iid] = Item(iid, texts.get(raw, ""), f"brand {brand}" if brand else "", cats)
    notes["items_with_text"] = len(texts)
    notes["category_depth"] = dict(Counter(len(c) for _, c in attrs.values()))
    source_ids = {}
    if datamaps:
        source_ids = {
            "user": {id2user[u]: u for u in seqs},
            "item": {id2item[i]: i for i in known},
        }
    return SourceData(builder.table(), items_meta, source_ids=source_ids, files=files, notes=notes)
