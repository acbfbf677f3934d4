"""K-FAC layer bookkeeping: per-layer-type helpers that turn hooked inputs and output grads into factors.

Conventions (one row per sample and, for Conv2d, per output position):

- ``a``: the layer input as a row (Linear: the last dimension; Conv2d: the unfolded receptive-field patch,
  ordered like ``weight.reshape(out, -1)``), with a trailing 1 when the bias is preconditioned too.
- ``δ``: the gradient at the layer output, multiplied by the batch size ``N`` (the first dimension of the
  output). With a loss that is the mean over the batch of per-sample losses, ``∂L/∂z_n = (1/N) ∂l_n/∂z_n``,
  so ``δ_n = ∂l_n/∂z_n`` is the per-sample gradient, as in kfac-pytorch.
- Batch factors: ``A = mean over rows of a aᵀ`` and ``G = mean over rows of δ δᵀ``. For Conv2d the rows are
  the ``N·L`` (sample, position) pairs, i.e. KFC's ``Ω/|T|`` and ``Γ`` (Grosse & Martens 2016); the constant
  ``|T|`` is absorbed by ``lr`` and ``damping``.
- The gradient matrix of a layer is ``[∇W | ∇b]`` (``out × (in[+1])``), ``∇W`` reshaped to ``(out, -1)``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class KFACLayer:
    """One preconditioned module: its weight (and optional bias) and the factors pending for this step."""

    kind = "layer"

    def __init__(self, name: str, module: nn.Module, use_bias: bool) -> None:
        self.name = name
        self.module = module
        self.weight: nn.Parameter = module.weight  # type: ignore[assignment]  # nn.Module attributes are untyped
        self.bias: nn.Parameter | None = module.bias if use_bias else None  # type: ignore[assignment]
        # Sums of batch factors since the last factor update, and how many batches they hold.
        self.a_sum: torch.Tensor | None = None
        self.a_count = 0
        self.g_sum: torch.Tensor | None = None
        self.g_count = 0

    # -- sizes -------------------------------------------------------------------------------------
    @property
    def in_dim(self) -> int:
        return self.weight[0].numel() + (1 if self.bias is not None else 0)

    @property
    def out_dim(self) -> int:
        return self.weight.shape[0]

    # -- per-type hooks ----------------------------------------------------------------------------
    def input_rows(self, x: torch.Tensor) -> torch.Tensor:
        """Rows ``a`` (without the bias column) from the layer input."""
        raise NotImplementedError

    def output_rows(self, g: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Rows of the output gradient and the batch size ``N`` used to rescale them."""
        raise NotImplementedError

    # -- factors -----------------------------------------------------------------------------------
    def add_input(self, x: torch.Tensor) -> None:
        a = self.input_rows(x.detach())
        n = a.shape[0]
        if self.bias is None:
            aa = a.t() @ a
        else:  # [a, 1] [a, 1]ᵀ without materialising the ones column; aᵀa written in place (no block copy)
            k = a.shape[1]
            aa = a.new_empty(k + 1, k + 1)
            torch.mm(a.t(), a, out=aa[:k, :k])
            s = a.sum(dim=0)
            aa[:k, k] = s
            aa[k, :k] = s
            aa[k, k] = n
        cov = aa.div_(n)
        self.a_sum = cov if self.a_sum is None else self.a_sum.add_(cov)
        self.a_count += 1

    def add_output_grad(self, g: torch.Tensor) -> None:
        rows, n = self.output_rows(g.detach())
        cov = (rows.t() @ rows).mul_(float(n) * n / rows.shape[0])  # δ = n·g, mean over rows
        self.g_sum = cov if self.g_sum is None else self.g_sum.add_(cov)
        self.g_count += 1

    def take_pending(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The mean batch factors captured since the last call (``None`` where none), then forget them. The
        tensors are the caller's (the sums themselves when one batch was captured: dividing by 1 is exact)."""
        a, g = _mean(self.a_sum, self.a_count), _mean(self.g_sum, self.g_count)
        self.clear_pending()
        return a, g

    def clear_pending(self) -> None:
        self.a_sum, self.a_count, self.g_sum, self.g_count = None, 0, None, 0

    def pending_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.a_sum, self.g_sum) if t is not None)

    # -- gradients ---------------------------------------------------------------------------------
    def grad_matrix(self) -> torch.Tensor | None:
        """``[∇W | ∇b]`` as ``out × in[+1]``; ``None`` when the weight has no gradient."""
        if self.weight.grad is None:
            return None
        gw = self.weight.grad.reshape(self.out_dim, -1)
        if self.bias is None:
            return gw
        gb = self.bias.grad if self.bias.grad is not None else torch.zeros_like(self.bias)
        return torch.cat([gw, gb.reshape(-1, 1)], dim=1)

    def split(self, mat: torch.Tensor) -> dict[nn.Parameter, torch.Tensor]:
        """Inverse of :meth:`grad_matrix`: the per-parameter tensors of an ``out × in[+1]`` matrix."""
        if self.bias is None:
            return {self.weight: mat.reshape(self.weight.shape)}
        return {
            self.weight: mat[:, :-1].reshape(self.weight.shape),
            self.bias: mat[:, -1].reshape(self.bias.shape).contiguous(),
        }


