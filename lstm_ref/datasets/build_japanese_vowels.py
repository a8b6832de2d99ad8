"""Build the bundled Japanese Vowels arrays from the UEA ``.ts`` source files.

Usage::

    python -m lstm_ref.datasets.build_japanese_vowels [--source PATH] [--output-dir DIR]

``PATH`` is an sktime or aeon wheel (``.whl``), or a directory holding
``JapaneseVowels_TRAIN.ts`` and ``JapaneseVowels_TEST.ts``. Without it the files are
taken from an installed sktime or aeon distribution, located through its metadata
(neither package is imported). The files are parsed with `lstm_ref.datasets.parse_ts`,
checked (270/370 sequences of 12 features, labels "1" … "9") and written to ``DIR``
(default: the package's ``data`` folder) as ``japanese_vowels.npz`` and
``japanese_vowels.json``; see `lstm_ref.datasets.japanese_vowels` for their layout.

The output is deterministic: the same source files give byte-identical files (the npz
is written with fixed zip timestamps; its compressed bytes depend on the zlib version).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lstm_ref.datasets.japanese_vowels import (
    CLASS_NAMES,
    JSON_NAME,
    N_FEATURES,
    NPZ_NAME,
    SPLITS,
    bundle_sha256,
)
from lstm_ref.datasets.ts import TSDataset, parse_ts

DEFAULT_OUTPUT_DIR = Path(__file__).resolve().parent / "data"
DISTRIBUTIONS = ("sktime", "aeon")
TS_DIRECTORY = "datasets/data/JapaneseVowels"  # inside the sktime or aeon package
EXPECTED_COUNTS = {"train": 270, "test": 370}
BUILD_COMMAND = "python -m lstm_ref.datasets.build_japanese_vowels"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

DATASET_RECORD: dict[str, Any] = {
    "dataset": "Japanese Vowels",
    "description": (
        "Nine male speakers uttering the Japanese vowels /ae/; each utterance is a "
        "sequence of frames of 12 LPC cepstrum coefficients; the label is the speaker."
    ),
    "creators": ["Mineichi Kudo", "Jun Toyama", "Masaru Shimbo"],
    "citation": (
        'M. Kudo, J. Toyama, M. Shimbo, "Multidimensional Curve Classification Using '
        'Passing-Through Regions", Pattern Recognition Letters 20(11-13):1103-1111, 1999.'
    ),
    "doi": "10.24432/C5NS47",
    "url": "https://archive.ics.uci.edu/ml/datasets/Japanese+Vowels",
    "license": {
        "name": "CC BY 4.0",
        "url": "https://creativecommons.org/licenses/by/4.0/",
        "attribution": (
            "Japanese Vowels by M. Kudo, J. Toyama and M. Shimbo, UCI Machine Learning "
            "Repository, doi:10.24432/C5NS47, licensed under CC BY 4.0. Converted by "
            "lstm_ref from the UEA .ts format to NumPy arrays; values unchanged."
        ),
    },
}


@dataclass(frozen=True)
class SourceFiles:
    """The two ``.ts`` files and where they came from.

    Attributes
    ----------
    origin : dict of str to str
        How the files were obtained (wheel name and sha256, installed distribution and
        version, or a directory), recorded in the provenance.
    paths : dict of str to str
        Split to the file's path inside the wheel or distribution (its name for a directory).
    contents : dict of str to bytes
        Split to the file's bytes.
    """

    origin: dict[str, str]
    paths: dict[str, str]
    contents: dict[str, bytes]


def ts_file_name(split: str) -> str:
    """``JapaneseVowels_TRAIN.ts`` or ``JapaneseVowels_TEST.ts``."""
    return f"JapaneseVowels_{split.upper()}.ts"


def find_installed_ts_directory() -> tuple[str, str, Path] | None:
    """Find the ``.ts`` files in an installed sktime or aeon, without importing it.

    Returns
    -------
    (name, version, directory) or None
        The first of sktime, aeon that is installed and ships both files, its version,
        and the directory holding them; None if neither does.
    """
    for name in DISTRIBUTIONS:
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        directory = Path(str(distribution.locate_file(f"{name}/{TS_DIRECTORY}")))
        if all((directory / ts_file_name(split)).is_file() for split in SPLITS):
            return name, distribution.version, directory
    return None


def read_sources(source: str | Path | None) -> SourceFiles:
    """Read the two ``.ts`` files from a wheel, a directory, or an installed distribution.

    Parameters
    ----------
    source : str, pathlib.Path or None
        A ``.whl`` file, a directory holding both files, or None for an installed
        sktime or aeon.

    Returns
    -------
    SourceFiles

    Raises
    ------
    FileNotFoundError
        If the files cannot be found there.
    """
    if source is None:
        return _read_installed()
    path = Path(source)
    if path.is_dir():
        return _read_directory(path, {"kind": "directory"}, path_prefix="")
    if path.is_file() and zipfile.is_zipfile(path):
        return _read_wheel(path)
    raise FileNotFoundError(f"{path} is neither a wheel (.whl) nor a directory")


def _read_installed() -> SourceFiles:
    found = find_installed_ts_directory()
    if found is None:
        raise FileNotFoundError(
            f"no installed {' or '.join(DISTRIBUTIONS)} ships {TS_DIRECTORY}; pass --source"
        )
    name, version, directory = found
    origin = {"kind": "installed distribution", "distribution": name, "version": version}
    return _read_directory(directory, origin, path_prefix=f"{name}/{TS_DIRECTORY}/")


def _read_directory(directory: Path, origin: dict[str, str], path_prefix: str) -> SourceFiles:
    files = {split: directory / ts_file_name(split) for split in SPLITS}
    for file in files.values():
        if not file.is_file():
            raise FileNotFoundError(f"{file} not found")
    return SourceFiles(
        origin=origin,
        paths={split: path_prefix + file.name for split, file in files.items()},
        contents={split: file.read_bytes() for split, file in files.items()},
    )


def _read_wheel(wheel: Path) -> SourceFiles:
    distribution, version = wheel.name.split("-")[:2]
    origin = {
        "kind": "wheel",
        "wheel": wheel.name,
        "wheel_sha256": _sha256(wheel.read_bytes()),
        "distribution": distribution,
        "version": version,
    }
    with zipfile.ZipFile(wheel) as archive:
        paths = {split: _wheel_member(archive, wheel.name, split) for split in SPLITS}
        contents = {split: archive.read(member) for split, member in paths.items()}
    return SourceFiles(origin=origin, paths=paths, contents=contents)


def _wheel_member(archive: zipfile.ZipFile, wheel_name: str, split: str) -> str:
    suffix = f"/{TS_DIRECTORY}/{ts_file_name(split)}"
    members = [name for name in archive.namelist() if name.endswith(suffix)]
    if len(members) != 1:
        raise FileNotFoundError(f"{wheel_name} holds {len(members)} files ending in {suffix}")
    return members[0]


def check_split(split: str, dataset: TSDataset) -> None:
    """Check a parsed split against the published description.

    Raises
    ------
    ValueError
        If the count, the number of features, the class names or a value is off.
    """
    problems = []
    if len(dataset.sequences) != EXPECTED_COUNTS[split]:
        problems.append(f"{len(dataset.sequences)} sequences, expected {EXPECTED_COUNTS[split]}")
    if any(sequence.shape[1] != N_FEATURES for sequence in dataset.sequences):
        problems.append(f"a sequence without {N_FEATURES} features")
    if dataset.class_names != CLASS_NAMES:
        problems.append(f"class names {dataset.class_names}, expected {CLASS_NAMES}")
    if not all(np.isfinite(sequence).all() for sequence in dataset.sequences):
        problems.append("missing values")
    if problems:
        raise ValueError(f"Japanese Vowels {split} split: {'; '.join(problems)}")


def build(
    source: str | Path | None = None, output_dir: str | Path = DEFAULT_OUTPUT_DIR
) -> dict[str, Any]:
    """Parse, check and write the bundle; return its provenance record.

    Parameters
    ----------
    source : str, pathlib.Path or None
        See `read_sources`.
    output_dir : str or pathlib.Path
        Where to write ``japanese_vowels.npz`` and ``japanese_vowels.json`` (created if
        needed).

    Returns
    -------
    dict
        The provenance record written to ``japanese_vowels.json``.
    """
    sources = read_sources(source)
    arrays: dict[str, np.ndarray] = {}
    splits: dict[str, dict[str, Any]] = {}
    for split in SPLITS:
        dataset = parse_ts(sources.contents[split].decode("utf-8"))
        check_split(split, dataset)
        values, lengths, labels = _stack(dataset)
        arrays.update(
            {f"{split}_values": values, f"{split}_lengths": lengths, f"{split}_labels": labels}
        )
        splits[split] = _split_record(values, lengths, labels)
    record = _provenance_record(sources, splits)
    output = Path(output_dir)
    output.mkdir(parents=True, exist_ok=True)
    write_npz(output / NPZ_NAME, arrays)
    (output / JSON_NAME).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def _stack(dataset: TSDataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values ``(sum T_i, 12)`` <f8, lengths ``(N,)`` <i8, labels ``(N,)`` <U1."""
    values = np.concatenate(dataset.sequences).astype("<f8")
    lengths = np.array([len(sequence) for sequence in dataset.sequences], dtype="<i8")
    return values, lengths, dataset.labels.astype("<U1")


