"""Files shipped with the package: prompt templates and example configs.

In an installed wheel they live in ``p5rec/_prompts`` and ``p5rec/_configs``; in a source
checkout (editable install) they are the repository's top-level ``prompts/`` and ``configs/``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["resource_dir"]


def resource_dir(name: str) -> Path:
    """The folder of shipped resource ``name`` ("prompts" or "configs")."""
    packaged = resources.files("p5rec") / f"_{name}"
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parent.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"cannot find the shipped {name} (neither p5rec/_{name} nor {name}/)")
