"""Coordinate MLP with input skips and a conditioning code, like lab4d's ``CondMLP``.

lab4d concatenates the (embedded) input back into the trunk at the skip layers (layer 4 of its
8x256 fields) and appends per-instance or per-frame codes to the input; both are kept here so
the lab4d-like configuration is reproducible, while the hash-grid fields use a shallow MLP.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


class SharpSoftplus(nn.Module):
    """``softplus(beta * x) / beta``; beta=100 (IDR/VolSDF) is ReLU-like but has smooth second
    derivatives for SDFs.

    ``beta * x`` is clamped at -20 (where softplus is ~2e-9) because ``nn.Softplus(beta=100)``
    spends ~10x longer on CPU computing denormal exponentials than the clamp costs.
    """

    def __init__(self, beta: float = 100.0) -> None:
        super().__init__()
        self.beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.softplus((x * self.beta).clamp_min(-20.0)) / self.beta


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "softplus": SharpSoftplus,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
}


class MLP(nn.Module):
    """``depth`` hidden linear layers of width ``hidden``, then a linear output layer.

    Hidden layer i (0-based) in ``skips`` takes ``[input, cond, h]`` instead of ``h``.
    ``out_init="zero"`` zeroes the output layer so that residual heads start as the identity.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: int = 64,
        depth: int = 2,
        skips: Sequence[int] = (),
        activation: str = "relu",
        out_init: str = "default",
        cond_dim: int = 0,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(sorted(ACTIVATIONS))}")
        if out_init not in ("default", "zero"):
            raise ValueError(f"unknown out_init {out_init!r}; choose 'default' or 'zero'")
        if any(not 0 < skip < depth for skip in skips):
            raise ValueError(f"skips {tuple(skips)} must lie in 1..{depth - 1}")
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.cond_dim = cond_dim
        self.skips = frozenset(skips)
        input_dim = in_dim + cond_dim
        self.layers = nn.ModuleList(
            nn.Linear(input_dim if i == 0 else hidden + (input_dim if i in self.skips else 0), hidden)
            for i in range(depth)
        )
        self.activation = ACTIVATIONS[activation]()
        self.output = nn.Linear(hidden if depth > 0 else input_dim, out_dim)
        if out_init == "zero":
            nn.init.zeros_(self.output.weight)
            nn.init.zeros_(self.output.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """(..., in_dim) and, when ``cond_dim``, a code (..., cond_dim) broadcastable to x -> (..., out_dim).

        The layers that see the input compute ``W [x, cond] = W_x x + W_c cond``: the code's part
        is projected once per code (e.g. once per ray, not per sample) and broadcast, the same
        result as concatenating, without materialising the code at every point.
        """
        if self.cond_dim and cond is None:
            raise ValueError(f"this MLP is conditioned on a {self.cond_dim}-d code; pass cond")
        h = x
        for i, layer in enumerate(self.layers):
            if i == 0:
                h = self._with_input(layer, x, cond, None)
            elif i in self.skips:
                h = self._with_input(layer, x, cond, h)
            else:
                h = layer(h)
            h = self.activation(h)
        return self._with_input(self.output, x, cond, None) if not self.layers else self.output(h)

    def _with_input(
        self, layer: nn.Linear, x: torch.Tensor, cond: torch.Tensor | None, h: torch.Tensor | None
    ) -> torch.Tensor:
        """``layer([x, cond, h])`` (h omitted when None) with the code's columns applied on its own."""
        x_end = self.in_dim
        cond_end = x_end + self.cond_dim
        out = F.linear(x, layer.weight[:, :x_end], layer.bias)
        if self.cond_dim:
            out = out + F.linear(cond, layer.weight[:, x_end:cond_end])
        if h is not None:
            out = out + F.linear(h, layer.weight[:, cond_end:])
        return out
