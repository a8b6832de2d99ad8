"""``python -m lstm_ref.cli``: the lstm-ref command."""

from . import main

raise SystemExit(main())