def _split_record(values: np.ndarray, lengths: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    names, counts = np.unique(labels, return_counts=True)
    return {
        "sequences": len(lengths),
        "features": values.shape[1],
        "time_steps": len(values),
        "min_length": int(lengths.min()),
        "max_length": int(lengths.max()),
        "class_counts": {str(name): int(count) for name, count in zip(names, counts, strict=True)},
        "bundle_sha256": bundle_sha256(values, lengths, labels),
    }


def _provenance_record(sources: SourceFiles, splits: dict[str, dict]) -> dict[str, Any]:
    files = {
        split: {"path": sources.paths[split], "sha256": _sha256(sources.contents[split])}
        for split in SPLITS
    }
    return {
        **DATASET_RECORD,
        "source": {**sources.origin, "files": files},
        "splits": splits,
        "bundle_digest": (
            "sha256 over values as little-endian float64 C-order bytes, then lengths as "
            "little-endian int64 bytes, then the labels joined with '\\n' in UTF-8"
        ),
        "build_command": _build_command(sources.origin),
    }


def _build_command(origin: dict[str, str]) -> str:
    """The command that rebuilds the bundle, naming the wheel but never a local path."""
    if origin["kind"] == "installed distribution":
        return BUILD_COMMAND
    return f"{BUILD_COMMAND} --source {origin.get('wheel', 'DIRECTORY')}"


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` like `numpy.savez_compressed`, but reproducibly.

    Every member gets the same fixed timestamp, permissions and creator system, so equal
    arrays give equal bytes (for one zlib version).
    """
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=False)
            member = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            member.compress_type = zipfile.ZIP_DEFLATED
            member.create_system = 3  # Unix, whatever the building platform
            member.external_attr = 0o644 << 16
            archive.writestr(member, buffer.getvalue(), compresslevel=9)


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(
        prog=BUILD_COMMAND.removeprefix("python -m "),
        description="Build the bundled Japanese Vowels arrays from the UEA .ts files.",
    )
    parser.add_argument(
        "--source",
        help="sktime/aeon wheel (.whl) or directory holding JapaneseVowels_TRAIN.ts and "
        "JapaneseVowels_TEST.ts (default: an installed sktime or aeon)",
    )
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR)
    args = parser.parse_args(argv)
    try:
        record = build(args.source, args.output_dir)
    except (OSError, ValueError) as error:
        parser.exit(1, f"error: {error}\n")
    for split, summary in record["splits"].items():
        print(
            f"{split}: {summary['sequences']} sequences, lengths "
            f"{summary['min_length']}-{summary['max_length']}, sha256 {summary['bundle_sha256']}"
        )
    print(f"wrote {args.output_dir / NPZ_NAME} and {args.output_dir / JSON_NAME}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
