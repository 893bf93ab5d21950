"""IF / LIF modules over time-first ``[T, B, ...]`` tensors, learnable initial potential (IMP).

The modules are thin wrappers of :mod:`spikeforge.core.functional` and hold **no hidden state**:

* ``neuron(x_seq)`` (``state=None``) starts every call from the initial potential ``V[0]`` (zero,
  or the learnable IMP), so nothing leaks from one batch to the next and no ``reset_net`` exists;
* ``spikes, v = neuron(x_seq, return_state=True)`` also returns the final potential ``[B, ...]``;
  ``neuron(x_next, state=v)`` continues from it (streaming, or truncated BPTT after
  ``v.detach()``). A passed ``state`` replaces the IMP.

**Learnable initial membrane potential (IMP, spec §4.2).** With ``learnable_init=True`` the module
owns a parameter ``init_state`` of shape ``(1, *neuron_shape)``: one value per neuron position,
shared by every sample of the batch, broadcast to ``[B, ...]`` and re-applied at every forward
with ``state=None`` (so batch-size changes just work). It is initialised from
``U(*init_range)`` (default ``U(0.4, 0.6)`` for IF / LIF, ``U(-0.2, 0.2)`` for the decay-factor
LIF, as in the official IMP code) and learns through BPTT like a bias on ``V[0]``.

* If ``shape`` (the per-sample neuron shape, e.g. ``(N,)`` or ``(C, H, W)``) is given, the
  parameter is created at construction.
* Otherwise it is created **lazily at the first forward** from the input's per-sample shape
  ``x_seq.shape[2:]``, on the input's device and dtype. Run one dummy forward **before** building
  the optimiser (and before ``torch.compile``), or the parameter is missed;
  :func:`param_groups` refuses a model whose IMP is not created yet. ``load_state_dict`` creates
  it from the checkpoint.

Use :func:`param_groups` to exclude every ``init_state`` from weight decay. Stateless layers go
through :class:`MultiStep`, which applies them to ``x_seq.flatten(0, 1)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from spikeforge.core.functional import (
    BACKENDS,
    Backend,
    Reset,
    check_decay,
    check_reset_and_threshold,
    check_tau,
    decay_lif_multistep,
    if_multistep,
    lif_multistep,
)
from spikeforge.core.fused import spike_source
from spikeforge.core.spike_saving import apply_to_spikes, bypassable, spike_path_allowed
from spikeforge.core.surrogate import default_alpha

__all__ = ["IF", "LIF", "DecayLIF", "MultiStep", "param_groups"]

IMP_NAME = "init_state"


class _Neuron(nn.Module):
    """Shared machinery of the neuron modules (see the module docstring)."""

    init_state: nn.Parameter | None

    def __init__(
        self,
        *,
        threshold: float,
        reset: Reset,
        v_reset: float,
        detach_reset: bool,
        surrogate: str,
        alpha: float | None,
        strict: bool,
        learnable_init: bool,
        shape: Sequence[int] | None,
        init_range: tuple[float, float],
        backend: Backend = "auto",
    ) -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
        check_reset_and_threshold(reset, threshold)
        default_alpha(surrogate)  # validates the name
        if shape is not None and not learnable_init:
            raise ValueError(
                "shape is the shape of the learnable initial potential; "
                "pass learnable_init=True with it"
            )
        if init_range[0] > init_range[1]:
            raise ValueError(f"init_range must be (low, high), got {init_range}")
        self.threshold = float(threshold)
        self.reset = reset
        self.v_reset = float(v_reset)
        self.detach_reset = bool(detach_reset)
        self.surrogate = surrogate
        self.alpha = alpha
        self.strict = bool(strict)
        self.backend = backend
        self.learnable_init = bool(learnable_init)
        self.init_range = (float(init_range[0]), float(init_range[1]))
        if learnable_init and shape is not None:
            self.init_state = self._new_init_state(tuple(shape), None, None)
        else:
            self.register_parameter(IMP_NAME, None)

    # -- initial potential ----------------------------------------------------------------

    def _new_init_state(
        self, shape: tuple[int, ...], device: torch.device | None, dtype: torch.dtype | None
    ) -> nn.Parameter:
        data = torch.empty((1, *shape), device=device, dtype=dtype)
        return nn.Parameter(data.uniform_(*self.init_range))

    def initial_state(self, x_seq: Tensor) -> Tensor | None:
        """``V[0]`` for ``x_seq [T, B, ...]``: the IMP ``(1, ...)`` (created if lazy) or ``None``
        (zeros)."""
        if not self.learnable_init:
            return None
        if x_seq.dim() < 3:
            raise ValueError(
                f"{type(self).__name__}: a learnable initial potential needs an input "
                f"[T, B, ...] with a neuron shape, got {list(x_seq.shape)}"
            )
        if self.init_state is None:
            self.init_state = self._new_init_state(
                tuple(x_seq.shape[2:]), x_seq.device, x_seq.dtype
            )
        elif self.init_state.shape[1:] != x_seq.shape[2:]:
            raise ValueError(
                f"{type(self).__name__}: initial potential is for neurons of shape "
                f"{list(self.init_state.shape[1:])}, but the input [T, B, ...] is "
                f"{list(x_seq.shape)}"
            )
        return self.init_state

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        key = prefix + IMP_NAME
        if self.learnable_init and self.init_state is None and key in state_dict:
            saved = state_dict[key]
            self.init_state = nn.Parameter(torch.empty_like(saved))
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    # -- forward --------------------------------------------------------------------------

    def _multistep(self, x_seq: Tensor, v0: Tensor | None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _common(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "reset": self.reset,
            "v_reset": self.v_reset,
            "detach_reset": self.detach_reset,
            "surrogate": self.surrogate,
            "alpha": self.alpha,
            "strict": self.strict,
            "backend": self.backend,
        }

    def forward(
        self, x_seq: Tensor, state: Tensor | None = None, return_state: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Spikes ``[T, B, ...]`` for the input current ``x_seq [T, B, ...]``.

        ``state``: ``None`` starts from the initial potential (zero or the IMP); a tensor
        broadcastable to ``[B, ...]`` (typically the ``v`` of a previous call) continues from it.
        ``return_state=True`` returns ``(spikes, v_final [B, ...])``.
        """
        v0 = self.initial_state(x_seq) if state is None else state
        spikes, v = self._multistep(x_seq, v0)
        return (spikes, v) if return_state else spikes

    def extra_repr(self) -> str:
        imp = ""
        if self.learnable_init:
            shape = "lazy" if self.init_state is None else list(self.init_state.shape)
            imp = f", learnable_init={shape}"
        compare = ">" if self.strict else ">="
        return (
            f"threshold={self.threshold}, reset={self.reset!r}, v_reset={self.v_reset}, "
            f"detach_reset={self.detach_reset}, surrogate={self.surrogate!r}, "
            f"alpha={self.alpha}, fires at H {compare} threshold{imp}"
            + ("" if self.backend == "auto" else f", backend={self.backend!r}")
        )


