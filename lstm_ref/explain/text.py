"""The text of the explanations: sections of aligned tables and equations, each beside the
line of :func:`lstm_ref.lstm.lstm_step` or :func:`lstm_ref.lstm.lstm_step_backward` it
follows, for the numbers of :mod:`lstm_ref.explain.details`."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..lstm import GATE, GATE_NAMES, LSTMActivations, lstm_step, lstm_step_backward
from ..network import Network
from .details import BackwardDetails, GateTerms, StepDetails, backward_details, step_details
from .quoting import code_line

Array = np.ndarray

INDENT = "   "  # body text of a section
EQUATION = "         "  # an equation, under its quoted line of code
WIDTH = 96  # longer equations break at their "=" signs


def _n(v: float) -> str:
    """A number with 6 significant digits (and no minus sign on zero)."""
    return f"{v + 0.0:.6g}"


def _p(v: float) -> str:
    """A number as a factor or term: negative numbers in parentheses."""
    return f"({_n(v)})" if v < 0 else _n(v)


def _width(text: str) -> int:
    """Display width: combining marks (the tilde of x̃) take no column."""
    return sum(not unicodedata.combining(ch) for ch in text)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Aligned columns: numbers to the right (floats with 6 significant digits), text left."""
    cells = [list(headers)] + [[_n(v) if isinstance(v, float) else str(v) for v in r] for r in rows]
    widths = [max(_width(row[j]) for row in cells) for j in range(len(headers))]
    left = [isinstance(v, str) for v in rows[0]]

    def cell(text: str, j: int) -> str:
        pad = " " * (widths[j] - _width(text))
        return text + pad if left[j] else pad + text

    return [INDENT + "  ".join(cell(c, j) for j, c in enumerate(row)).rstrip() for row in cells]


def _code(func: Callable[..., Any], pattern: str) -> str:
    """The line of ``func`` that matches ``pattern``, quoted."""
    return f"{INDENT}code: {code_line(func, pattern)}"


def _equation(lhs: str, *steps: str, note: str = "") -> list[str]:
    """``lhs = step = step …`` on one line, or one ``= step`` per line when too long."""
    line = f"{EQUATION}{lhs} = {' = '.join(steps)}"
    if _width(line) <= WIDTH:
        lines = [line]
    else:
        pad = " " * _width(f"{EQUATION}{lhs} ")
        lines = [f"{EQUATION}{lhs} = {steps[0]}", *(f"{pad}= {s}" for s in steps[1:])]
    if note:
        if _width(f"{lines[-1]}    {note}") <= WIDTH:
            lines[-1] += f"    {note}"
        else:
            lines.append(f"{EQUATION}({note})")
    return lines


def _openness(v: float) -> str:
    if v in (0, 1):
        return "closed" if v == 0 else "open"
    return "nearly closed" if v < 0.1 else "nearly open" if v > 0.9 else "partly open"


def _gate_comment(gate: GateTerms) -> str:
    share = f"{100 * gate.value:.0f}%"
    return {
        "i": f"{_openness(gate.value)}: lets in {share} of the candidate g",
        "f": f"{_openness(gate.value)}: keeps {share} of c_{{t-1}}",
        "g": "the new content offered to the cell, in (−1, 1)",
        "o": f"{_openness(gate.value)}: shows {share} of the squashed cell as h_t",
    }[gate.name]


def _header(d: StepDetails, title: str) -> list[str]:
    H, u = d.hidden_size, d.unit
    lines = [
        f"{title}: hidden unit {u}, time step {d.step} of {d.num_steps}, layer {d.layer!r}",
        f"({H} hidden units; σ_g = {d.gate_activation}, σ_s = {d.state_activation}. Steps and "
        "units count from 1; rows of W, R and b",
        f"from 0: unit {u}'s row in gate block k = {_list(range(len(GATE_NAMES)))} "
        f"({_list(GATE_NAMES)}) is k·{H} + {u - 1}.)",
    ]
    if d.reverse:
        lines += [
            f"A reverse direction: time runs backwards. It reads the sequence from step "
            f"{d.num_steps} down to step 1,",
            "so h_{t-1} and c_{t-1} below are the state of the step it processed before this "
            "one: step t+1's.",
        ]
    return lines


