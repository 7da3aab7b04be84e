"""Readers by source name: each turns raw files into a ``SourceData`` (see ``base``).

Sources: ``synthetic`` (the demo corpus), ``s3rec`` (S3-Rec/ICLRec/P5 sequence files with
attributes, datamaps and item texts), ``amazon`` (2014/2018 review dumps and metadata),
``movielens`` (100K and 1M), and ``csv`` / ``jsonl`` / ``parquet`` (any log, given a column
mapping).
"""

from p5rec.data.readers import amazon, movielens, s3rec, synthetic, tabular  # noqa: F401
from p5rec.data.readers.base import READERS, ReadOptions, SourceData, register

__all__ = ["READERS", "ReadOptions", "SourceData", "register"]