def _mean(total: torch.Tensor | None, count: int) -> torch.Tensor | None:
    if total is None or count == 1:
        return total
    return total / count


class LinearLayer(KFACLayer):
    kind = "linear"

    def input_rows(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1, x.shape[-1])

    def output_rows(self, g: torch.Tensor) -> tuple[torch.Tensor, int]:
        n = g.shape[0] if g.dim() > 1 else 1
        return g.reshape(-1, g.shape[-1]), n


class Conv2dLayer(KFACLayer):
    kind = "conv2d"

    def input_rows(self, x: torch.Tensor) -> torch.Tensor:
        m: Any = self.module
        if x.dim() == 3:  # unbatched (C, H, W)
            x = x.unsqueeze(0)
        padding = m.padding
        if isinstance(padding, str) or m.padding_mode != "zeros":
            mode = "constant" if m.padding_mode == "zeros" else m.padding_mode
            x = F.pad(x, _explicit_padding(m), mode=mode)
            padding = 0
        patches = F.unfold(x, m.kernel_size, dilation=m.dilation, padding=padding, stride=m.stride)
        return patches.transpose(1, 2).reshape(-1, patches.shape[1])

    def output_rows(self, g: torch.Tensor) -> tuple[torch.Tensor, int]:
        if g.dim() == 3:
            g = g.unsqueeze(0)
        return g.permute(0, 2, 3, 1).reshape(-1, g.shape[1]), g.shape[0]


def _explicit_padding(m: Any) -> tuple[int, int, int, int]:
    """``F.pad`` amounts (left, right, top, bottom) for string padding or a non-zero padding mode."""
    if m.padding == "valid":
        return (0, 0, 0, 0)
    if m.padding == "same":
        out = []
        for d, k in zip(reversed(m.dilation), reversed(m.kernel_size), strict=True):
            total = d * (k - 1)
            out += [total // 2, total - total // 2]
        return (out[0], out[1], out[2], out[3])
    ph, pw = m.padding
    return (pw, pw, ph, ph)


def make_layer(name: str, module: nn.Module, params: set[int]) -> tuple[KFACLayer | None, str]:
    """The helper for ``module`` if K-FAC preconditions it, else ``(None, reason)`` (empty if irrelevant).

    A layer is preconditioned when its weight is among the optimizer's parameters; its bias is folded in
    (ones column) when it is among them too, otherwise the layer is treated as bias-free.
    """
    if not isinstance(module, nn.Linear | nn.Conv2d):
        return None, ""
    if id(module.weight) not in params:
        return None, ""
    use_bias = module.bias is not None and id(module.bias) in params
    if isinstance(module, nn.Linear):
        return LinearLayer(name, module, use_bias), ""
    if module.groups != 1:
        return None, f"Conv2d {name!r} has groups={module.groups}; K-FAC supports groups=1 only (SGD used)"
    return Conv2dLayer(name, module, use_bias), ""