class IF(_Neuron):
    """Integrate-and-fire, ``H[t] = V[t−1] + X[t]``, on ``[T, B, ...]`` (spec §2.1).

    Fires at ``H >= threshold`` (``strict=True``: ``>``); ``reset`` is ``"subtract"`` (soft,
    the default), ``"zero"`` (hard, to ``v_reset``) or ``"none"``. Note: SpikingJelly's
    ``IFNode`` default is a hard reset. ``backend``: ``"auto"`` (the fused compiled kernel when
    available, else the plain-torch reference), ``"fused"`` or ``"reference"`` (see
    :mod:`spikeforge.core.functional`). See the module docstring for ``state`` and the IMP.
    """

    def __init__(
        self,
        *,
        threshold: float = 1.0,
        reset: Reset = "subtract",
        v_reset: float = 0.0,
        detach_reset: bool = False,
        surrogate: str = "atan",
        alpha: float | None = None,
        strict: bool = False,
        learnable_init: bool = False,
        shape: Sequence[int] | None = None,
        init_range: tuple[float, float] = (0.4, 0.6),
        backend: Backend = "auto",
    ) -> None:
        super().__init__(
            threshold=threshold,
            reset=reset,
            v_reset=v_reset,
            detach_reset=detach_reset,
            surrogate=surrogate,
            alpha=alpha,
            strict=strict,
            learnable_init=learnable_init,
            shape=shape,
            init_range=init_range,
            backend=backend,
        )

    def _multistep(self, x_seq: Tensor, v0: Tensor | None) -> tuple[Tensor, Tensor]:
        return if_multistep(x_seq, v0, **self._common())


