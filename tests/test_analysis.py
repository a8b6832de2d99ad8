"""Gate saturation and LSTMVis-style unit selection, on hand-made arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from random_nets import random_network, random_sequences

from lstm_ref import Gates
from lstm_ref.viz.analysis import gate_saturation, matching_sequences, select_units

# ------------------------------------------------------------------ select_units


def on_off_trace() -> np.ndarray:
    """(T=6, H=5): units 1 and 3 on (0.5) at steps 2..4, unit 4 on at steps 2..3 only."""
    h = np.full((6, 5), -0.2)
    h[2:5, 1] = 0.5
    h[2:5, 3] = 0.9
    h[2:4, 4] = 0.4
    h[:, 0] = 0.29  # just below the default threshold everywhere
    return h


def test_select_units_finds_units_on_throughout_range():
    h = on_off_trace()
    np.testing.assert_array_equal(select_units(h, 2, 5), [1, 3])
    np.testing.assert_array_equal(select_units(h, 2, 4), [1, 3, 4])
    np.testing.assert_array_equal(select_units(h, 3, 4), [1, 3, 4])
    assert select_units(h, 1, 5).size == 0  # step 1 is off for everyone
    assert select_units(h, 2, 5).dtype.kind == "i"


def test_select_units_threshold_is_inclusive_and_adjustable():
    h = on_off_trace()
    np.testing.assert_array_equal(select_units(h, 0, 6, threshold=0.29), [0])
    np.testing.assert_array_equal(select_units(h, 2, 5, threshold=0.6), [3])
    np.testing.assert_array_equal(select_units(h, 0, 6, threshold=-0.2), [0, 1, 2, 3, 4])


def test_select_units_whole_sequence_range():
    h = on_off_trace()
    h[:, 2] = 1.0
    np.testing.assert_array_equal(select_units(h, 0, 6), [2])


@pytest.mark.parametrize(("start", "stop"), [(-1, 3), (2, 7), (3, 3), (4, 2), (6, 7)], ids=str)
def test_select_units_rejects_bad_ranges(start, stop):
    with pytest.raises(ValueError, match=r"0 <= start < stop <= T = 6"):
        select_units(on_off_trace(), start, stop)


def test_select_units_rejects_non_integer_steps_and_wrong_shape():
    h = on_off_trace()
    with pytest.raises(ValueError, match="start must be an integer"):
        select_units(h, 1.5, 3)
    with pytest.raises(ValueError, match="stop must be an integer"):
        select_units(h, 1, True)
    with pytest.raises(ValueError, match=r"2-D array \(T, H\)"):
        select_units(h[:, 0], 0, 2)
    with pytest.raises(ValueError, match=r"2-D array \(T, H\)"):
        select_units(h[None], 0, 2)


def test_select_units_accepts_numpy_integer_steps():
    np.testing.assert_array_equal(select_units(on_off_trace(), np.int64(2), np.int32(5)), [1, 3])


# ------------------------------------------------------------------ matching_sequences


def traces_with_runs() -> list[np.ndarray]:
    """Three sequences, H = 4; the pattern is units 0 and 2 both >= 0.5."""
    a = np.zeros((8, 4))
    a[1:4, [0, 2]] = 0.7  # run [1, 4): length 3
    a[6, [0, 2]] = 0.5  # run [6, 7): length 1 (threshold inclusive)
    a[5, 0] = 0.9  # only one unit on: no match
    b = np.zeros((9, 4))
    b[0:5, [0, 2]] = 1.0  # run [0, 5) at the very start: length 5
    b[7:9, [0, 2]] = 0.6  # run [7, 9) to the very end: length 2
    c = np.zeros((5, 4))
    c[:, 0] = 1.0  # unit 2 never on
    d = np.zeros((4, 4))
    d[0:3, [0, 2]] = 0.8  # run [0, 3): length 3, ties with a's run
    return [a, b, c, d]


def test_matching_sequences_finds_maximal_runs_longest_first():
    matches = matching_sequences(traces_with_runs(), np.array([0, 2]), 0.5, min_length=2)
    assert matches == [(1, 0, 5), (0, 1, 4), (3, 0, 3), (1, 7, 9)]
    assert all(type(v) is int for m in matches for v in m)


def test_matching_sequences_min_length_filters_runs():
    traces = traces_with_runs()
    assert matching_sequences(traces, [0, 2], 0.5, min_length=1) == [
        (1, 0, 5),
        (0, 1, 4),
        (3, 0, 3),
        (1, 7, 9),
        (0, 6, 7),
    ]
    assert matching_sequences(traces, [0, 2], 0.5, min_length=4) == [(1, 0, 5)]
    assert matching_sequences(traces, [0, 2], 0.5, min_length=6) == []


def test_matching_sequences_requires_all_units_and_respects_threshold():
    traces = traces_with_runs()
    # unit 0 alone: sequence a also matches at step 5, c matches throughout
    assert matching_sequences(traces, [0], 0.5, min_length=1) == [
        (1, 0, 5),
        (2, 0, 5),  # same length: by sequence index
        (0, 1, 4),
        (3, 0, 3),
        (0, 5, 7),
        (1, 7, 9),
    ]
    # a higher threshold cuts runs whose values are below it
    assert matching_sequences(traces, [0, 2], 0.65, min_length=1) == [
        (1, 0, 5),
        (0, 1, 4),
        (3, 0, 3),
    ]


def test_matching_sequences_on_a_selection_finds_its_own_range(rng):
    net = random_network(rng, C=4, H=12, K=3)
    X = random_sequences(rng, [9, 6, 11], C=4)
    hs = [net.trace(x).h for x in X]
    threshold = float(np.sort(hs[0][3:6].min(axis=0))[-2])  # at least two units qualify
    units = select_units(hs[0], 3, 6, threshold)
    assert units.size >= 2
    matches = matching_sequences(hs, units, threshold, min_length=3)
    assert any(n == 0 and a <= 3 and b >= 6 for n, a, b in matches)
    for n, a, b in matches:  # every reported step really matches, and the run is maximal
        assert np.all(hs[n][a:b, units] >= threshold)
        for edge in (a - 1, b):
            if 0 <= edge < len(hs[n]):
                assert not np.all(hs[n][edge, units] >= threshold)


def test_matching_sequences_errors():
    traces = traces_with_runs()
    with pytest.raises(ValueError, match="no units given"):
        matching_sequences(traces, [], 0.5, 1)
    with pytest.raises(ValueError, match=r"unit indices \[4, -1\] out of range 0..3"):
        matching_sequences(traces, [0, 4, -1], 0.5, 1)
    with pytest.raises(ValueError, match="integer indices"):
        matching_sequences(traces, [0.0, 2.0], 0.5, 1)
    with pytest.raises(ValueError, match="min_length must be an integer >= 1"):
        matching_sequences(traces, [0], 0.5, 0)
    with pytest.raises(ValueError, match="min_length must be an integer"):
        matching_sequences(traces, [0], 0.5, 2.5)
    with pytest.raises(ValueError, match="different numbers of units"):
        matching_sequences([np.zeros((3, 4)), np.zeros((3, 5))], [0], 0.5, 1)
    with pytest.raises(ValueError, match=r"traces_h\[1\] must be a 2-D array"):
        matching_sequences([np.zeros((3, 4)), np.zeros(3)], [0], 0.5, 1)


def test_matching_sequences_of_no_traces_is_empty():
    assert matching_sequences([], [0], 0.5, 1) == []


# ------------------------------------------------------------------ gate_saturation


def tiny_gates(i, f, g, o) -> Gates:
    arrays = [np.asarray(v, dtype=float) for v in (i, f, g, o)]
    zeros = np.zeros_like(arrays[0])
    return Gates(*arrays, c=zeros, h=zeros)


def test_gate_saturation_fractions_by_hand():
    # sequence 1: T = 4, H = 2; sequence 2: T = 2 — fractions pooled over 6 steps
    one = tiny_gates(
        i=[[0.05, 0.5], [0.95, 0.5], [0.5, 0.99], [0.1, 0.9]],  # 0.1 / 0.9 are not saturated
        f=[[0.95, 0.01], [0.95, 0.02], [0.95, 0.5], [0.95, 0.5]],
        g=[[-0.85, 0.85], [-0.5, 0.7], [0.0, 0.81], [-0.81, 0.79]],  # (g+1)/2
        o=[[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5]],
    )
    two = tiny_gates(
        i=[[0.01, 0.5], [0.02, 0.95]],
        f=[[0.5, 0.05], [0.95, 0.05]],
        g=[[-0.99, 0.99], [0.0, -0.95]],
        o=[[0.0, 1.0], [0.0, 1.0]],
    )
    sat = gate_saturation([one, two])
    assert list(sat) == ["i", "f", "g", "o"]
    expected = {  # (left, right) per unit, counted by hand over the 6 steps
        "i": ([3, 0], [1, 2]),
        "f": ([0, 4], [5, 0]),
        "g": ([3, 1], [0, 3]),
        "o": ([2, 0], [0, 2]),
    }
    for name, (left, right) in expected.items():
        assert sat[name][0].shape == (2,)
        np.testing.assert_allclose(sat[name][0], np.array(left) / 6, err_msg=name)
        np.testing.assert_allclose(sat[name][1], np.array(right) / 6, err_msg=name)


def test_gate_saturation_custom_thresholds_and_single_trace():
    gates = tiny_gates(
        i=[[0.2], [0.3], [0.7], [0.8]],
        f=[[0.2], [0.3], [0.7], [0.8]],
        g=[[-0.6], [-0.4], [0.4], [0.6]],  # (g+1)/2 = 0.2, 0.3, 0.7, 0.8
        o=[[0.2], [0.3], [0.7], [0.8]],
    )
    sat = gate_saturation(gates, low=0.25, high=0.75)  # one Gates is one trace
    for name in "ifgo":
        np.testing.assert_allclose(sat[name][0], [0.25], err_msg=name)
        np.testing.assert_allclose(sat[name][1], [0.25], err_msg=name)
    assert all(v == (0.0,) for v in map(tuple, gate_saturation([gates])["i"]))


def test_gate_saturation_of_network_traces_is_a_fraction(rng):
    net = random_network(rng, C=5, H=7, K=4)
    traces = [net.trace(x) for x in random_sequences(rng, [4, 9, 6])]
    sat = gate_saturation(traces)
    pooled_f = np.concatenate([t.f for t in traces])
    np.testing.assert_allclose(sat["f"][0], (pooled_f < 0.1).mean(axis=0))
    for left, right in sat.values():
        assert left.shape == right.shape == (7,)
        assert np.all(left >= 0) and np.all(right >= 0) and np.all(left + right <= 1)


def test_gate_saturation_errors():
    gates = tiny_gates([[0.5]], [[0.5]], [[0.0]], [[0.5]])
    with pytest.raises(ValueError, match="at least one trace"):
        gate_saturation([])
    with pytest.raises(ValueError, match="0 <= low < high <= 1"):
        gate_saturation([gates], low=0.9, high=0.1)
    with pytest.raises(ValueError, match="0 <= low < high <= 1"):
        gate_saturation([gates], low=-0.1)
    with pytest.raises(ValueError, match="sequence of Gates"):
        gate_saturation([np.zeros((3, 2))])
    wide = tiny_gates([[0.5, 0.5]], [[0.5, 0.5]], [[0.0, 0.0]], [[0.5, 0.5]])
    with pytest.raises(ValueError, match="different numbers of units"):
        gate_saturation([gates, wide])
    with pytest.raises(ValueError, match=r"must be 2-D \(T, H\)"):
        gate_saturation([tiny_gates([0.5], [0.5], [0.0], [0.5])])
    empty = tiny_gates(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros((0, 2)), np.zeros((0, 2)))
    with pytest.raises(ValueError, match="no time steps"):
        gate_saturation([empty])