def _list(items: Sequence[Any]) -> str:
    return ", ".join(map(str, items))


def _check_line(against: str, diff: float, tolerance: float) -> str:
    return f"matches {against}: max |diff| = {diff:.3g} (tolerance {tolerance:g})"


def _join(sections: Sequence[Sequence[str]]) -> str:
    return "\n\n".join("\n".join(lines) for lines in sections)


def _input_lines(d: StepDetails) -> list[str]:
    t = d.step
    lines = [f"1. The input at step {t}"]
    if d.input_source is not None:
        lines.append(f"{INDENT}x̃_t is the output of layer {d.input_source!r} at step {t}.")
        return [
            *lines,
            *_table(["input", "x̃_t"], [[j + 1, float(v)] for j, v in enumerate(d.x_seen)]),
        ]
    columns: list[tuple[str, Array]] = [("x_t", d.x_raw)]
    if d.mean is not None and d.std is not None:
        lines.append(f"{INDENT}The input layer z-scores each feature: x̃_t = (x_t − mean) / std.")
        columns += [("mean", d.mean), ("std", d.std)]
    elif d.mean is not None:
        lines.append(f"{INDENT}The input layer centres each feature: x̃_t = x_t − mean.")
        columns.append(("mean", d.mean))
    else:
        lines.append(f"{INDENT}The input layer passes the data unchanged: x̃_t = x_t.")
    columns.append(("x̃_t", d.x_seen))
    rows = [[j + 1, *(float(a[j]) for _, a in columns)] for j in range(len(d.x_seen))]
    return [*lines, *_table(["feature", *(name for name, _ in columns)], rows)]


def _state_lines(d: StepDetails) -> list[str]:
    H, t, u = d.hidden_size, d.step, d.unit
    if t == (d.num_steps if d.reverse else 1):
        where = "h_0 and c_0, the layer's starting state (zeros unless set)"
    else:
        where = f"h and c as step {t + 1 if d.reverse else t - 1} left them"
    return [
        f"2. The state entering step {t}: {where}",
        f"{INDENT}h_{{t-1}}[{u}] = {_n(d.h_prev)}    c_{{t-1}}[{u}] = {_n(d.c_prev)}",
        f"{INDENT}h_{{t-1}} of ALL {H} units enters through R (each row of R has {H} weights):",
        f"{INDENT}R[row]·h_{{t-1}} = Σ_j R[row, j]·h_{{t-1}}[j]. "
        "c_{t-1} enters only this unit's own cell.",
    ]


def _terms(g: GateTerms) -> tuple[float, float, float, float]:
    return g.input_term, g.recurrent_term, g.bias, g.preactivation


def _preactivation_lines(d: StepDetails) -> list[str]:
    weights = [
        [j + 1, float(d.x_seen[j]), *map(float, d.w_rows[:, j])] for j in range(len(d.x_seen))
    ]
    terms = [[f"{g.name} ({GATE[g.name].role})", g.row, *_terms(g)] for g in d.gates]
    return [
        "3. The pre-activations: one row of W, R and b per gate",
        _code(lstm_step, r"^a = "),
        f"{INDENT}The unit's four rows of W, one weight per input; "
        "W[row]·x̃_t = Σ_j W[row, j]·x̃_t[j]:",
        *_table(["input", "x̃_t", *(f"W[{g.row}, j] ({g.name})" for g in d.gates)], weights),
        "",
        *_table(["gate", "row", "W[row]·x̃_t", "R[row]·h_{t-1}", "b[row]", "a = sum"], terms),
    ]


