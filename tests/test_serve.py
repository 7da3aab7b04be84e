"""The HTTP service on loopback: every endpoint, the feedback loop, restart persistence,
and bad input (hand-written and hypothesis-generated) answered with 4xx JSON, never 5xx."""

from __future__ import annotations

import re
import sqlite3

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p5rec.serving import BackgroundServer, build_app

USER = "user_0000"


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory):
    store = tmp_path_factory.mktemp("store") / "history.sqlite"
    with BackgroundServer(build_app(tiny_run, store=store, max_wait_ms=2)) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def _items(client) -> list[str]:
    return [
        r["item"]
        for r in client.post("/v1/recommend", json={"user": USER, "k": 10}).json()["items"]
    ]


def test_endpoints(client):
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["items"] == 48
    rec = client.post("/v1/recommend", json={"user": USER, "k": 5, "exclude_seen": True})
    assert rec.status_code == 200
    items = [r["item"] for r in rec.json()["items"]]
    assert len(items) == len(set(items)) == 5
    seen = set(client.get(f"/v1/users/{USER}").json()["history"])
    assert not seen & set(items)
    first = items[0]
    info = client.get(f"/v1/items/{first}").json()
    assert info["item"] == first and info["title"] and info["code"]
    rate = client.post("/v1/rate", json={"user": USER, "item": first}).json()
    assert rate["kind"] == "rating" and 1 <= rate["rating"] <= 5
    explain = client.post("/v1/explain", json={"user": USER, "item": first}).json()
    assert explain["kind"] == "text" and isinstance(explain["text"], str)
    ask = client.post("/v1/ask", json={"prompt": f"what will {USER} want next?", "k": 3}).json()
    assert ask["task"] == "next_item" and len(ask["items"]) == 3
    prompt = {"prompt": "is this review positive or negative? 'lovely serum'"}
    assert client.post("/v1/ask", json=prompt).json()["kind"] == "label"
    cold = client.post("/v1/recommend", json={"history": items[:2], "k": 3})
    assert cold.status_code == 200 and len(cold.json()["items"]) == 3
    free = client.post("/v1/recommend", json={"user": USER, "prompt": "something new, please"})
    assert free.status_code == 200 and free.json()["prompt"].startswith("something new")
    schema = client.get("/openapi.json").json()
    for path in ("/v1/recommend", "/v1/rate", "/v1/explain", "/v1/ask", "/v1/feedback"):
        assert path in schema["paths"]
    metrics = client.get("/metrics").text
    assert re.search(
        r'p5rec_requests_total\{method="POST",route="/v1/recommend",status="200"\}', metrics
    )
    assert 'route="/v1/items/{item_id}"' in metrics and "p5rec_model_batches_total" in metrics


def test_feedback_changes_the_next_recommendation(client):
    user = "user_0001"
    before = client.post("/v1/recommend", json={"user": user, "k": 5}).json()
    top = before["items"][0]["item"]
    length = len(client.get(f"/v1/users/{user}").json()["history"])
    new = [i for i in _items(client) if i != top][:2]
    for item in new:
        r = client.post("/v1/feedback", json={"user": user, "item": item, "event": "purchase"})
        assert r.status_code == 201 and r.json()["history_length"] == length + 1
        length += 1
    after = client.post("/v1/recommend", json={"user": user, "k": 5}).json()
    assert after["prompt"] != before["prompt"]  # the new items are in the history the model reads
    assert after["items"] != before["items"]
    r = client.post("/v1/feedback", json={"user": user, "item": top, "event": "dismiss"})
    assert r.json()["dismissed"] is True
    final = client.post("/v1/recommend", json={"user": user, "k": 5}).json()
    assert top not in [x["item"] for x in final["items"]]
    # feedback makes a new user known
    r = client.post("/v1/feedback", json={"user": "fresh", "item": new[0], "event": "click"})
    assert r.status_code == 201
    assert client.post("/v1/recommend", json={"user": "fresh", "k": 2}).status_code == 200
    ask = client.post("/v1/ask", json={"prompt": "what will fresh want next?", "k": 2}).json()
    assert ask["task"] == "next_item" and "User: fresh." in ask["prompt"]


