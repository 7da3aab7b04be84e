"""Task families; importing this package registers all of them in ``FAMILIES``."""

from p5rec.tasks import (  # noqa: F401  (imported to register the families)
    candidate_ranking,
    category,
    explanation,
    next_item,
    rating,
    sentiment,
)
from p5rec.tasks.base import FAMILIES, Example, TaskContext, TaskFamily, get_family

__all__ = ["FAMILIES", "Example", "TaskContext", "TaskFamily", "get_family"]