def _activation_lines(d: StepDetails) -> list[str]:
    lines = ["4. The gates: an activation applied to each pre-activation"]
    for g in d.gates:
        lines += [
            _code(lstm_step, rf"^{g.name} = "),
            *_equation(
                g.name,
                f"{g.activation}({_n(g.preactivation)})",
                _n(g.value),
                note=_gate_comment(g),
            ),
        ]
    return lines


def _state_update_lines(d: StepDetails) -> list[str]:
    i, f, g, o = (gate.value for gate in d.gates)
    s = d.state_activation
    return [
        "5. The new cell state and hidden state",
        _code(lstm_step, r"^c = "),
        *_equation(
            "c_t",
            "f·c_{t-1} + i·g",
            f"{_n(f)} × {_p(d.c_prev)} + {_n(i)} × {_p(g)}",
            f"{_n(f * d.c_prev)} + {_p(i * g)}",
            _n(d.c),
        ),
        _code(lstm_step, r"^h = "),
        *_equation(
            "h_t",
            f"o·{s}(c_t)",
            f"{_n(o)} × {s}({_n(d.c)})",
            f"{_n(o)} × {_p(d.tanh_c)}",
            _n(d.h),
        ),
    ]


def format_step(d: StepDetails) -> str:
    """The text of :func:`explain_step` for the numbers ``d``."""
    return _join(
        [
            _header(d, "One LSTM time step"),
            _input_lines(d),
            _state_lines(d),
            _preactivation_lines(d),
            _activation_lines(d),
            _state_update_lines(d),
            [_check_line("net.trace", d.max_diff, d.tolerance)],
        ]
    )


def explain_step(net: Network, x: Array, step: int, unit: int, layer: str | None = None) -> str:
    """A plain-text walk through one LSTM time step for one hidden unit, with the real numbers.

    Parameters
    ----------
    net : Network
        The network (its current state is the starting state, as :meth:`Network.trace`).
    x : ndarray, shape (T, C)
        One sequence, time × features.
    step, unit : int
        The time step (1 … T) and hidden unit (1 … H), 1-based.
    layer : str, optional
        The LSTM (default the first recurrent layer): a layer's name, one direction of a
        BiLSTM (``"NAME/forward"``, ``"NAME/backward"`` — time runs backwards, and the text
        says so) or a layer of an LSTMStack (``"NAME/INNER"``); see :mod:`lstm_ref.parts`.

    Returns
    -------
    str
        The input x_t and the input x̃_t the layer sees; h_{t-1} and c_{t-1} of the unit;
        for each gate i, f, g, o its row of W, R and b, the terms W[row]·x̃_t,
        R[row]·h_{t-1}, b[row], their sum and the gate's value; c_t and h_t — each
        equation beside its line of :func:`lstm_ref.lstm.lstm_step`, and a last line
        saying how far the numbers are from :meth:`Network.trace`.

    Raises
    ------
    InputError
        If ``step``, ``unit`` or ``layer`` is out of range, or ``x`` is not one sequence.
    InputTypeError
        If ``net`` is not a Network.
    RuntimeError
        If a printed number disagrees with :meth:`Network.trace` beyond 1e-12 (float64).
    """
    return format_step(step_details(net, x, step, unit, layer))


