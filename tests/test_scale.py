"""Scoring shards on a real Dask cluster: a LocalCluster of two worker processes, started here.

Every result is compared with single-process ``net.classify`` of the same shard (bitwise)
and of the whole data set (1e-12); a worker is killed while it scores a shard; a rerun
after an interruption scores only what is left; bad shards are named and the rest finish.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lstm_ref import InputError, Padding, load_network
from lstm_ref.cli import main
from lstm_ref.datasets import load_japanese_vowels
from lstm_ref.formats import read_sequence_file
from lstm_ref.scale import find_shards, read_scores, score_shards, scores_path
from lstm_ref.scale.files import write_scores

distributed = pytest.importorskip("distributed")

NET = load_network("JapaneseVowelsNet")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def client(cluster):
    with distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def test_set():
    return load_japanese_vowels("test")[0]


@pytest.fixture(scope="module")
def shards(tmp_path_factory, test_set) -> Path:
    """The 370 test sequences as seven named .npz shards, a .npy batch and a .ts file."""
    folder = tmp_path_factory.mktemp("shards")
    for k in range(7):
        part = range(k * 50, min((k + 1) * 50, 350))
        np.savez(folder / f"part-{k}.npz", **{f"jv{i:03d}": test_set[i] for i in part})
    np.save(folder / "batch.npy", np.stack([s[:7] for s in test_set[350:360]]))
    text = "@problemName t\n@univariate false\n@dimensions 12\n@equalLength false\n"
    text += "@classLabel false\n@data\n"
    text += "".join(
        ":".join(",".join(map(repr, col.tolist())) for col in s.T) + "\n" for s in test_set[360:]
    )
    (folder / "tail.ts").write_text(text)
    (folder / "README.txt").write_text("not a shard: ignored in a folder")
    return folder


def expected_scores(shard: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    file = read_sequence_file(shard)
    labels, scores = NET.classify(file.sequences)
    return file.names, np.atleast_1d(labels), np.atleast_2d(scores)


def check_outputs(shard_paths: list[Path], out: Path) -> None:
    """Every shard's scores file holds each of its sequences once, exactly as classify."""
    for shard in shard_paths:
        got = read_scores(scores_path(shard, out))
        names, labels, scores = expected_scores(shard)
        assert got.shard == shard.name
        assert list(got.names) == names
        assert got.labels.tolist() == labels.tolist()
        np.testing.assert_array_equal(got.scores, scores)
        assert got.class_names == NET.class_names
    assert not list(out.glob(".*.tmp"))  # no temporary file of a killed write is left


def test_scores_equal_single_process_classify(cluster, client, shards, tmp_path, test_set):
    out = tmp_path / "out"
    report = score_shards(shards, "JapaneseVowelsNet", out, scheduler=cluster.scheduler_address)
    paths = find_shards(shards)
    assert [p.name for p in paths] == [
        "batch.npy",
        *(f"part-{k}.npz" for k in range(7)),
        "tail.ts",
    ]
    assert report.bad == () and report.skipped == ()
    assert [r.shard for r in report.scored] == [str(p) for p in paths]
    assert report.sequences == 370
    assert 1 <= report.network_loads <= 2  # once per worker process, not per task
    check_outputs(paths, out)
    # the same scores as classify over the whole test set, whatever the shard
    everything = np.concatenate([read_scores(scores_path(p, out)).scores for p in paths[1:]])
    whole = NET.classify(test_set[:350] + test_set[360:])[1]
    np.testing.assert_allclose(everything, whole, rtol=0, atol=1e-12)
    # one BLAS thread per worker
    blas = client.run(
        lambda: [
            i["num_threads"]
            for i in __import__("threadpoolctl").threadpool_info()
            if i["user_api"] == "blas"
        ]
    )
    assert all(threads == [1] for threads in blas.values()), blas
    assert "370 sequences" in report.summary()
    assert "network loaded" in report.summary()


