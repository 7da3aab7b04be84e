"""Multi-task training: the dataset context, the task mixture, the accelerate loop,
validation, checkpoints and the training log."""

from p5rec.training.context import (
    build_context,
    check_context_tokens,
    check_split_settings,
    git_commit,
    scheme_input,
    tokenizer_texts,
)
from p5rec.training.loop import train

__all__ = [
    "build_context",
    "check_context_tokens",
    "check_split_settings",
    "git_commit",
    "scheme_input",
    "tokenizer_texts",
    "train",
]
