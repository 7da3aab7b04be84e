"""The HTTP service: FastAPI routes over an ``Assistant``, a ``HistoryStore`` and a
``MicroBatcher`` (OpenAPI schema at ``/openapi.json``, interactive docs at ``/docs``).

Every error is JSON, ``{"error": {"status": ..., "message": ...}}``: a request the service
cannot answer as sent is a 4xx that says what was wrong (unknown user or item: 404; wrong
type, missing field, k out of range, empty prompt: 422; body over the limit: 413).
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.exceptions import HTTPException as StarletteHTTPException

from p5rec.assistant import ANSWER_KIND, Assistant, NotFoundError, RequestError
from p5rec.intent import IntentError
from p5rec.serving.batching import MicroBatcher
from p5rec.serving.metrics import Metrics
from p5rec.serving.store import DISMISS, EVENTS, HistoryStore

__all__ = ["create_app"]

log = logging.getLogger("p5rec.serve")

MAX_BODY_BYTES = 256 * 1024
MAX_LIST = 1000  # items in a history or candidate list
MAX_TEXT = 4000  # characters of a prompt, review or feedback text

Id = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Task = Literal[tuple(ANSWER_KIND)]  # type: ignore[valid-type]
Event = Literal[EVENTS]  # type: ignore[valid-type]


class Body(BaseModel):
    """Request bodies: unknown fields and wrong types are errors, never coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


class RecommendRequest(Body):
    user: Id | None = Field(None, description="user id (dataset or feedback)")
    history: list[Id] | None = Field(
        None, max_length=MAX_LIST, description="items, oldest first; wins over the user's"
    )
    k: int = Field(10, ge=1, description="how many items (at most the catalogue size)")
    prompt: str | None = Field(
        None, min_length=1, max_length=MAX_TEXT, description="free-text prompt (optional)"
    )
    exclude_seen: bool = Field(False, description="leave out items of the history")


class ItemRequest(Body):
    item: Id
    user: Id | None = None
    history: list[Id] | None = Field(None, max_length=MAX_LIST)


class AskRequest(Body):
    prompt: str = Field(min_length=1, max_length=MAX_TEXT)
    task: Task | None = Field(None, description="answer this task instead of detecting it")
    user: Id | None = None
    history: list[Id] | None = Field(None, max_length=MAX_LIST)
    item: Id | None = None
    candidates: list[Id] | None = Field(None, max_length=MAX_LIST)
    k: int = Field(10, ge=1)
    exclude_seen: bool = False


class FeedbackRequest(Body):
    user: Id
    item: Id
    event: Event = Field("click", description="dismiss keeps the item out of recommendations")
    rating: float | None = None
    text: str | None = Field(None, max_length=MAX_TEXT)


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": message, **extra}}, status)


def _where(loc: tuple) -> str:
    return ".".join(str(p) for p in loc if p != "body") or "body"


class BodyLimit:
    """ASGI middleware: a body over ``max_bytes`` (declared or streamed) is a 413. The body
    is read here first (bodies are small) and handed on whole."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await self._reject(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await self._reject(scope, receive, send)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _reject(self, scope, receive, send):
        response = _error(413, f"request body over {self.max_bytes} bytes")
        await response(scope, receive, send)


class RequestMetrics:
    """ASGI middleware: counts and times every request by route template and status."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def record(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            route = getattr(scope.get("route"), "path", "other")
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - start)