class KillOnce(distributed.WorkerPlugin):
    """Kill the worker process as the first run of a task of shard ``marked`` starts
    executing (SIGKILL: no cleanup, as the kernel's OOM killer or a lost machine)."""

    def __init__(self, marked: str, marker: str):
        self.marked, self.marker = marked, marker

    def setup(self, worker):
        self.address = worker.address

    def transition(self, key, start, finish, **kwargs):
        if finish != "executing" or self.marked not in str(key):
            return
        try:  # the marker file survives the kill: only the first run dies
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, self.address.encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_worker_loses_and_duplicates_nothing(cluster, client, tmp_path, test_set):
    folder = tmp_path / "shards"
    folder.mkdir()
    for k in range(4):
        np.savez(folder / f"s{k}.npz", **{f"k{k}-{i}": s for i, s in enumerate(test_set[:100])})
    marker = tmp_path / "killed"
    client.register_plugin(KillOnce("s2.npz", str(marker)), name="kill-once")
    try:
        report = score_shards(
            folder, "JapaneseVowelsNet", tmp_path / "out", scheduler=cluster.scheduler_address
        )
    finally:
        client.unregister_worker_plugin("kill-once")
    killed = marker.read_text()  # the worker that died while scoring s2.npz
    assert killed
    assert report.bad == ()
    assert [Path(r.shard).name for r in report.scored] == [f"s{k}.npz" for k in range(4)]
    rerun = next(r for r in report.scored if r.shard.endswith("s2.npz"))
    assert rerun.worker != killed  # scored again elsewhere
    assert report.sequences == 4 * 100
    check_outputs(find_shards(folder), tmp_path / "out")
    client.wait_for_workers(2, timeout=120)  # the nanny has restarted the killed one


def test_a_worker_that_sees_other_weights_refuses_them(client):
    from lstm_ref.scale.worker import worker_network

    assert client.submit(worker_network, "JapaneseVowelsNet", NET.digest()).result()
    wrong = client.submit(worker_network, "JapaneseVowelsNet", "0" * 64, pure=False)
    with pytest.raises(InputError, match="every worker must see the same weight file"):
        wrong.result()


def test_a_rerun_after_an_interruption_scores_only_what_is_left(cluster, shards, tmp_path):
    out = tmp_path / "out"
    score_shards(shards, "JapaneseVowelsNet", out, scheduler=cluster.scheduler_address)
    paths = find_shards(shards)
    # what an interrupted run leaves: some scores files, none for the rest, and the hidden
    # temporary file of a write that was killed
    lost = paths[2:5]
    for p in lost:
        scores_path(p, out).unlink()
    stale = out / f".{scores_path(lost[0], out).name}.abc123.tmp"
    stale.write_text("shard,sequence,label\nhalf a li")
    for p in paths:
        if p not in lost:
            os.utime(scores_path(p, out), ns=(10**18, 10**18))  # mark the finished files
    report = score_shards(shards, "JapaneseVowelsNet", out, scheduler=cluster.scheduler_address)
    assert [r.shard for r in report.scored] == [str(p) for p in lost]
    assert set(report.skipped) == {str(p) for p in paths if p not in lost}
    assert all(scores_path(p, out).stat().st_mtime_ns == 10**18 for p in paths if p not in lost)
    assert not stale.exists()
    check_outputs(paths, out)
    done = score_shards(shards, "JapaneseVowelsNet", out, scheduler=cluster.scheduler_address)
    assert done.scored == () and len(done.skipped) == len(paths)  # no cluster work at all


def bad_and_good_shards(folder: Path, test_set) -> None:
    folder.mkdir()
    np.savez(folder / "good.npz", *test_set[:5])
    np.save(folder / "good.npy", test_set[5])  # one (T, C) sequence
    (folder / "damaged.npz").write_bytes(b"PK\x03\x04 not really")
    np.save(folder / "narrow.npy", np.zeros((3, 4, 5)))  # 5 features, not 12


def test_bad_shards_are_named_and_the_rest_finish(tmp_path, test_set):
    folder, out = tmp_path / "shards", tmp_path / "out"
    bad_and_good_shards(folder, test_set)
    # no scheduler: score_shards starts its own LocalCluster (one worker here) and closes it
    report = score_shards(folder, "JapaneseVowelsNet", out, workers=1)
    assert [name for name, _ in report.bad] == [
        str(folder / "damaged.npz"),
        str(folder / "narrow.npy"),
    ]
    assert "not an .npz archive" in report.bad[0][1] and "12" in report.bad[1][1]
    assert not scores_path(folder / "damaged.npz", out).exists()
    assert not scores_path(folder / "narrow.npy", out).exists()
    assert report.sequences == 6
    check_outputs([folder / "good.npz", folder / "good.npy"], out)
    assert read_scores(scores_path(folder / "good.npz", out)).names == tuple(
        f"arr_{k}" for k in range(5)
    )
    assert read_scores(scores_path(folder / "good.npy", out)).names == ("1",)
    summary = report.summary()
    assert "2 bad shard(s), not scored:" in summary and str(folder / "narrow.npy") in summary


