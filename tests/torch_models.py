"""PyTorch models made fresh for the interop tests: every gate block scaled differently,
non-zero biases, so no gate permutation can hide."""

from __future__ import annotations

import numpy as np
import torch


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


def packed(seqs: list[np.ndarray], dtype=torch.float64):
    """A PackedSequence of (T_i, C) arrays (any order of lengths)."""
    tensors = [torch.from_numpy(s).to(dtype) for s in seqs]
    padded = torch.nn.utils.rnn.pad_sequence(tensors, batch_first=True)
    lengths = torch.tensor([len(s) for s in seqs])
    return torch.nn.utils.rnn.pack_padded_sequence(
        padded, lengths, batch_first=True, enforce_sorted=False
    )