def create_app(
    assistant: Assistant,
    store: HistoryStore,
    max_batch: int = 32,
    max_wait_ms: float = 5.0,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The service app. ``assistant.store`` becomes ``store``, so every answer reads the
    feedback history; the app starts the batcher on startup and closes the store on exit."""
    assistant.store = store
    batcher = MicroBatcher(assistant.answer, max_batch, max_wait_ms)
    metrics = Metrics()
    assistant.detector  # noqa: B018  (built now, not on the first /v1/ask)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()
            store.close()

    app = FastAPI(
        title="p5rec",
        summary="Generative recommendation: one model answers every recommendation task.",
        lifespan=lifespan,
    )
    app.state.batcher, app.state.metrics = batcher, metrics
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=metrics)

    @app.exception_handler(RequestError)
    async def request_error(request: Request, err: RequestError):
        return _error(err.status, str(err))

    @app.exception_handler(IntentError)
    async def intent_error(request: Request, err: IntentError):
        return _error(422, str(err))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError):
        problems = [
            {"field": _where(tuple(e.get("loc", ()))), "problem": e.get("msg", "")}
            for e in err.errors()
        ]
        message = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        return _error(422, message or "invalid request", problems=problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException):
        return _error(err.status_code, str(err.detail))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, err: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, f"internal error: {type(err).__name__}")

    async def run(query) -> dict[str, Any]:
        return await batcher.submit(query)

    @app.post("/v1/recommend", summary="Next items for a user or an explicit history")
    async def recommend(req: RecommendRequest) -> dict[str, Any]:
        query = assistant.query(
            "next_item",
            text=req.prompt,
            user=req.user,
            history=req.history,
            k=req.k,
            exclude_seen=req.exclude_seen,
        )
        return {"user": req.user, **await run(query)}

    @app.post("/v1/rate", summary="The rating a user would give an item")
    async def rate(req: ItemRequest) -> dict[str, Any]:
        query = assistant.query("rating", user=req.user, history=req.history, item=req.item)
        return {"user": req.user, "item": req.item, **await run(query)}

    @app.post("/v1/explain", summary="A sentence on what the user would think of the item")
    async def explain(req: ItemRequest) -> dict[str, Any]:
        query = assistant.query("explanation", user=req.user, history=req.history, item=req.item)
        return {"user": req.user, "item": req.item, **await run(query)}

    @app.post("/v1/ask", summary="A free-text question; the task is detected from it")
    async def ask(req: AskRequest) -> dict[str, Any]:
        query = assistant.query(
            req.task,
            text=req.prompt,
            user=req.user,
            history=req.history,
            item=req.item,
            candidates=req.candidates or (),
            k=req.k,
            exclude_seen=req.exclude_seen,
        )
        return await run(query)

    @app.post("/v1/feedback", status_code=201, summary="Record what the user did")
    async def feedback(req: FeedbackRequest) -> dict[str, Any]:
        assistant.item(req.item)  # 404 for an unknown item
        if req.event == "rating":
            lo, hi = assistant.ctx.corpus.rating_range
            if req.rating is None or not lo <= req.rating <= hi:
                raise RequestError(f"a rating event needs 'rating' between {lo:g} and {hi:g}")
        elif req.rating is not None:
            raise RequestError("'rating' belongs to a rating event (event: rating)")
        events = store.add(req.user, req.item, req.event, req.rating, req.text)
        history = assistant.history(req.user) or []
        return {
            "user": req.user,
            "item": req.item,
            "event": req.event,
            "events": events,
            "history_length": len(history),
            "dismissed": req.event == DISMISS,
        }

    @app.get("/v1/items/{item_id}", summary="A catalogue item")
    async def item(item_id: str) -> dict[str, Any]:
        return assistant.item(item_id)

    @app.get("/v1/users/{user_id}", summary="A user's history (dataset, then feedback)")
    async def user(user_id: str) -> dict[str, Any]:
        history = assistant.history(user_id)
        if history is None:
            raise NotFoundError(f"unknown user {user_id!r}")
        return {"user": user_id, "history": history, "dismissed": sorted(store.dismissed(user_id))}

    @app.get("/healthz", summary="Liveness and what is loaded")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": str(assistant.run_dir),
            "tasks": assistant.families,
            "items": assistant.catalogue_size,
            "users": len(assistant.ctx.sequences),
            "pending": batcher.pending,
        }

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    async def prometheus() -> str:
        return metrics.render(batcher.batch_sizes, batcher.pending)

    return app
