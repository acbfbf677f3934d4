"""Per-sample-gradient matrices for EF / iEF / SF: dense (``torch.func``) and factored (Linear, Conv2d).

Described in docs/algorithms.md#natural-gradient-ef-ief-sf ("Factored per-sample gradients").

The natural-gradient optimizers only ever use four products of ``J ∈ R^{R×P}`` (one row per sample, or per
sample and drawn label for SF): the Gram matrix ``J Jᵀ``, ``Jᵀc``, ``J v`` and the column sum ``Jᵀ1``. ``Rows``
is that interface; ``DenseRows`` holds ``J`` as one ``(R, P_k)`` block per parameter (from ``torch.func``),
``FactoredRows`` never forms ``J`` for ``nn.Linear`` / ``nn.Conv2d`` parameters. For such a layer the row of
sample ``n`` is ``G_n = Δ_nᵀ A_n`` (weight) and ``Δ_nᵀ1`` (bias), where ``A_n ∈ R^{L×d_in}`` are the layer's
inputs at its ``L`` positions (1 for a plain Linear on ``(N, d_in)``; sequence positions; Conv2d's unfolded
patches) and ``Δ_n ∈ R^{L×d_out}`` the gradients of the sample's objective with respect to the layer's outputs
there. ``A`` is recorded by a forward hook, ``Δ`` by one ``torch.autograd.grad`` of ``Σ_n l_n`` with respect
to the recorded outputs (an input-only backward: no weight gradients are formed). Then

- ``(J Jᵀ)_{nm} = Σ_{p,q} (A_n A_mᵀ)_{pq} (Δ_n Δ_mᵀ)_{pq}`` (``= (a_n·a_m)(δ_n·δ_m)`` when ``L = 1``), plus
  ``(Δ_nᵀ1)·(Δ_mᵀ1)`` for the bias; when the ``(NL)²`` pair matrices would cost more than materialising the
  layer's ``G`` (Conv2d: many positions, few weights), ``G`` is formed for that layer only;
- ``Jᵀc = Σ_n c_n Δ_nᵀ A_n`` (a weight gradient of the ``c``-weighted objective).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.func import vmap
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils import parametrize

Blocks = list[torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Objectives = Callable[[torch.Tensor], list[torch.Tensor]]

#: largest ``(N·L)²`` for which a multi-position layer's Gram is built from the pair matrices
PAIR_LIMIT = 1 << 24


class Unsupported(Exception):
    """The factored path cannot represent this model (or this call); the caller uses ``torch.func``."""


# -- communication -----------------------------------------------------------------------------------------
def world() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def row_counts(n: int, device: torch.device) -> list[int]:
    """Every worker's number of rows (rank order); ``[n]`` without a process group."""
    size = world()
    if size == 1:
        return [n]
    mine = torch.tensor([n], device=device, dtype=torch.int64)
    sizes = [torch.zeros_like(mine) for _ in range(size)]
    dist.all_gather(sizes, mine)
    return [int(c) for c in sizes]


def gather_rows(t: torch.Tensor, counts: list[int] | None = None) -> torch.Tensor:
    """Concatenate ``t`` along dim 0 over all workers in rank order (local batches may differ in size;
    ``counts`` from ``row_counts`` saves one exchange)."""
    size = world()
    if size == 1:
        return t
    t = t.contiguous()
    counts = counts or row_counts(t.shape[0], t.device)
    m = max(counts)
    if m > t.shape[0]:
        t = torch.cat([t, t.new_zeros((m - t.shape[0], *t.shape[1:]))])
    out = [torch.empty_like(t) for _ in range(size)]
    dist.all_gather(out, t)
    return torch.cat([o[:c] for o, c in zip(out, counts, strict=True)])


def any_worker(flag: bool, device: torch.device) -> bool:
    """``flag`` OR-ed over all workers (so that every worker takes the same path)."""
    if world() == 1:
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


