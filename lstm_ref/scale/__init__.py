"""Scoring shards of sequences on a Dask cluster (the optional ``dask`` extra).

``score_shards(shards, network, out_dir)`` scores every sequence file of a folder or glob on
a local cluster or a running Dask scheduler and writes one scores file per shard
(:mod:`lstm_ref.scale.files` describes both). Importing this package does not import Dask;
``score_shards`` does, and says how to install it if it is missing. See docs/SCALE.md.
"""

from .files import ShardScores, find_shards, read_scores, scores_path
from .score import ScoreReport, score_shards
from .worker import ShardResult, score_file

__all__ = [
    "ScoreReport",
    "ShardResult",
    "ShardScores",
    "find_shards",
    "read_scores",
    "score_file",
    "score_shards",
    "scores_path",
]
