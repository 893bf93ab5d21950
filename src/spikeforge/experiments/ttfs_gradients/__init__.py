"""``spikeforge reproduce ttfs-gradients``: P2's gradient claims, measured (spec ``ttfs.md``
§6-§8, risks 11 and 13).

:func:`run_gradient_experiment` trains four networks side by side, from the same initialisation,
on the same batches, in float64, with the same optimiser:

``relu``
    an MLP ``Flatten -> depth x (Linear(width) + ReLU) -> Linear(classes)`` with Keras'
    ``glorot_uniform`` weights and zero biases (P2's initialiser);
``b1``
    its B1 network (by default :func:`~spikeforge.ttfs.mapping.from_relu` of a copy, windows
    ``1.5 X_n`` calibrated on the training subset; with ``b1_windows="scratch"``
    :func:`~spikeforge.ttfs.mapping.b1_from_scratch`, P2's from-scratch windows with
    ``X_n = 1000``), windows grown after every step (:func:`~spikeforge.ttfs.train.grow_windows`,
    P2's rule);
``alpha1_smart``
    P1's alpha1 network mapped from the same initialisation
    (``from_relu(..., neuron="alpha1")``: weight-sum scaling, ``J = W / (1 - sum W)``), equal to
    the ReLU network at initialisation ("smart alpha1 initialisation", spec §7 point 2);
``alpha1_naive``
    an alpha1 network whose weights ``J`` *are* the ReLU initialisation's weights (no weight-sum
    scaling, no ``1 / (1 - sum W)`` factor), see :func:`naive_alpha1`.

Trainable parameters: ReLU ``(W, b)``; B1 ``(W, D)``; alpha1 ``J`` and ``theta`` of every hidden
layer (``alpha = 1`` stays fixed: it is the "1" of alpha1) and the readout's ``W`` and bias
current ``alpha``. The alpha1 windows stay fixed: their thresholds were computed for them.

**Effective ReLU parameters of an alpha1 layer** (derivation; checked numerically by
:func:`effective_parameters` against the canonical scaled network and against the spike times).
With input values ``x_j = t_min - t_j``, ``S_i = sum_j J_ij`` and slope ``s_i = alpha_i + S_i``,
the closed form ``t_i = (theta_i + alpha_i t_min_prev + sum_j J_ij t_j) / s_i`` clipped at
``t_max`` gives ``x_i = t_max - t_i = ReLU(sum_j W_eff_ij x_j + b_eff_i)`` with::

    W_eff_ij = J_ij / s_i,
    b_eff_i  = (alpha_i (t_max - t_min_prev) + S_i (t_max - t_min) - theta_i) / s_i.

This holds for the closed form whatever the sign of ``s_i`` and whether or not an activation
exceeds its window (the closed form then extrapolates; such spikes are counted as window
violations). A neuron with ``s_i <= 0`` cannot actually fire in the physical alpha1 model: the
closed form is meaningless for it, which is reported (``slopes``), not corrected. The alpha1
readout computes ``b_eff = alpha (t_min - t_min_prev)`` and ``W_eff = W``; B1's effective
parameters are its parameters ``(W, D)``.

**Parameter distance to the ReLU run.** B1: ``(W, D)`` against ``(W, b)`` directly. alpha1:
effective parameters against the ReLU run's current parameters pushed through the *fixed*
weight-sum scaling of the initialisation (:func:`weight_sum_factors`: row ``i`` of hidden layer
``l`` times ``f_l[i]``, column ``j`` of layer ``l + 1`` divided by ``f_l[j]``), the exact linear
reparametrisation under which the ReLU network and the mapped network coincide at step 0. For the
naive alpha1 network the factors are 1 (it is a different function from the start). Both
``max|a - b|`` and ``||a - b||_2 / ||b||_2`` over all parameters are recorded.

**Noise floor.** B1 equals the ReLU run only up to rounding: spike times are absolute (up to
``1 + sum_n B_n``, a few hundred after window growth), so every step rounds activations at
``~1e-13`` (spec risk 2), and training amplifies any difference over the steps. To show the
scale of that amplification, a fifth network, the ReLU MLP from its initialisation times
``1 + 1e-15 N(0, 1)``, is trained on the same batches and its distance to the ReLU run recorded
(``relu_perturbed``).

Modules: :mod:`.networks` (the networks and the measurements on them), :mod:`.runs` (one network
under training), :mod:`.experiment` (:func:`run_gradient_experiment`), :mod:`.report` (tables and
plots), :mod:`.command` (the subcommand).
"""

from spikeforge.experiments.ttfs_gradients.command import COMMANDS
from spikeforge.experiments.ttfs_gradients.experiment import run_gradient_experiment
from spikeforge.experiments.ttfs_gradients.networks import (
    effective_parameters,
    glorot_mlp,
    hidden_values,
    mlp_forward,
    naive_alpha1,
    parameter_distance,
    relative_l2,
    relu_parameters,
    scaled_parameters,
    weight_sum_factors,
)
from spikeforge.experiments.ttfs_gradients.report import (
    format_gradient_tables,
    plot_accuracy,
    plot_gradient_norms,
    plot_parameter_distance,
)
from spikeforge.experiments.ttfs_gradients.runs import RUNS

__all__ = [
    "COMMANDS",
    "RUNS",
    "effective_parameters",
    "format_gradient_tables",
    "glorot_mlp",
    "hidden_values",
    "mlp_forward",
    "naive_alpha1",
    "parameter_distance",
    "plot_accuracy",
    "plot_gradient_norms",
    "plot_parameter_distance",
    "relative_l2",
    "relu_parameters",
    "run_gradient_experiment",
    "scaled_parameters",
    "weight_sum_factors",
]
