"""The README's and docs/USAGE.md's commands, code and quoted numbers are the ones that work
and the ones the program prints."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from lstm_ref.cli import build_parser, main
from lstm_ref.cli.common import add_model_options

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
USAGE = (ROOT / "docs" / "USAGE.md").read_text()


def section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of any level."""
    start = text.index(f"{heading}\n") + len(heading)
    end = re.search(r"\n#{1,4} ", text[start:])
    return text[start : start + end.start()] if end else text[start:]


def block(text: str, fence: str = "text") -> str:
    (found,) = re.findall(rf"```{fence}\n(.*?)```", text, flags=re.S)
    return found


def test_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 4
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})


def test_usage_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", USAGE, flags=re.S)
    assert len(blocks) >= 4
    for code in blocks:
        exec(compile(code, "docs/USAGE.md", "exec"), {})


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"```bash\n(.*?)\n```", README, flags=re.S)
    assert len(commands) >= 2
    assert "lstm-ref walkthrough" in commands[0]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1] in ci


def test_walkthrough_prints_what_the_readme_quotes(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    quoted = block(section(README, "## The walkthrough")).splitlines()
    assert main(["walkthrough", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(quoted) == 3 and all(line in printed for line in quoted)
    # the prose's figures are those printed: the accuracies and the points lost
    masked, _, matlab = (float(a) for a in re.findall(r"(0\.\d{4}) \(", quoted[1]))
    lost = round(100 * (masked - matlab))
    assert f"loses {lost} points" in " ".join(section(README, "## The walkthrough").split())
    padding = " ".join(section(USAGE, "## Padding semantics").split())
    assert f"scores {matlab:.4f} against {masked:.4f}" in padding


def test_explain_prints_what_the_readme_quotes(capsys):
    text = section(README, "### Explaining a step")
    (command,) = re.findall(r"`lstm-ref (explain [^`]*)`", text)
    assert main(command.split()) == 0
    assert block(text) in capsys.readouterr().out


def test_usage_lists_every_option_of_every_command():
    """The synopsis in docs/USAGE.md names every option of every subcommand."""
    synopsis = block(section(USAGE, "## The command line"), fence="")
    lines = {line.split()[1]: line for line in synopsis.splitlines() if line.startswith("lstm-ref")}
    model_options = next(line for line in synopsis.splitlines() if line.startswith("MODEL"))
    shared = argparse.ArgumentParser()
    add_model_options(shared)
    model_option_names = {o for a in shared._actions for o in a.option_strings} - {"-h", "--help"}
    parser = build_parser()
    (subparsers,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(lines) == set(subparsers.choices)
    for name, command in subparsers.choices.items():
        for action in command._actions:
            for option in action.option_strings:
                if option in ("-h", "--help"):
                    continue
                where = model_options if option in model_option_names else ""
                assert option in lines[name] + where, f"{name} {option}"


def test_install_table_lists_every_extra():
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    table = re.findall(r"^\| `\[(\w+)\]` \|", section(README, "## Install"), flags=re.M)
    assert sorted(table) == sorted(config["options.extras_require"])