def test_refused_before_any_work(tmp_path, shards, test_set):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no shards in"):
        score_shards(empty, "JapaneseVowelsNet", tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        score_shards(tmp_path / "missing", "JapaneseVowelsNet", tmp_path / "out")
    with pytest.raises(InputError, match="holds shards"):
        score_shards(shards, "JapaneseVowelsNet", shards)
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        np.savez(tmp_path / sub / "x.npz", test_set[0])
    with pytest.raises(InputError, match=r"both named 'x\.npz'"):
        score_shards(str(tmp_path / "*" / "x.npz"), "JapaneseVowelsNet", tmp_path / "out")
    assert len(find_shards(str(shards / "**" / "part-*.npz"))) == 7  # ** is any depth
    assert find_shards(str(tmp_path / "**" / "a" / "*.npz")) == [tmp_path / "a" / "x.npz"]
    with pytest.raises(InputError, match="workers must be at least 1"):
        score_shards(shards, "JapaneseVowelsNet", tmp_path / "out", workers=0)
    # scores already made with masked padding: another padding is refused, not mixed in
    out = tmp_path / "mixed"
    out.mkdir()
    done = scores_path(tmp_path / "a" / "x.npz", out)
    write_scores(done, "x.npz", ["arr_0"], np.array(["1"]), np.ones((1, 9)) / 9, NET.class_names)
    assert score_shards(tmp_path / "a", "JapaneseVowelsNet", out).skipped  # writes the record
    with pytest.raises(InputError, match="another network, padding or layout"):
        score_shards(tmp_path / "a", "JapaneseVowelsNet", out, padding=Padding.matlab())


def test_scores_file_round_trips_float32_exactly(tmp_path, test_set):
    net32 = NET.astype(np.float32)
    labels, scores = net32.classify(test_set[:4])
    path = tmp_path / "s.csv"
    write_scores(path, "s, with a comma.npz", ["a", "b,c", 'd"', "e"], labels, scores, ["x"] * 9)
    got = read_scores(path)
    assert got.shard == "s, with a comma.npz" and got.names == ("a", "b,c", 'd"', "e")
    np.testing.assert_array_equal(got.scores.astype(np.float32), scores)
    path.write_text("shard,sequence,label,1\ns,a,1,not-a-number\n")
    with pytest.raises(InputError, match="not a number"):
        read_scores(path)


def test_the_core_does_not_import_dask():
    code = "import sys, lstm_ref, lstm_ref.scale; print({'dask', 'distributed'} & set(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "set()"


def test_cli_score_lists_bad_shards_and_exits_2(cluster, tmp_path, capsys, test_set):
    folder, out = tmp_path / "shards", tmp_path / "out"
    bad_and_good_shards(folder, test_set)
    command = ["score", str(folder), "--out", str(out), "--scheduler", cluster.scheduler_address]
    assert main(command) == 2
    captured = capsys.readouterr()
    assert "scored 2 shards, 6 sequences" in captured.out
    assert (
        str(folder / "damaged.npz") in captured.out and str(folder / "narrow.npy") in captured.out
    )
    assert captured.err.strip().splitlines() == ["lstm-ref: error: 2 bad shard(s), listed above"]
    check_outputs([folder / "good.npz", folder / "good.npy"], out)
    for bad in ("damaged.npz", "narrow.npy"):
        (folder / bad).unlink()
    assert main(command) == 0  # the good ones are done: nothing left to score
    assert "2 shards already done, skipped" in capsys.readouterr().out


def test_a_model_without_class_names_is_told_to_give_them(tmp_path, shards, capsys):
    from random_nets import random_network

    from lstm_ref import Network, save_network

    net = random_network(np.random.default_rng(4), C=12, H=4, K=3)
    save_network(Network(net.layers), tmp_path / "unnamed.npz")
    argv = ["score", str(shards), "--network", str(tmp_path / "unnamed.npz")]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (
        f"lstm-ref: error: {tmp_path / 'unnamed.npz'}: the model file names no classes; give "
        "them with --classes a,b,c (model_options={'class_names': [...]} in Python; 3 names, "
        "in output order)\n"
    )
    assert not (tmp_path / "out").exists()  # refused before any work
