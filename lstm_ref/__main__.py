"""``python -m lstm_ref``: the lstm-ref command."""

from .cli import main

raise SystemExit(main())
