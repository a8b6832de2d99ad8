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


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """Each subcommand's parser, by name."""
    parser = build_parser()
    (subparsers,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices


def test_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 3
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})


def test_usage_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", USAGE, flags=re.S)
    assert len(blocks) >= 5
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


def test_walkthrough_prose_is_the_data_and_the_defaults():
    from lstm_ref.datasets import load_japanese_vowels

    prose = " ".join(section(README, "## The walkthrough").split())
    x_test, _ = load_japanese_vowels("test")
    (T, C) = x_test[0].shape
    assert f"test sequence 1 ({C} features over {T} steps)" in prose
    units = subcommands()["walkthrough"].get_default("units")
    assert f"draws the first {units} hidden units" in prose
    assert f"Test accuracy on {len(x_test)} sequences" in prose
    assert f"# {len(x_test)} sequences, each (T, {C})" in section(README, "## Using the library")


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
    assert set(lines) == set(subcommands())
    for name, command in subcommands().items():
        for action in command._actions:
            for option in action.option_strings:
                if option in ("-h", "--help"):
                    continue
                where = model_options if option in model_option_names else ""
                assert option in lines[name] + where, f"{name} {option}"


def setup_cfg():
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config


def test_install_table_lists_every_extra():
    table = re.findall(r"^\| `\[(\w+)\]` \|", section(README, "## Install"), flags=re.M)
    assert sorted(table) == sorted(setup_cfg()["options.extras_require"])


def test_python_versions_stated_are_those_tested():
    """The README names the Python versions setup.cfg declares tested, and no other."""
    config = setup_cfg()
    tested = re.findall(r"Python :: (3\.\d+)$", config["metadata"]["classifiers"], flags=re.M)
    stated = re.findall(r"Python (3\.\d+)", section(README, "## Install"))
    assert tested and stated == tested
    assert config["options"]["python_requires"] == f">={min(tested, key=lambda v: int(v[2:]))}"


def test_training_recipe_quotes_the_defaults():
    split = subcommands()["train"].get_default("validation_split")
    assert f"{round(100 * split)} % of each class held out" in " ".join(README.split())


def test_performance_ratios_are_the_latest_benchmark_run():
    """The README's ratios are, in order, the Targets table's of the newest results file, which
    it links to."""
    latest = max((ROOT / "benchmarks" / "results").glob("*.md"))
    prose = " ".join(section(README, "## Performance").split())
    assert f"({latest.relative_to(ROOT)})" in prose
    ratios = {}
    for row in re.findall(r"^\| (.+) \|$", section(latest.read_text(), "#### Targets"), re.M):
        cells = [cell.strip() for cell in row.split("|")]
        ratios[cells[0]] = cells[3]
    quoted = [
        "A f32: stepper ≥ 1.5× faster than onnxruntime run_with_iobinding",
        "A f32: stepper ≥ 5× faster than torch nn.LSTMCell",
        "B f32: predict within 1.5× of onnxruntime",
        "B f32: predict ≥ 2.5× faster than torch",
        "C f32, 1 thread: classify at least as fast as onnxruntime",
        "C f32, 1 thread: classify ≥ 1.5× faster than torch packed",
        "D f32: a training epoch no slower than torch's",
    ]
    assert re.findall(r"(\d+\.\d+)×", prose) == [ratios[target] for target in quoted]
    assert "shared with other jobs" in prose


def test_readme_links_lead_to_files():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    assert len(links) >= 10
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, missing
