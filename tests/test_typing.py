"""Types that help users: the README's code and a user's script type-check, and predict and
classify return precise types (no Any leaks out of them)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBES = """
import numpy as np
import lstm_ref

net = lstm_ref.load_network("JapaneseVowelsNet")
x = np.zeros((5, 12))
reveal_type(net.predict(x))
reveal_type(net.predict(x, outputs="lstm", return_state=True))
reveal_type(net.classify([x, x]))
reveal_type(net.classify(x))
reveal_type(net.trace(x).h)
"""


def test_readme_code_and_a_users_script_type_check(tmp_path):
    readme = (ROOT / "README.md").read_text()
    usage = readme[readme.index("## Using the library") :]
    (block,) = re.findall(r"```python\n(.*?)```", usage[: usage.index("\n## ", 3)], flags=re.S)
    (tmp_path / "readme_usage.py").write_text(block)
    (tmp_path / "probes.py").write_text(PROBES)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            "--no-error-summary",
            "readme_usage.py",
            "probes.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "MYPYPATH": str(ROOT)},  # an editable install hides it from mypy
    )
    ndarray = "numpy.ndarray[tuple[Any, ...], numpy.dtype[Any]]"  # NumPy's own generic Anys
    notes = [
        line.replace(ndarray, "ndarray")
        for line in run.stdout.splitlines()
        if "Revealed type" in line
    ]
    errors = [line for line in run.stdout.splitlines() if ": error:" in line]
    assert not errors, "\n".join(errors)
    assert len(notes) == 5, run.stdout
    assert not any("Any" in note for note in notes), "\n".join(notes)
    assert notes[2].endswith('"tuple[ndarray, ndarray]"')
    assert notes[3].endswith('"tuple[str | ndarray, ndarray]"')
