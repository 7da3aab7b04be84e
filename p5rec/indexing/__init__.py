"""Item ID schemes (item -> sequence of item tokens), registered by name.

A scheme is chosen in the config (``index.scheme``): ``random``, ``atomic``, ``sequential``,
``collaborative`` or ``semantic``; ``index.suffix`` appends each item's own token. Every
scheme is fitted on the training split only (see ``SchemeInput``).
"""

from p5rec.indexing import basic, collaborative, semantic  # noqa: F401  (registers schemes)
from p5rec.indexing.index import (
    SCHEMES,
    ItemIndex,
    SchemeInput,
    SchemeResult,
    build_index,
    item_token,
    level_token,
    register_scheme,
)

__all__ = [
    "SCHEMES",
    "ItemIndex",
    "SchemeInput",
    "SchemeResult",
    "build_index",
    "item_token",
    "level_token",
    "register_scheme",
]
