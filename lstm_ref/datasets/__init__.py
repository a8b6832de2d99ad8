"""Datasets: a parser for the UEA/UCR ``.ts`` format and the bundled Japanese Vowels data.

Sequences are float64 arrays of shape ``(T, C)`` (time × features), the layout used
throughout `lstm_ref`.
"""

from __future__ import annotations

from lstm_ref.datasets.japanese_vowels import load_japanese_vowels
from lstm_ref.datasets.ts import TSDataset, TSFormatError, parse_ts, read_ts

__all__ = ["TSDataset", "TSFormatError", "load_japanese_vowels", "parse_ts", "read_ts"]