BAD = [
    ("post", "/v1/recommend", {"user": "nobody"}, 404, "unknown user 'nobody'"),
    ("post", "/v1/recommend", {"user": USER, "k": 0}, 422, "k: Input should be greater"),
    ("post", "/v1/recommend", {"user": USER, "k": 10_000}, 422, "k must be between 1"),
    ("post", "/v1/recommend", {"user": USER, "k": "10"}, 422, "k: Input should be a valid int"),
    ("post", "/v1/recommend", {"history": ["nope"]}, 404, "history: unknown item"),
    ("post", "/v1/recommend", {"user": USER, "colour": 1}, 422, "colour: Extra inputs"),
    ("post", "/v1/recommend", {}, 422, "next_item needs a user with a history"),
    ("post", "/v1/rate", {"user": USER}, 422, "item: Field required"),
    ("post", "/v1/rate", {"user": USER, "item": "nope"}, 404, "item: unknown item(s) 'nope'"),
    ("post", "/v1/explain", {"user": 7, "item": "item_0001"}, 422, "user: Input should be"),
    ("post", "/v1/ask", {"prompt": ""}, 422, "prompt: String should have at least 1"),
    ("post", "/v1/ask", {"prompt": "   "}, 422, "the prompt is empty"),
    ("post", "/v1/ask", {"prompt": "zzz qqq"}, 422, "cannot tell which task"),
    ("post", "/v1/ask", {"prompt": "hi", "task": "poetry"}, 422, "task: Input should be"),
    ("post", "/v1/feedback", {"user": USER, "item": "nope"}, 404, "unknown item"),
    (
        "post",
        "/v1/feedback",
        {"user": USER, "item": "item_0001", "event": "rating"},
        422,
        "needs 'rating' between 1 and 5",
    ),
    (
        "post",
        "/v1/feedback",
        {"user": USER, "item": "item_0001", "event": "like"},
        422,
        "event: Input should be",
    ),
    ("get", "/v1/items/nope", None, 404, "unknown item 'nope'"),
    ("get", "/v1/users/nobody", None, 404, "unknown user 'nobody'"),
    ("get", "/v1/nothing", None, 404, "Not Found"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), BAD)
def test_bad_input_is_a_4xx_with_a_reason(client, method, path, body, status, message):
    r = client.request(method.upper(), path, json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["status"] == status and message in error["message"]


def test_malformed_and_oversized_bodies(client):
    r = client.post(
        "/v1/recommend", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and "JSON" in r.json()["error"]["message"]
    for raw in (b'{"user": "user_0000", "k": Infinity}', b'{"user": NaN}', b"[1, 2]", b"null"):
        r = client.post("/v1/recommend", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422, raw
    r = client.post("/v1/ask", json={"prompt": "x" * 300_000})
    assert r.status_code == 413 and "over" in r.json()["error"]["message"]
    chunks = iter([b'{"prompt": "', b"y" * 300_000, b'"}'])
    r = client.post("/v1/ask", content=chunks, headers={"content-type": "application/json"})
    assert r.status_code == 413


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
FIELDS = [
    "user",
    "history",
    "k",
    "prompt",
    "exclude_seen",
    "item",
    "task",
    "candidates",
    "event",
    "rating",
    "text",
]
ROUTES = ["/v1/recommend", "/v1/rate", "/v1/ask", "/v1/feedback"]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    route=st.sampled_from(ROUTES),
    body=st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5) | json_values,
)
def test_generated_bodies_never_5xx(client, route, body):
    r = client.post(route, json=body)
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert r.json()["error"]["message"]


def test_no_5xx_was_served(client):
    metrics = client.get("/metrics").text
    assert not re.search(r'status="5\d\d"', metrics)


def test_feedback_survives_a_restart(tiny_run, tmp_path):
    store = tmp_path / "h.sqlite"
    with (
        BackgroundServer(build_app(tiny_run, store=store)) as srv,
        httpx.Client(base_url=srv.url, timeout=60) as c,
    ):
        c.post("/v1/feedback", json={"user": "u-new", "item": "item_0003", "event": "purchase"})
        c.post("/v1/feedback", json={"user": "u-new", "item": "item_0005", "event": "dismiss"})
        before = c.post("/v1/recommend", json={"user": "u-new", "k": 4}).json()
    with sqlite3.connect(store) as db:  # the journal mode is kept in the file
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with (
        BackgroundServer(build_app(tiny_run, store=store)) as srv,
        httpx.Client(base_url=srv.url, timeout=60) as c,
    ):
        user = c.get("/v1/users/u-new").json()
        assert user["history"] == ["item_0003"] and user["dismissed"] == ["item_0005"]
        assert c.post("/v1/recommend", json={"user": "u-new", "k": 4}).json() == before