class LIF(_Neuron):
    """Leaky integrate-and-fire with time constant ``tau`` on ``[T, B, ...]`` (spec §2.2).

    ``decay_input=True``: ``H[t] = V[t−1] + (X[t] − (V[t−1] − v_reset))/τ`` (SpikingJelly
    ``LIFNode``); ``decay_input=False``: ``H[t] = V[t−1] − (V[t−1] − v_reset)/τ + X[t]``. The
    IMP is decayed by the leak at the first step. Other arguments as :class:`IF`.
    """

    def __init__(
        self,
        *,
        tau: float = 2.0,
        decay_input: bool = True,
        threshold: float = 1.0,
        reset: Reset = "subtract",
        v_reset: float = 0.0,
        detach_reset: bool = False,
        surrogate: str = "atan",
        alpha: float | None = None,
        strict: bool = False,
        learnable_init: bool = False,
        shape: Sequence[int] | None = None,
        init_range: tuple[float, float] = (0.4, 0.6),
        backend: Backend = "auto",
    ) -> None:
        check_tau(tau)
        super().__init__(
            threshold=threshold,
            reset=reset,
            v_reset=v_reset,
            detach_reset=detach_reset,
            surrogate=surrogate,
            alpha=alpha,
            strict=strict,
            learnable_init=learnable_init,
            shape=shape,
            init_range=init_range,
            backend=backend,
        )
        self.tau = float(tau)
        self.decay_input = bool(decay_input)

    def _multistep(self, x_seq: Tensor, v0: Tensor | None) -> tuple[Tensor, Tensor]:
        return lif_multistep(
            x_seq, v0, tau=self.tau, decay_input=self.decay_input, **self._common()
        )

    def extra_repr(self) -> str:
        return f"tau={self.tau}, decay_input={self.decay_input}, " + super().extra_repr()


class DecayLIF(_Neuron):
    """Decay-factor ("legacy", TET-code) LIF on ``[T, B, ...]`` (spec §2.3).

    ``H[t] = v_reset + decay·(V[t−1] − v_reset) + X[t]``; ``decay`` is a factor (τ_d), not a time
    constant. Defaults follow that code: hard reset, triangle surrogate, IMP ``U(−0.2, 0.2)``;
    the TET code fires at ``H > ϑ`` (``strict=True``), the spikeforge default is ``>=``.
    """

    def __init__(
        self,
        *,
        decay: float = 0.5,
        threshold: float = 1.0,
        reset: Reset = "zero",
        v_reset: float = 0.0,
        detach_reset: bool = False,
        surrogate: str = "triangle",
        alpha: float | None = None,
        strict: bool = False,
        learnable_init: bool = False,
        shape: Sequence[int] | None = None,
        init_range: tuple[float, float] = (-0.2, 0.2),
        backend: Backend = "auto",
    ) -> None:
        check_decay(decay)
        super().__init__(
            threshold=threshold,
            reset=reset,
            v_reset=v_reset,
            detach_reset=detach_reset,
            surrogate=surrogate,
            alpha=alpha,
            strict=strict,
            learnable_init=learnable_init,
            shape=shape,
            init_range=init_range,
            backend=backend,
        )
        self.decay = float(decay)

    def _multistep(self, x_seq: Tensor, v0: Tensor | None) -> tuple[Tensor, Tensor]:
        return decay_lif_multistep(x_seq, v0, decay=self.decay, **self._common())

    def extra_repr(self) -> str:
        return f"decay={self.decay}, " + super().extra_repr()


