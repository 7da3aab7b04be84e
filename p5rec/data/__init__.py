"""Data model, processed dataset directories, splits and the synthetic demo corpus."""

from p5rec.data.corpus import Corpus, CorpusError, Interaction, Item
from p5rec.data.splits import SequenceExample, Splits, make_splits

__all__ = [
    "Corpus",
    "CorpusError",
    "Interaction",
    "Item",
    "SequenceExample",
    "Splits",
    "make_splits",
]