def _output_lines(b: BackwardDetails) -> list[str]:
    u = b.forward.unit
    lines = [
        "1. The loss, and its gradient down to the LSTM's output",
        f"{INDENT}L = −log p[{b.label!r}] = −log({_n(float(b.probs[b.label_index]))}) = "
        f"{_n(b.loss)}",
        f"{INDENT}Softmax and cross-entropy together: dL/dz = p − onehot (z: the logits).",
    ]
    headers = ["class", "p", "onehot", "dL/dz"]
    rows = [
        [name, float(b.probs[k]), int(k == b.label_index), float(b.dlogits[k])]
        for k, name in enumerate(b.class_names)
    ]
    if b.fc_column is not None:
        headers += [f"{b.layers_above[0]}.weights[k, {u - 1}]", "product"]
        rows = [
            [*row, float(w), float(w * dz)]
            for row, w, dz in zip(rows, b.fc_column, b.dlogits, strict=True)
        ]
    lines += _table(headers, rows)
    if b.output_mode == "sequence":
        return [
            *lines,
            f"{INDENT}Through layers {list(b.layers_above)}: the gradient of this layer's output",
            f"{INDENT}at step t joins dh_t at every step; at t = T it is {_n(b.d_output)}.",
        ]
    if b.fc_column is not None:
        how = f"Σ_k {b.layers_above[0]}.weights[k, {u - 1}]·dL/dz_k (the last column's sum)"
    else:
        how = f"through layers {list(b.layers_above)} (their backward)"
    return [*lines, f"{INDENT}dL/dh_T[{u}] = {how} = {_n(b.d_output)}"]


def _carry_lines(b: BackwardDetails) -> list[str]:
    d, u = b.forward, b.forward.unit
    return [
        f"2. Carrying dh and dc back from t = {d.num_steps} to t = {d.step} "
        "(lstm_step_backward, all units at once)",
        f"{INDENT}dc reaches step t−1 as dc·f_t, after adding the path through h_t; dh reaches",
        f"{INDENT}it as Rᵀ·da, which mixes the gradients of all {d.hidden_size} units.",
        *_table(
            ["t", f"dh_t[{u}] (in)", f"dc_t[{u}] (in)", f"f_t[{u}]"],
            [[t, dh, dc, f] for t, dh, dc, f in b.carried],
        ),
    ]


def _step_backward_lines(b: BackwardDetails) -> list[str]:
    d = b.forward
    i, f, g, o = (gate.value for gate in d.gates)
    s = d.state_activation
    acts = LSTMActivations.from_names(d.gate_activation, d.state_activation)
    gate_lines = []
    for gate, dv, dact, da in zip(d.gates, (b.di, b.df, b.dg, b.do), b.dact, b.da, strict=True):
        n = gate.name
        gate_lines += [
            _code(lstm_step_backward, rf"d{n} \* act\.\w+\.grad\({n}\)"),
            *_equation(
                f"da_{n}",
                f"d{n}·{acts.of(n).derivative.format(y=n)}",
                f"{_p(dv)} × {_p(dact)}",
                _n(da),
            ),
        ]
    return [
        f"3. Step {d.step}, unit {d.unit}, line by line (the mirror of the forward lines)",
        f"{INDENT}incoming: dh_t = {_n(b.dh)}    dc_t = {_n(b.dc_in)}",
        _code(lstm_step_backward, r"^s = "),
        *_equation(f"{s}(c_t)", f"{s}({_n(d.c)})", _n(d.tanh_c)),
        _code(lstm_step_backward, r"^do = "),
        *_equation("do", f"dh·{s}(c_t)", f"{_p(b.dh)} × {_p(d.tanh_c)}", _n(b.do)),
        _code(lstm_step_backward, r"^dc = "),
        *_equation(
            "dc",
            f"dc_t + dh·o·{acts.state.derivative.format(y=f'{s}(c_t)')}",
            f"{_p(b.dc_in)} + {_p(b.dh)} × {_n(o)} × {_n(b.dstate)}",
            _n(b.dc),
        ),
        _code(lstm_step_backward, r"^di, df, dg, dc_prev = "),
        *_equation("di", "dc·g", f"{_p(b.dc)} × {_p(g)}", _n(b.di)),
        *_equation("df", "dc·c_{t-1}", f"{_p(b.dc)} × {_p(d.c_prev)}", _n(b.df)),
        *_equation("dg", "dc·i", f"{_p(b.dc)} × {_n(i)}", _n(b.dg)),
        *_equation(
            "dc_{t-1}",
            "dc·f",
            f"{_p(b.dc)} × {_n(f)}",
            _n(b.dc_prev),
            note="the dc_t step t−1 receives",
        ),
        f"{INDENT}Then through each gate's activation, its derivative written through its value:",
        *gate_lines,
    ]


