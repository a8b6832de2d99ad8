"""Files: lstm_ref's native weight format (``native``) and the sequence files that
``lstm-ref predict`` reads (``sequence_files``)."""

from .native import load_network, pretrained_names, read_header, save_network
from .sequence_files import read_sequences

__all__ = ["load_network", "pretrained_names", "read_header", "read_sequences", "save_network"]
