"""Verify a port: compare a model's outputs elsewhere with lstm_ref's, say where they first
diverge and which known porting bug — or pair of bugs — reproduces them.

:func:`verify` reads the model (any format :func:`lstm_ref.interop.load_model` imports, or a
:class:`~lstm_ref.network.Network`), takes inputs from a file or generates them with a
seed (:mod:`.inputs`) and the initial states, takes the observed outputs — in the
framework's own names and layouts (:mod:`.layouts`) — from a mapping or an ``.npz`` (no
framework needed) or from running a model file in its framework (:mod:`.frameworks`), and
returns a :class:`Report`:

- per output, a :class:`~.compare.Comparison` (Polygraphy's statistics and pass rule);
- where: the first divergence, with the reference's gate values there (:class:`Divergence`);
- why: ``"match"``, ``"rounding"`` (the observed precision's rounding only, measured by
  running the reference so rounded), ``"cause"`` (a known bug of :mod:`.causes`, or a pair,
  reproduces the outputs within tolerance; :mod:`.diagnose`), ``"unknown"``, or ``"nan"``
  (the observed outputs hold NaN, which no known cause computes: none is sought).

Given several layers' outputs it names the first layer that diverges. A bug of the weights
is sought in every LSTM layer (a converter's usual bug), then in each layer that may hold
it alone: the first diverging one, or, when the outputs do not say, each one up to it.
:mod:`.report` writes a report as text and as JSON (the schema is in docs/VERIFY.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_number
from ..errors import InputError
from ..layers import LSTM, BiLSTM, Layer, LSTMStack
from ..lstm import LSTMState
from ..network import Network, State
from .compare import Comparison, compare, failing_compared
from .diagnose import ROUNDING_FACTOR, Diagnosis, Finding, Observation, diagnose
from .frameworks import onnx_state_inputs, options_for, own_semantics, read_reference
from .inputs import Inputs, generate_inputs, read_inputs, read_observed
from .layouts import LAYOUTS, Observed, initial_states, observed_outputs, torch_state
from .reference import SEMANTICS, Expected, Setting, Wanted, reference_all
from .rounding import PRECISIONS, rounded_setting

Array = np.ndarray


@dataclass(frozen=True)
class Divergence:
    """Where the first output beyond tolerance first diverges.

    ``step`` is None for an output with one value per sequence; ``gates`` holds the
    reference's i, f, g, o, c, h at (sequence, step) of ``layer`` for ``units`` (for an
    output per sequence: at the sequence's last step, first units).
    """

    output: str
    sequence: int
    step: int | None
    unit: int
    observed: float
    reference: float
    layer: str | None
    units: list[int]
    gates: dict[str, list[float]] | None
    implied: dict[str, float] | None


@dataclass(frozen=True)
class Report:
    """What :func:`verify` found (see the module docstring)."""

    model: str
    observed_from: str
    inputs: str
    lengths: list[int]
    semantics: str
    layout: str
    initial_state: str  # "zeros" or "non-zero"
    precision: str  # the observed outputs' precision, whose rounding is allowed for
    atol: float
    rtol: float
    comparisons: list[Comparison]
    rounding: dict[str, float]  # per output: max |reference in `precision` − float64|
    verdict: str  # "match", "rounding", "cause", "unknown", "nan"
    causes: list[Finding] = field(default_factory=list)  # those that reproduce, best first
    nearest: list[Finding] = field(default_factory=list)  # when none does: the closest
    tried: int = 0  # hypotheses computed: single causes and pairs
    pairs_tried: int = 0
    divergence: Divergence | None = None
    first_layer: str | None = None  # outputs of several layers: the first that diverges
    precision_declared: bool = False  # `precision` given, not read off the outputs
    arrays: dict[str, dict[str, Array]] = field(default_factory=dict, repr=False)
    """The outputs compared, by runner ("lstm_ref" and the observed one's), then by name."""

    @property
    def passed(self) -> bool:
        """Every output within tolerance, or beyond it only by the rounding of the precision
        the caller declared the port computes in."""
        declared_rounding = self.verdict == "rounding" and self.precision_declared
        return declared_rounding or all(c.passed for c in self.comparisons)


def check_options(path: Path | None, run: str | os.PathLike | bool, options: Mapping) -> None:
    """An InputError if a model option applies to neither the model file ``path`` (None: a
    Network) nor the port ``run`` runs (True: the model itself; False: none)."""
    port = (path if run is True else Path(run)) if run is not False else None
    unused = set(options) - set(options_for(path, options)) - set(options_for(port, options))
    if unused:
        files = [str(f) for f in dict.fromkeys((path, port)) if f is not None] or ["a Network"]
        raise InputError(f"option {', '.join(sorted(unused))} applies to none of {files}")


def verify(
    model: str | os.PathLike | Network,
    inputs: Inputs | str | os.PathLike | None = None,
    *,
    observed: Mapping[str, Array] | str | os.PathLike | None = None,
    run: str | os.PathLike | bool = False,
    layout: str = "lstm_ref",
    initial_state: Mapping[str, object] | None = None,
    semantics: str | None = None,
    precision: str | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    pairs: bool = True,
    seed: int = 0,
    batch: int = 4,
    length_range: tuple[int, int] = (3, 8),
    scale: float = 1.0,
    options: Mapping[str, Any] | None = None,
    loaded: Network | None = None,
) -> Report:
    """Compare observed outputs with the reference's and diagnose a difference.

    Parameters
    ----------
    model : path or Network
        The model as it should compute (the reference), in any importable format. A
        Network's assigned ``state`` is its initial state (unless ``initial_state``).
    inputs : Inputs or path, optional
        A ``.npy``/``.npz`` file (:func:`read_inputs`); None generates them
        (:func:`generate_inputs` with ``seed``, ``batch``, ``length_range``, ``scale``).
    observed : mapping or path, optional
        Observed outputs by name, in ``layout``'s names and shapes, or an ``.npz`` of them.
        Give this or ``run``.
    run : path or bool
        Run this model file (True: ``model`` itself) in its framework for the observed
        outputs (:mod:`.frameworks`).
    layout : str
        Whose names and layouts ``observed`` and ``initial_state`` use: "lstm_ref",
        "torch", "torch-batch-first", "onnx", "keras" (:mod:`.layouts`).
    initial_state : mapping, optional
        Initial states per layer, direction and sequence, in ``layout``'s names (torch's
        ``h_0``/``c_0``, ONNX's ``initial_h``/``initial_c``, ...); default the model's own.
    semantics : str, optional
        The padding semantics of the reference, a key of :data:`~.reference.SEMANTICS`;
        default the model's own as its framework computes it
        (:func:`~.frameworks.own_semantics`; a port that computes otherwise is diagnosed
        as a ``padding:`` cause), or, when ``run`` runs the model's own file, the run's.
    precision : str, optional
        The precision the port computed in: "float32", "float16" or "bfloat16"; default
        float16 for float16 outputs, else float32. Its rounding is not a bug; declared,
        a difference by its rounding alone passes (``Report.passed``).
    atol, rtol : float
        Finite and >= 0: an element fails when it exceeds both.
    pairs : bool
        When no single cause reproduces the outputs, try pairs of causes.
    options : mapping, optional
        Importer options (:func:`~lstm_ref.interop.load_model`'s: PyTorch's ``prefix``,
        ``head``, ``softmax``, ``last``; ONNX's ``output``) for the model file and the file
        ``run`` runs, each taking those of its format; one that neither takes is refused.
    loaded : Network, optional
        ``model`` already imported (so that its file is not read again).

    Returns
    -------
    Report
    """
    atol, rtol = (_tolerance(v, name) for v, name in ((atol, "atol"), (rtol, "rtol")))
    if (observed is None) == (run is False):
        raise InputError("give either observed outputs or a model file to run, not both or none")
    path = None if isinstance(model, Network) else Path(model)
    port = (path if run is True else Path(run)) if run is not False else None
    options = dict(options or {})
    check_options(path, run, options)
    given_net = model if isinstance(model, Network) else loaded
    if given_net is None:
        assert path is not None
        given_net = read_reference(path, options_for(path, options))
    net = given_net.astype(np.float64)  # its assigned state cast too
    if isinstance(inputs, Inputs):
        given = inputs
    elif inputs is None:
        given = generate_inputs(net.input_size, seed, batch, length_range, scale)
    else:
        given = read_inputs(inputs, net.input_size)
    N, T = given.x.shape[:2]
    graph_inputs = {  # an ONNX graph's own state inputs, by name: h (0) or c (1)
        name: k
        for f in dict.fromkeys((path, port))
        if f is not None and f.suffix.lower() == ".onnx"
        for name, k in onnx_state_inputs(f).items()
    }
    start = initial_states(net, layout, initial_state or {}, N, graph_inputs)
    if observed is None and port is None:
        raise InputError("run=True needs a model file; give run=<file> with a Network")
    runner, source, arrays, ran = _observe(observed, port, net, given, start, options)
    if port is not None:
        layout = "lstm_ref"  # the runners return lstm_ref's names
    if semantics is None:  # the model's as it should compute (the port's when it is the model)
        itself = port is not None and path is not None and port.resolve() == path.resolve()
        semantics = ran if itself and ran else own_semantics(path, given_net)
    if semantics not in SEMANTICS:
        raise InputError(
            f"unknown padding semantics {semantics!r}; expected one of {list(SEMANTICS)}"
        )
    outputs = observed_outputs(net, layout, arrays, N, T)
    if not outputs:
        raise InputError(f"{source}: no outputs to compare")
    setting = Setting(net, start, semantics)
    seqs = given.sequences
    wanted = {o.label: o.wanted for o in outputs}
    reference = reference_all(setting, seqs, wanted, T)
    comparisons = [_compare(o, reference[o.label], atol, rtol) for o in outputs]
    declared = precision is not None
    precision = precision or (
        "float16" if any(o.values.dtype == np.float16 for o in outputs) else "float32"
    )
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {list(PRECISIONS)}; got {precision!r}")
    nonzero = any(a.any() for s in start.values() for a in s)

    def report(**found: object) -> Report:
        return Report(
            "a Network" if path is None else str(model),
            source,
            given.source,
            [int(n) for n in given.lengths],
            semantics,
            layout,
            "non-zero" if nonzero else "zeros",
            precision,
            atol,
            rtol,
            comparisons,
            precision_declared=declared,
            arrays={
                "lstm_ref": {k: e.values for k, e in reference.items()},
                runner: {o.label: o.values for o in outputs},
            },
            **found,  # type: ignore[arg-type]
        )

    if all(c.passed for c in comparisons):
        return report(rounding={}, verdict="match")
    rounding = _rounding(setting, precision, seqs, T, wanted, reference)
    beyond = {
        c.name
        for c in comparisons
        if not c.passed
        and not (
            c.nan == c.infinite == c.padded_failed == 0
            and c.max_abs <= ROUNDING_FACTOR * rounding[c.name]
        )
    }
    position = {o.label: _layer_index(net, o) for o in outputs}
    first = min((position[k] for k in beyond), default=None)
    layered = len(set(position.values())) > 1
    focus = [o for o in outputs if first is None or position[o.label] == first]  # its outputs
    failed_first = [c for c in comparisons if c.name in {o.label for o in focus}]
    divergence = _divergence(net, setting, given, failed_first, focus, reference)
    first_layer = net.layers[first].name if layered and first is not None else None
    if not beyond:
        return report(rounding=rounding, verdict="rounding", divergence=divergence)
    if any(c.nan for c in comparisons):  # no known cause computes NaN: none is sought
        return report(
            rounding=rounding, verdict="nan", divergence=divergence, first_layer=first_layer
        )
    watched = Observation(
        wanted,
        {o.label: o.values for o in outputs},
        rounding,
        atol,
        rtol,
    )
    assert first is not None  # some output diverges beyond rounding
    found: Diagnosis = diagnose(
        setting, seqs, T, watched, reference, path, pairs, _alone(net, position, first)
    )
    causes = [f for f in found.findings if f.reproduces]
    return report(
        rounding=rounding,
        verdict="cause" if causes else "unknown",
        causes=causes,
        nearest=[] if causes else found.findings[:3],
        tried=found.tried,
        pairs_tried=found.pairs_tried,
        divergence=divergence,
        first_layer=first_layer,
    )


def _observe(
    observed: Mapping[str, Array] | str | os.PathLike | None,
    port: Path | None,
    net: Network,
    given: Inputs,
    start: State,
    options: Mapping[str, Any],
) -> tuple[str, str, dict[str, Array], str | None]:
    """The observed outputs — given, read from a file, or from running ``port`` in its
    framework from ``start`` — as (runner, where they came from, arrays by name, the
    padding semantics the framework ran or None)."""
    if observed is not None:
        if isinstance(observed, Mapping):
            return "observed", "the observed outputs given", dict(observed), None
        return "observed", str(observed), read_observed(observed), None
    from .frameworks import run_framework

    assert port is not None
    own = net.state_rows(len(given.x))
    same = all(np.array_equal(a, b) for n in own for a, b in zip(own[n], start[n], strict=True))
    runner, arrays, ran = run_framework(
        port, given.x, given.lengths, lambda: torch_state(net, start), same, options
    )
    return runner, f"{runner} running {port}", arrays, ran


def _rounding(
    setting: Setting,
    precision: str,
    seqs: list[Array],
    T: int,
    wanted: Mapping[str, Wanted],
    reference: Mapping[str, Expected],
) -> dict[str, float]:
    """Per output, the largest distance of the reference in ``precision`` from the
    float64 reference (over the elements compared)."""
    low = rounded_setting(setting, precision)
    lows = reference_all(low.setting, low.sequences(seqs), wanted, T)
    rounding = {}
    for label, e in reference.items():
        err = np.abs(low.output(lows[label].values) - e.values)[e.compared]
        rounding[label] = float(np.max(err, initial=0.0))
    return rounding


def _alone(net: Network, position: Mapping[str, int], first: int) -> list[str]:
    """The LSTM layers a bug of the weights may be in alone: those up to the first
    diverging layer (index ``first``) whose outputs were not observed matching; none when
    the network has one."""
    recurrent = [k for k, x in enumerate(net.layers) if x.initial_state is not None]
    matching = {k for k in position.values() if k < first}
    alone = [net.layers[k].name for k in recurrent if k <= first and k not in matching]
    return alone if len(recurrent) > 1 else []


def _layer_index(net: Network, o: Observed) -> int:
    """The index of the layer whose output ``o`` is."""
    if o.wanted.layer is None:
        return len(net.layers) - 1
    return [x.name for x in net.layers].index(o.wanted.layer)


def _tolerance(value: object, name: str) -> float:
    number = check_number(value, name)
    if number < 0:
        raise InputError(f"{name} must be >= 0; got {value!r}")
    return number


def _compare(o: Observed, e: Expected, atol: float, rtol: float) -> Comparison:
    if o.values.shape != e.values.shape:
        raise InputError(
            f"observed output {o.label!r} has shape {o.values.shape}; the reference's is "
            f"{e.values.shape} (batch first: (N, K) or (N, T, W))"
        )
    return compare(o.label, o.values, e.values, e.data, atol, rtol, e.padded)


def _divergence(
    net: Network,
    setting: Setting,
    inputs: Inputs,
    comparisons: list[Comparison],
    outputs: list[Observed],
    reference: Mapping[str, Expected],
) -> Divergence:
    """The first failing element of the first failing output: the earliest step, then the
    lowest sequence and unit; for outputs per sequence the lowest sequence, then the
    largest error."""
    c = next(c for c in comparisons if not c.passed)
    o = next(o for o in outputs if o.label == c.name)
    obs, e = o.values, reference[c.name]
    bad, abs_err = failing_compared(obs, e.values, e.compared, c.atol, c.rtol)
    if e.values.ndim == 3:
        t, n, u = min((int(t), int(n), int(u)) for n, t, u in np.argwhere(bad))
    else:
        n = int(np.argwhere(bad)[0, 0])
        u, t = int(np.argmax(np.where(bad[n], np.nan_to_num(abs_err[n], nan=np.inf), -1))), None
    layer = net.layer(o.wanted.layer) if o.wanted.layer is not None else net.layers[-1]
    traced: Layer | None = layer if isinstance(layer, LSTM | BiLSTM | LSTMStack) else None
    if traced is None and net.stateful_layers:
        traced = net.stateful_layers[0]
    index = (n, u) if t is None else (n, t, u)
    gates = implied = None
    units: list[int] = []
    own_h = traced is layer and o.wanted.what in ("output", "steps")
    if traced is not None:
        seq = inputs.sequences[n]
        net.state = {k: LSTMState(s.h[n], s.c[n]) for k, s in setting.state.items()}
        trace = net.trace(seq, traced.name)
        step = len(seq) - 1 if t is None else t
        units = [u] if traced is layer else list(range(min(4, trace.h.shape[1])))
        if step < len(seq) and units[-1] < trace.h.shape[1]:
            gates = {g: [float(v[step, k]) for k in units] for g, v in trace._asdict().items()}
            if own_h and isinstance(layer, LSTM) and layer.state_activation == "tanh":
                tanh_c = float(np.tanh(trace.c[step, u]))
                if abs(tanh_c) > 1e-12 and layer.projection is None:
                    implied = {"o": float(obs[index]) / tanh_c}
    return Divergence(
        output=c.name,
        sequence=n,
        step=t,
        unit=u,
        observed=float(obs[index]),
        reference=float(e.values[index]),
        layer=None if traced is None else traced.name,
        units=units,
        gates=gates,
        implied=implied,
    )


__all__ = [
    "LAYOUTS",
    "Divergence",
    "Finding",
    "Inputs",
    "Report",
    "diagnose",
    "generate_inputs",
    "read_inputs",
    "read_observed",
    "verify",
]