def _gradient_lines(b: BackwardDetails) -> list[str]:
    d, u = b.forward, b.forward.unit
    H = d.hidden_size
    rows = len(GATE_NAMES) * H
    return [
        f"4. What step {d.step} adds to the gradients of the unit's rows, and what it sends back",
        _code(lstm_step_backward, r"^grads = "),
        *_table(
            ["gate", "row", "da = what db[row] gets"],
            [[g.name, g.row, da] for g, da in zip(d.gates, b.da, strict=True)],
        ),
        f"{INDENT}dW[row, :] gets da·x̃_t (the {len(d.x_seen)} inputs of step {d.step});",
        f"{INDENT}dR[row, :] gets da·h_{{t-1}} (the h_{{t-1}} of all {H} units).",
        _code(lstm_step_backward, r"^return "),
        f"{INDENT}dh_{{t-1}}[{u}] = Σ_row R[row, {u - 1}]·da[row] over all {rows} rows "
        f"(every unit's gates) = {_n(b.dh_prev)}",
        f"{INDENT}dc_{{t-1}}[{u}] = dc·f = {_n(b.dc_prev)}",
    ]


def _total_lines(b: BackwardDetails) -> list[str]:
    d = b.forward
    row = d.gates[0].row
    return [
        f"5. The whole gradient of the input gate's bias b[{row}]: its da_i summed over all "
        f"{d.num_steps} steps",
        f"{INDENT}dL/db[{row}] = Σ_t da_i(t) = {_n(b.db_total)}",
        f"{INDENT}central difference (L(b[{row}] + ε) − L(b[{row}] − ε)) / 2ε with ε = {b.eps:g}: "
        f"{_n(b.db_numeric)}",
        f"{INDENT}relative difference: {b.relative_difference:.2g}",
    ]


def format_backward(b: BackwardDetails) -> str:
    """The text of :func:`explain_backward` for the numbers ``b``."""
    return _join(
        [
            _header(b.forward, "Backpropagation through time"),
            _output_lines(b),
            _carry_lines(b),
            _step_backward_lines(b),
            _gradient_lines(b),
            _total_lines(b),
            [_check_line("lstm_step_backward and LSTM.backward", b.max_diff, b.tolerance)],
        ]
    )


def explain_backward(
    net: Network, x: Array, label: str, step: int, unit: int, layer: str | None = None
) -> str:
    """A plain-text walk through backpropagation through time for one unit at one step.

    Parameters
    ----------
    net : Network
        A sequence-to-label network ending in a Softmax layer (its current state is the
        starting state).
    label : str
        The true class of ``x``, one of ``net.class_names``.
    x, step, unit, layer
        As in :func:`explain_step`: one sequence (T, C), the time step (1 … T) and hidden
        unit (1 … H), and the LSTM layer (default the first; a forward LSTM layer of the
        network's own, not a part of a BiLSTM or an LSTMStack).

    Returns
    -------
    str
        The loss −log p[label]; dL/dz = p − onehot; dL/dh_T of the unit through the layers
        above; dh and dc of the unit carried back from T to ``step`` by
        :func:`lstm_ref.lstm_loop.lstm_backward`; at ``step`` every line of the backward step
        with the numbers (do, dc, di, df, dg, dc_{t-1}, each gate's da); that step's
        contribution to db, dW and dR; the total dL/db of the input-gate row against a
        central difference of the loss; and how far the numbers are from the library's
        backward pass.

    Raises
    ------
    InputError
        If an argument is out of range, ``label`` is not a class name, or the network does
        not classify whole sequences with a Softmax layer.
    InputTypeError
        If ``net`` is not a Network.
    RuntimeError
        If a printed number disagrees with the library beyond 1e-12 (float64).
    """
    return format_backward(backward_details(net, x, label, step, unit, layer))