# -- the row interface -------------------------------------------------------------------------------------
def gram(blocks: Blocks) -> torch.Tensor:
    """``J Jᵀ`` from the column blocks of ``J``."""
    out = blocks[0] @ blocks[0].T
    for b in blocks[1:]:
        out.addmm_(b, b.T)
    return out


Memo = dict[int, Any]  # id(shared object before) -> shared object after a gather or a conversion


class Rows:
    """``J ∈ R^{R×P}``, its columns split into one block per optimized parameter (optimizer order)."""

    rows: int
    dtype: torch.dtype

    def gram(self) -> torch.Tensor:
        """``J Jᵀ`` (R×R)."""
        raise NotImplementedError

    def tmul(self, c: torch.Tensor) -> Blocks:
        """``Jᵀc`` for ``c ∈ R^R``, one flat block per parameter."""
        raise NotImplementedError

    def mul(self, v: Blocks) -> torch.Tensor:
        """``J v`` (R,) for ``v`` given as flat blocks."""
        raise NotImplementedError

    def col_sum(self) -> Blocks:
        """``Jᵀ1``."""
        return self.tmul(torch.ones(self.rows, dtype=self.dtype, device=self.device))

    def mean_row(self) -> Blocks:
        """``Jᵀ1 / R``."""
        return self.tmul(torch.full((self.rows,), 1.0 / self.rows, dtype=self.dtype, device=self.device))

    def gather(self, counts: list[int] | None = None, memo: Memo | None = None) -> Rows:
        """The rows of every worker, rank order (``memo``: shared factors gathered once)."""
        raise NotImplementedError

    def to(self, dtype: torch.dtype, memo: Memo | None = None) -> Rows:
        raise NotImplementedError

    def blocks(self) -> Blocks:
        """``J`` itself, as ``(R, P_k)`` blocks."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        raise NotImplementedError


class DenseRows(Rows):
    """``J`` held as ``(R, P_k)`` blocks (the ``torch.func`` path)."""

    def __init__(self, blocks: Blocks) -> None:
        self._blocks = blocks
        self.rows = blocks[0].shape[0]
        self.dtype = blocks[0].dtype

    @property
    def device(self) -> torch.device:
        return self._blocks[0].device

    def gram(self) -> torch.Tensor:
        return gram(self._blocks)

    def tmul(self, c: torch.Tensor) -> Blocks:
        return [b.T @ c for b in self._blocks]

    def mul(self, v: Blocks) -> torch.Tensor:
        out = self._blocks[0] @ v[0]
        for b, vk in zip(self._blocks[1:], v[1:], strict=True):
            out = out + b @ vk
        return out

    def col_sum(self) -> Blocks:
        return [b.sum(0) for b in self._blocks]

    def mean_row(self) -> Blocks:
        return [b.sum(0) / self.rows for b in self._blocks]

    def gather(self, counts: list[int] | None = None, memo: Memo | None = None) -> DenseRows:
        counts = counts or row_counts(self.rows, self.device)
        return DenseRows([gather_rows(b, counts) for b in self._blocks])

    def to(self, dtype: torch.dtype, memo: Memo | None = None) -> DenseRows:
        return DenseRows([b.to(dtype) for b in self._blocks])

    def blocks(self) -> Blocks:
        return self._blocks


class Inputs:
    """A layer's inputs ``a (N, L, d_in)`` in one pass; shared by the rows of every objective of that pass
    (SF's drawn labels), so that their part ``A Aᵀ`` of the Gram matrices is computed once."""

    def __init__(self, a: torch.Tensor) -> None:
        self.a = a
        self._gram: torch.Tensor | None = None

    def gram(self) -> torch.Tensor:
        """``A₂ A₂ᵀ``, ``A₂ = a`` as ``(N·L, d_in)`` (cached)."""
        if self._gram is None:
            a2 = self.a.reshape(-1, self.a.shape[2])
            self._gram = a2 @ a2.T
        return self._gram

    def gather(self, counts: list[int] | None, memo: Memo) -> Inputs:
        if id(self) not in memo:
            memo[id(self)] = Inputs(gather_rows(self.a, counts))
        out: Inputs = memo[id(self)]
        return out

    def to(self, dtype: torch.dtype, memo: Memo) -> Inputs:
        if id(self) not in memo:
            memo[id(self)] = Inputs(self.a.to(dtype))
        out: Inputs = memo[id(self)]
        return out


class Layer:
    """One Linear / Conv2d layer's factors for ``R`` rows: output gradients ``d (R, L, d_out)``; row ``r`` has
    the inputs ``inp.a[r // repeat]`` (``repeat = M`` for SF's ``M`` draws per sample)."""

    def __init__(self, inp: Inputs, d: torch.Tensor, repeat: int = 1) -> None:
        self.inp, self.d, self.repeat = inp, d, repeat
        self._g: torch.Tensor | None = None  # materialised per-row weight gradients (R, d_out·d_in)

    @property
    def a(self) -> torch.Tensor:
        return self.inp.a

    def pair_cheaper(self) -> bool:
        """Whether the pair matrices (``(N·L)²`` entries) beat materialising ``G`` and fit ``PAIR_LIMIT``."""
        r, l, do = self.d.shape
        n, _, di = self.a.shape
        if l == 1:
            return True
        pair = (n * l) ** 2 * di + (r * l) ** 2 * do
        mat = r * l * di * do + r * r * di * do
        return pair <= mat and (r * l) ** 2 <= PAIR_LIMIT

    def g(self) -> torch.Tensor:
        if self._g is None:
            a = self.a.repeat_interleave(self.repeat, 0) if self.repeat > 1 else self.a
            self._g = torch.bmm(self.d.transpose(1, 2), a).reshape(self.d.shape[0], -1)
        return self._g

    def bias_rows(self) -> torch.Tensor:
        return self.d[:, 0] if self.d.shape[1] == 1 else self.d.sum(1)

    def weight_mul(self, v: torch.Tensor) -> torch.Tensor:
        if self._g is not None:
            return self._g @ v
        do, di = self.d.shape[2], self.a.shape[2]
        av = self.a @ v.view(do, di).T  # (N, L, d_out)
        if self.repeat > 1:
            av = av.repeat_interleave(self.repeat, 0)
        return (av * self.d).sum((1, 2))

    def weighted_d(self, c: torch.Tensor) -> torch.Tensor:
        """``Σ_{r ↦ n} c_r d_r`` per input row ``n``: ``(N, L, d_out)``."""
        dc = self.d * c[:, None, None]
        if self.repeat > 1:
            dc = dc.reshape(-1, self.repeat, *dc.shape[1:]).sum(1)
        return dc


def _expand(k: torch.Tensor, rx: int, ry: int) -> torch.Tensor:
    """Rows and columns of an input-row Gram repeated ``rx`` / ``ry`` times (dims 0 and 2 of (N, L, N, L))."""
    if rx > 1:
        k = k.repeat_interleave(rx, 0)
    if ry > 1:
        k = k.repeat_interleave(ry, 2)
    return k


def layer_cross(x: Layer, y: Layer, weight: bool, bias: bool) -> torch.Tensor:
    """``J_x J_yᵀ`` restricted to one layer's weight and / or bias (``(R_x, R_y)``)."""
    rx, l, _ = x.d.shape
    ry = y.d.shape[0]
    out: torch.Tensor | None = None
    if weight:
        if x.pair_cheaper() and y.pair_cheaper():
            if x.inp is y.inp:
                ka = x.inp.gram()
            else:
                ka = x.a.reshape(-1, x.a.shape[2]) @ y.a.reshape(-1, y.a.shape[2]).T
            ka = _expand(ka.reshape(x.a.shape[0], l, y.a.shape[0], l), x.repeat, y.repeat)
            kd = x.d.reshape(rx * l, -1) @ y.d.reshape(ry * l, -1).T
            if l == 1:  # (a_n·a_m)(δ_n·δ_m), and (δ_n·δ_m) for the bias
                ka = ka.reshape(rx, ry)
                return torch.addcmul(kd, kd, ka) if bias else kd * ka
            out = (ka * kd.reshape(rx, l, ry, l)).sum((1, 3))
        else:
            out = x.g() @ y.g().T
    if bias:
        bx, by = x.bias_rows(), y.bias_rows()
        out = bx @ by.T if out is None else out.addmm_(bx, by.T)
    assert out is not None
    return out


@dataclasses.dataclass(frozen=True)
class Slot:
    layer: int  # index into the plan's modules
    kind: str  # "weight" | "bias"


class FactoredRows(Rows):
    """``J`` as per-layer factors; ``slots[k]`` says which layer and which of its parameters block ``k`` is."""

    def __init__(self, layers: list[Layer], slots: Sequence[Slot]) -> None:
        self.layers, self.slots = layers, list(slots)
        self.rows = layers[0].d.shape[0]
        self.dtype = layers[0].d.dtype
        self._uses = [(Slot(i, "weight") in self.slots, Slot(i, "bias") in self.slots)
                      for i in range(len(layers))]

    @property
    def device(self) -> torch.device:
        return self.layers[0].d.device

    def cross_gram(self, other: FactoredRows) -> torch.Tensor:
        """``J_self J_otherᵀ`` (both from the same plan)."""
        out: torch.Tensor | None = None
        for x, y, (w, b) in zip(self.layers, other.layers, self._uses, strict=True):
            if w or b:
                part = layer_cross(x, y, w, b)
                out = part if out is None else out.add_(part)
        assert out is not None
        return out

    def gram(self) -> torch.Tensor:
        return self.cross_gram(self)

    def tmul(self, c: torch.Tensor) -> Blocks:
        return tmul_sum([(self, c)])

    def mul(self, v: Blocks) -> torch.Tensor:
        out = torch.zeros(self.rows, dtype=self.dtype, device=self.device)
        for s, vk in zip(self.slots, v, strict=True):
            layer = self.layers[s.layer]
            out += layer.weight_mul(vk) if s.kind == "weight" else layer.bias_rows() @ vk
        return out

    def gather(self, counts: list[int] | None = None, memo: Memo | None = None) -> FactoredRows:
        counts = counts or row_counts(self.rows, self.device)
        memo = {} if memo is None else memo
        return FactoredRows([Layer(x.inp.gather(counts if x.repeat == 1 else None, memo), gather_rows(x.d, counts),
                                   x.repeat) for x in self.layers], self.slots)

    def to(self, dtype: torch.dtype, memo: Memo | None = None) -> FactoredRows:
        if dtype == self.dtype:
            return self
        memo = {} if memo is None else memo
        return FactoredRows([Layer(x.inp.to(dtype, memo), x.d.to(dtype), x.repeat) for x in self.layers],
                            self.slots)

    def blocks(self) -> Blocks:
        return [self.layers[s.layer].g() if s.kind == "weight" else self.layers[s.layer].bias_rows()
                for s in self.slots]


def tmul_sum(terms: Sequence[tuple[FactoredRows, torch.Tensor]]) -> Blocks:
    """``Σ_t J_tᵀ c_t`` for row sets of one plan, in the rows' dtype; the weighted output gradients of row sets
    that share their inputs (a pass's objectives) are summed first, so each layer costs one product."""
    dtype = terms[0][0].dtype
    terms = [(rows, c.to(dtype)) for rows, c in terms]
    out = []
    for s in terms[0][0].slots:
        parts = []
        if s.kind == "bias":
            parts = [rows.layers[s.layer].bias_rows().T @ c for rows, c in terms]
        else:
            groups: dict[int, tuple[Inputs, torch.Tensor]] = {}
            for rows, c in terms:
                layer = rows.layers[s.layer]
                if layer._g is not None:  # materialised already (Conv2d): R·P instead of R·L·P
                    parts.append(layer._g.T @ c)
                    continue
                dc = layer.weighted_d(c)
                key = id(layer.inp)
                groups[key] = (layer.inp, dc if key not in groups else groups[key][1] + dc)
            for inp, dc in groups.values():
                n, l, di = inp.a.shape
                parts.append((dc.reshape(n * l, -1).T @ inp.a.reshape(n * l, di)).reshape(-1))
        total = parts[0]
        for p in parts[1:]:
            total = total + p
        out.append(total)
    return out


# -- which models the factored path covers ---------------------------------------------------------------
@dataclasses.dataclass
class Plan:
    modules: list[nn.Module]
    slots: list[Slot]
    params: list[nn.Parameter]


def _module_problem(m: nn.Module) -> str | None:
    if type(m) not in (nn.Linear, nn.Conv2d):
        return f"{type(m).__name__} is not nn.Linear or nn.Conv2d"
    if parametrize.is_parametrized(m):
        return f"{type(m).__name__} is parametrized"
    if isinstance(m, nn.Conv2d):
        if m.groups != 1:
            return "Conv2d with groups > 1"
        if m.padding_mode != "zeros":
            return f"Conv2d with padding_mode {m.padding_mode!r}"
    return None


def make_plan(model: nn.Module, params: Sequence[nn.Parameter]) -> tuple[Plan | None, str | None]:
    """The factored plan for ``params`` (optimizer order), or ``(None, reason)`` if a parameter is not the
    weight or bias of an exactly-``nn.Linear`` / ``nn.Conv2d`` module (groups 1, zero padding) that owns it
    alone."""
    owners: dict[int, set[tuple[int, str]]] = {}
    by_id: dict[int, nn.Module] = {}
    for _, m in model.named_modules(remove_duplicate=False):
        by_id[id(m)] = m
        for pname, p in m.named_parameters(recurse=False):
            owners.setdefault(id(p), set()).add((id(m), pname))
    modules: list[nn.Module] = []
    index: dict[int, int] = {}
    slots = []
    for p in params:
        own = owners.get(id(p), set())
        if len(own) != 1:
            return None, f"a parameter of shape {tuple(p.shape)} is shared by {len(own)} modules"
        mid, pname = next(iter(own))
        m = by_id[mid]
        problem = _module_problem(m)
        if problem is None and pname not in ("weight", "bias"):
            problem = f"parameter {pname!r} of {type(m).__name__}"
        if problem is not None:
            return None, problem
        if mid not in index:
            index[mid] = len(modules)
            modules.append(m)
        slots.append(Slot(index[mid], pname))
    return Plan(modules, slots, list(params)), None


def batch_coupled(model: nn.Module) -> bool:
    """Whether a batch-statistics layer in training mode couples the samples (the factored path then
    does not apply; neither does ``torch.func``'s one-sample-at-a-time view)."""
    return any(isinstance(m, _BatchNorm) and m.training for m in model.modules())


# -- the factored pass -------------------------------------------------------------------------------------
def _conv_patches(m: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """Unfolded input patches ``(N, L, C·kh·kw)`` of a Conv2d (channel-major, as the weight is laid out)."""
    if isinstance(m.padding, str):
        if m.padding == "valid":
            padding: tuple[int, ...] = (0, 0)
        else:  # "same" (stride 1): the odd extra row / column goes after, as torch's convolution does
            pad = []
            for k, dil in zip(reversed(m.kernel_size), reversed(m.dilation), strict=True):
                total = dil * (k - 1)
                pad += [total // 2, total - total // 2]
            x = F.pad(x, pad)
            padding = (0, 0)
    else:
        padding = tuple(m.padding)
    cols = F.unfold(x, m.kernel_size, dilation=m.dilation, padding=padding, stride=m.stride)
    return cols.transpose(1, 2)


def _layer_inputs(m: nn.Module, xs: list[torch.Tensor], n: int) -> torch.Tensor:
    """The inputs ``(N, L, d_in)`` of a layer's calls (positions of all calls concatenated)."""
    aa = []
    for a in xs:
        if a.dim() < 2 or a.shape[0] != n:
            raise Unsupported(f"{type(m).__name__} called on a tensor of shape {tuple(a.shape)}, "
                              f"not batch-first with {n} samples")
        if isinstance(m, nn.Conv2d):
            if a.dim() != 4:
                raise Unsupported(f"Conv2d called on a tensor of shape {tuple(a.shape)}")
            aa.append(_conv_patches(m, a))
        else:
            aa.append(a.reshape(n, -1, a.shape[-1]))
    return aa[0] if len(aa) == 1 else torch.cat(aa, 1)


def _layer_out_grads(m: nn.Module, ds: list[torch.Tensor], n: int) -> torch.Tensor:
    """The gradients ``(N, L, d_out)`` with respect to a layer's outputs, positions as in ``_layer_inputs``."""
    if isinstance(m, nn.Conv2d):
        dd = [d.reshape(n, d.shape[1], -1).transpose(1, 2) for d in ds]
    else:
        dd = [d.reshape(n, -1, d.shape[-1]) for d in ds]
    return dd[0] if len(dd) == 1 else torch.cat(dd, 1)


def per_sample_losses(loss_fn: LossFn, z: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``l_n = loss_fn(z[n:n+1], targets[n:n+1])`` for every ``n``, differentiable: ``loss_fn`` vmapped over the
    samples (whatever its reduction), or, for ``F.cross_entropy`` / ``F.mse_loss`` themselves, the unreduced
    loss averaged per sample (the same values, without vmap's overhead)."""
    n = z.shape[0]
    out = None
    if loss_fn is F.cross_entropy and not (not targets.is_floating_point() and bool((targets == -100).any())):
        out = F.cross_entropy(z, targets, reduction="none")
    elif loss_fn is F.mse_loss and z.shape == targets.shape:
        out = F.mse_loss(z, targets, reduction="none")
    if out is not None:
        return out.reshape(n, -1).mean(1) if out.dim() != 1 else out

    def one(zz: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
        return loss_fn(zz.unsqueeze(0), yy.unsqueeze(0))

    losses: torch.Tensor = vmap(one)(z, targets)
    return losses


@dataclasses.dataclass
class Pass:
    losses: torch.Tensor  # (N,) per-sample losses
    outputs: torch.Tensor  # (N, ...) model outputs
    output_grads: torch.Tensor  # ∂l_n/∂z_n, (N, ...)
    rows: FactoredRows  # the rows of ∇l_n
    extra: FactoredRows | None  # rows of the extra objectives, sample-major (row n·M + k)


def factored_pass(model: nn.Module, plan: Plan, inputs: torch.Tensor, targets: torch.Tensor, loss_fn: LossFn,
                  objectives: Objectives | None = None) -> Pass:
    """One batched forward with hooks on the plan's modules, the per-sample losses ``l_n``
    (``per_sample_losses``: ``loss_fn`` on one sample at a time, so any reduction scale is right), then
    input-only backward passes: one of ``Σ_n l_n``, and one of ``Σ_n o_k(n)`` for every extra objective
    ``o_k = objectives(z)[k]`` (a per-sample vector computed from the outputs ``z``, e.g. SF's log-likelihoods
    of drawn labels)."""
    n = inputs.shape[0]
    where = {id(m): i for i, m in enumerate(plan.modules)}
    calls: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in plan.modules]

    def hook(module: nn.Module, args: tuple[Any, ...], out: Any) -> torch.Tensor:
        if not args or not isinstance(args[0], torch.Tensor) or not isinstance(out, torch.Tensor):
            raise Unsupported(f"{type(module).__name__} called with a non-tensor input or output")
        tap = out if out.requires_grad else out.detach().requires_grad_()
        calls[where[id(module)]].append((args[0].detach(), tap))
        return tap.clone()  # the recorded output stays intact if the model modifies its copy in place

    handles = [m.register_forward_hook(hook) for m in plan.modules]
    try:
        with torch.enable_grad():
            z = model(inputs)
    finally:
        for h in handles:
            h.remove()
    if not isinstance(z, torch.Tensor) or z.shape[0] != n:
        raise Unsupported("the model's output is not a batch-first tensor")

    inputs_: list[Inputs] = []
    for m, c in zip(plan.modules, calls, strict=True):
        if c:
            a = _layer_inputs(m, [x for x, _ in c], n)
        else:  # the module was not called: zero gradients for its parameters
            w = m.weight
            assert isinstance(w, torch.Tensor)
            a = torch.zeros(n, 1, w[0].numel(), dtype=z.dtype, device=z.device)
        inputs_.append(Inputs(a))

    with torch.enable_grad():
        losses = per_sample_losses(loss_fn, z, targets)
        extra = objectives(z) if objectives is not None else []
    taps = [t for c in calls for _, t in c]

    def grads(total: torch.Tensor, wrt: list[torch.Tensor], retain: bool) -> list[torch.Tensor]:
        got = torch.autograd.grad(total, wrt, retain_graph=retain, allow_unused=True)
        return [torch.zeros_like(w) if g is None else g for g, w in zip(got, wrt, strict=True)]

    *dtaps, dz = grads(losses.sum(), [*taps, z], bool(extra))
    extra_d = [grads(o.sum(), taps, k + 1 < len(extra)) for k, o in enumerate(extra)]

    def out_grads(dlist: list[torch.Tensor]) -> list[torch.Tensor]:
        out, k = [], 0
        for m, c in zip(plan.modules, calls, strict=True):
            if c:
                out.append(_layer_out_grads(m, dlist[k:k + len(c)], n))
                k += len(c)
            else:
                w = m.weight
                assert isinstance(w, torch.Tensor)
                out.append(torch.zeros(n, 1, w.shape[0], dtype=z.dtype, device=z.device))
        return out

    base = FactoredRows([Layer(i, d) for i, d in zip(inputs_, out_grads(dtaps), strict=True)], plan.slots)
    js = None
    if extra_d:
        mm = len(extra_d)
        per = [out_grads(d) for d in extra_d]  # per[k][layer]: (N, L, d_out)
        js = FactoredRows([Layer(inp, per[0][i] if mm == 1 else
                                 torch.stack([p[i] for p in per], 1).reshape(n * mm, *per[0][i].shape[1:]), mm)
                           for i, inp in enumerate(inputs_)], plan.slots)
    return Pass(losses.detach(), z.detach(), dz.detach(), base, js)


def check_rows(model: nn.Module, plan: Plan, loss_fn: LossFn, inputs: torch.Tensor, targets: torch.Tensor,
               k: int = 2) -> str | None:
    """Compare the factored rows of the first ``k`` samples with plain autograd's per-sample gradients (model
    in eval mode, so dropout does not differ). ``None`` if they agree (relative Frobenius error ≤ 1e-3),
    else the reason: a parameter used outside its module's forward, a layer not fed batch-first, ..."""
    n = min(k, inputs.shape[0])
    need = [i for i, p in enumerate(plan.params) if p.requires_grad]
    if n == 0 or not need:
        return None
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        try:
            got = factored_pass(model, plan, inputs[:n], targets[:n], loss_fn).rows.blocks()
        except Unsupported as e:
            return str(e)
        err2 = ref2 = 0.0
        for i in range(n):
            with torch.enable_grad():
                loss = loss_fn(model(inputs[i:i + 1]), targets[i:i + 1])
                ref = torch.autograd.grad(loss, [plan.params[j] for j in need], allow_unused=True)
            for j, r in zip(need, ref, strict=True):
                rr = torch.zeros_like(got[j][i]) if r is None else r.detach().reshape(-1)
                err2 += float((got[j][i] - rr).double().pow(2).sum())
                ref2 += float(rr.double().pow(2).sum())
    finally:
        for m, mode in modes:
            m.training = mode
    if err2 > 1e-6 * ref2:
        return (f"the factored per-sample gradients differ from autograd's (relative error "
                f"{(err2 / max(ref2, 1e-300)) ** 0.5:.2e}): a parameter used outside its module's forward, or "
                "a layer not fed batch-first")
    return None
