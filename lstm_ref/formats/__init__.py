"""Files: lstm_ref's native weight format (``native``) and the sequence files that
``lstm-ref predict`` reads (``sequence_files``)."""

from .native import load_network, pretrained_names, read_header, save_network
from .sequence_files import SequenceFile, read_sequence_file, read_sequences

__all__ = [
    "SequenceFile",
    "load_network",
    "pretrained_names",
    "read_header",
    "read_sequence_file",
    "read_sequences",
    "save_network",
]