class MultiStep(nn.Module):
    """Apply stateless layers to every time step of ``x_seq [T, B, ...]`` at once.

    ``MultiStep(nn.Conv2d(2, 8, 3), nn.BatchNorm2d(8))`` runs the layers on
    ``x_seq.flatten(0, 1)`` (``[T·B, ...]``, so BatchNorm statistics pool over time and batch)
    and restores ``[T, B, ...]``. Only for layers without state across time.

    When ``x_seq`` comes straight from a neuron on the fused path, the layers keep no copy of the
    spikes for backward: they are recomputed from the neuron's saved potential, and a leading
    convolution runs its backward in chunks (:mod:`spikeforge.core.spike_saving`), so a spiking
    layer costs BPTT one saved tensor (``H``), as a ReLU layer does (its output). That path is
    taken only where it computes the same thing as calling the layers: not under global module
    hooks or someone else's saved-tensor hooks, and a layer with hooks, a parametrization (e.g.
    pruning, weight norm) or a patched ``forward`` is called as usual
    (:mod:`spikeforge.core.spike_saving`).
    """

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        if not layers:
            raise ValueError("MultiStep needs at least one layer")
        self.layer = layers[0] if len(layers) == 1 else nn.Sequential(*layers)

    def forward(self, x_seq: Tensor) -> Tensor:
        """``[T, B, ...]`` -> ``[T, B, ...']``."""
        if x_seq.dim() < 2:
            raise ValueError(f"expected a time-first input [T, B, ...], got {list(x_seq.shape)}")
        t, b = x_seq.shape[0], x_seq.shape[1]
        node = None
        # the spike path only where it is the same computation (spike_saving docstring): with
        # gradients on, not traced, no global module hooks, no saved-tensor hooks of others
        if torch.is_grad_enabled() and not torch.compiler.is_compiling():
            node = spike_source(x_seq)
            if node is not None and not spike_path_allowed():
                node = None
        if node is None:
            y = self.layer(x_seq.flatten(0, 1))
        else:
            # a Sequential with hooks (or otherwise not bypassable) is called as a whole
            unpack = type(self.layer) is nn.Sequential and bypassable(self.layer)
            layers = list(self.layer) if unpack else [self.layer]
            y = apply_to_spikes(layers, x_seq.flatten(0, 1), node)
        return y.unflatten(0, (t, b))


_NORMS: tuple[type[nn.Module], ...] = tuple(
    getattr(nn, name)
    for name in (
        "BatchNorm1d",
        "BatchNorm2d",
        "BatchNorm3d",
        "SyncBatchNorm",
        "InstanceNorm1d",
        "InstanceNorm2d",
        "InstanceNorm3d",
        "GroupNorm",
        "LayerNorm",
        "RMSNorm",
    )
    if hasattr(nn, name)
)


def param_groups(
    model: nn.Module, weight_decay: float, *, exclude_bias_and_norm: bool = False
) -> list[dict[str, Any]]:
    """Optimiser parameter groups with every learnable initial potential free of weight decay.

    Returns ``[{"params": decayed, "weight_decay": weight_decay}, {"params": not_decayed,
    "weight_decay": 0.0}]`` (empty groups are dropped). ``init_state`` parameters always go to
    the second group; with ``exclude_bias_and_norm=True`` (the IMP CIFAR10-DVS configs, spec §6)
    biases and normalisation-layer parameters do too. Raises if a neuron's lazy IMP has not been
    created yet (run a dummy forward first). Pass the result to e.g. ``torch.optim.AdamW``.
    """
    for name, module in model.named_modules():
        if isinstance(module, _Neuron) and module.learnable_init and module.init_state is None:
            raise ValueError(
                f"neuron {name or type(module).__name__!r} has a lazy learnable initial potential "
                "that is not created yet: run one forward pass before building the optimiser"
            )
    no_decay_ids: set[int] = set()
    for module in model.modules():
        for pname, p in module.named_parameters(recurse=False):
            is_imp = isinstance(module, _Neuron) and pname == IMP_NAME
            if is_imp or (
                exclude_bias_and_norm and (pname == "bias" or isinstance(module, _NORMS))
            ):
                no_decay_ids.add(id(p))
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():  # deduplicated by torch
        if p.requires_grad:
            (no_decay if id(p) in no_decay_ids else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": float(weight_decay)},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]
