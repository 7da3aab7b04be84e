"""Serving a trained model over HTTP: ``p5rec serve`` (see ``p5rec.serving.app``)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from p5rec.serving.store import HistoryStore, SQLiteHistoryStore

__all__ = ["BackgroundServer", "HistoryStore", "SQLiteHistoryStore", "build_app", "serve"]


def build_app(run_dir, cfg=None, store=None, max_batch: int = 32, max_wait_ms: float = 5.0):
    """The FastAPI app of a run: its ``Assistant`` and a history store (default: the SQLite
    file ``RUN/history.sqlite``)."""
    from p5rec.assistant import Assistant
    from p5rec.serving.app import create_app

    if not isinstance(store, HistoryStore):
        store = SQLiteHistoryStore(store or Path(run_dir) / "history.sqlite")
    return create_app(Assistant(run_dir, cfg), store, max_batch, max_wait_ms)


def serve(
    run_dir,
    cfg=None,
    host: str = "127.0.0.1",
    port: int = 8000,
    store=None,
    max_batch: int = 32,
    max_wait_ms: float = 5.0,
) -> None:
    """Serve until interrupted (Ctrl-C)."""
    import uvicorn

    app = build_app(run_dir, cfg, store, max_batch, max_wait_ms)
    print(f"p5rec serve: {run_dir} on http://{host}:{port} (API docs: /docs)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


class BackgroundServer:
    """Run an app with uvicorn on 127.0.0.1 and a free port, in a thread (tests, benches).

    Use as a context manager; ``url`` is the base address.
    """

    def __init__(self, app) -> None:
        import uvicorn

        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.time() + 60
        while not self._server.started:
            if not self._thread.is_alive() or time.time() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._socket.close()
