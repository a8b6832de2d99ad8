"""PyTorch models made fresh for the interop tests: every gate block scaled differently,
non-zero biases, so no gate permutation can hide."""

from __future__ import annotations

import numpy as np
import torch

from lstm_ref import LSTMState


def distinct_gates(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Scale each gate block of every (4H, …) tensor differently and shift every bias."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
            if p.shape[0] % 4 == 0 and ("weight_i" in name or "weight_h" in name or "bias" in name):
                H = p.shape[0] // 4
                scale = torch.tensor([0.6, 0.9, 1.2, 0.5], dtype=p.dtype).repeat_interleave(H)
                p.mul_(scale.view(-1, *([1] * (p.dim() - 1))))
            if "bias" in name:
                p.add_(torch.linspace(-0.5, 0.5, p.shape[0], dtype=p.dtype))
    return module


class Classifier(torch.nn.Module):
    """The head documented in lstm_ref.interop.torch: nn.Linear on the last layer's h_n."""

    def __init__(self, C, H, K, num_layers=1, bidirectional=False, proj_size=0):
        super().__init__()
        self.lstm = torch.nn.LSTM(
            C, H, num_layers, batch_first=True, bidirectional=bidirectional, proj_size=proj_size
        )
        D = 2 if bidirectional else 1
        self.fc = torch.nn.Linear(D * (proj_size or H), K)

    def forward(self, x):
        _, (h_n, _) = self.lstm(x)
        last = torch.cat(list(h_n[-(2 if self.lstm.bidirectional else 1) :]), dim=1)
        return self.fc(last).softmax(dim=1)


class EveryLayerHead(torch.nn.Module):
    """An nn.Linear on every layer's final h of a multi-layer nn.LSTM (an LSTMStack in
    lstm_ref), read one of the three ways users write it."""

    def __init__(
        self, C, H, K, num_layers, bidirectional=False, proj_size=0, batch_first=True, read=""
    ):
        super().__init__()
        self.lstm = torch.nn.LSTM(
            C,
            H,
            num_layers,
            batch_first=batch_first,
            bidirectional=bidirectional,
            proj_size=proj_size,
        )
        D = 2 if bidirectional else 1
        self.fc = torch.nn.Linear(num_layers * D * (proj_size or H), K)
        self.read = read

    def forward(self, x, state=None):
        _, (h_n, _) = self.lstm(x, state)
        if self.read == "cat-list":
            return self.fc(torch.cat(list(h_n), dim=1))
        if self.read == "last-two":  # a 2-layer one-way LSTM: layer 0's and layer 1's h
            return self.fc(torch.cat((h_n[-2], h_n[-1]), 1))
        return self.fc(h_n.permute(1, 0, 2).reshape(h_n.shape[1], -1))


def packed(seqs: list[np.ndarray], dtype=torch.float64):
    """A PackedSequence of (T_i, C) arrays (any order of lengths)."""
    tensors = [torch.from_numpy(s).to(dtype) for s in seqs]
    padded = torch.nn.utils.rnn.pad_sequence(tensors, batch_first=True)
    lengths = torch.tensor([len(s) for s in seqs])
    return torch.nn.utils.rnn.pack_padded_sequence(
        padded, lengths, batch_first=True, enforce_sorted=False
    )


def torch_states(rng, module, B, dtype=torch.float64):
    """Non-zero (h_0, c_0) of shape (L·D, B, ·), and the same as lstm_ref layer states."""
    D = 2 if module.bidirectional else 1
    H_out = module.proj_size or module.hidden_size
    h0 = rng.uniform(-0.8, 0.8, size=(module.num_layers * D, B, H_out))
    c0 = rng.normal(size=(module.num_layers * D, B, module.hidden_size))
    per_layer = [
        LSTMState(
            np.concatenate(list(h0[k * D : (k + 1) * D]), axis=-1),
            np.concatenate(list(c0[k * D : (k + 1) * D]), axis=-1),
        )
        for k in range(module.num_layers)
    ]
    return (torch.from_numpy(h0).to(dtype), torch.from_numpy(c0).to(dtype)), per_layer


def assert_matches_nn_lstm(net, module, seqs, rng, atol):
    """``net`` (its LSTM layers only) against ``module``'s own forward on ``seqs`` packed,
    from random non-zero (h_0, c_0): every output at each sequence's steps, h_n and c_n."""
    dtype = next(module.parameters()).dtype
    (h0, c0), states = torch_states(rng, module, len(seqs), dtype)
    with torch.no_grad():
        out, (h_n, c_n) = module(packed(seqs, dtype), (h0, c0))
        ty, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True)
    net.state = dict(zip([x.name for x in net.stateful_layers], states, strict=True))
    ys, final = net.predict(seqs, outputs=net.layers[-1].name, return_state=True)
    for b, x in enumerate(seqs):
        np.testing.assert_allclose(ys[b], ty[b, : len(x)].numpy(), rtol=0, atol=atol)
    D = 2 if module.bidirectional else 1
    for k, layer in enumerate(net.stateful_layers):
        want_h = torch.cat(list(h_n[k * D : (k + 1) * D]), dim=-1).numpy()
        want_c = torch.cat(list(c_n[k * D : (k + 1) * D]), dim=-1).numpy()
        np.testing.assert_allclose(final[layer.name].h, want_h, rtol=0, atol=atol)
        np.testing.assert_allclose(final[layer.name].c, want_c, rtol=0, atol=atol)


def onnx_export(
    module: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    exporter: str,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
    **options,
):
    """``module`` as torch.onnx.export writes it — ``exporter`` "dynamo" (the default one)
    or "torchscript" (``dynamo=False``) — with the named axes of the named inputs dynamic
    (TorchScript's ``dynamic_axes``; a ``forward(self, *inputs)`` takes them as one
    argument each); the ModelProto, the exporters' notes silenced."""
    import contextlib
    import inspect
    import io
    import warnings

    import onnx

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # the exporters' deprecation and tracer notes
        if exporter == "dynamo":
            dims = {d: torch.export.Dim(d) for axes in dynamic_axes.values() for d in axes.values()}
            dynamic = tuple(
                {a: dims[d] for a, d in dynamic_axes[n].items()} if n in dynamic_axes else None
                for n in input_names
            )
            (first, *_) = inspect.signature(module.forward).parameters.values()
            if first.kind is first.VAR_POSITIONAL:
                dynamic = (dynamic,)
            program = torch.onnx.export(
                module, args, dynamo=True, verbose=False, input_names=input_names,
                output_names=output_names, dynamic_shapes=dynamic, **options,
            )  # fmt: skip
            return program.model_proto
        buffer = io.BytesIO()
        torch.onnx.export(
            module, args, buffer, dynamo=False, input_names=input_names,
            output_names=output_names, dynamic_axes=dynamic_axes, **options,
        )  # fmt: skip
        return onnx.load_from_string(buffer.getvalue())
