"""Universal representation of spike-train functions by synchronous LIF circuits (spec
``universal.md``): spikeforge's own constructions and counts under its stated semantics, not the
theorems or numbers of Hundrieser et al. (arXiv 2512.16872), whose conventions are unknown.

**Semantics** (every object here): input channels ``X_k[t]`` and neurons ``i`` with leak
``beta_i``, threshold ``theta_i``, bias ``b_i``, initial potential ``v0_i``::

    H_i[t] = beta_i V_i[t-1] + sum_k U_ik X_k[t-1] + sum_j W_ij S_j[t-1] + b_i
    S_i[t] = 1[H_i[t] >= theta_i],    V_i[t] = H_i[t] (1 - S_i[t])   (hard reset to 0)

``V[0] = v0``, ``S[0] = 0``, ``X[t] = 0`` for ``t <= 0``; every synapse (input synapses too)
delivers one step later. A circuit represents ``f`` with latency D if its output obeys
``S_o[t + D] = f(X)[t]`` for all ``t >= 1``; outputs at steps ``1..D`` are start-up transients.
Tensors are time first: inputs ``[T, B, d]``, outputs ``[T, B]`` (``out[t - 1] = S_o[t]``).

* :class:`Circuit` (``run``, ``simulate``, ``to_module``, ``neurons``, ``synapses``,
  ``biases``, ``latency``) and :class:`CircuitBuilder`;
* primitives: :func:`skip`, :func:`delay`, :func:`and_gate`, :func:`or_gate`,
  :func:`not_gate`, :func:`thresh`, :func:`clock`, :func:`leaky_clock`, :func:`latch`,
  :func:`ceil`;
* :func:`compile` (DNF / complement / THRESH, periodic), :func:`compile_symmetric`;
* :func:`compose` (latency alignment);
* :func:`counter_classifier`, :func:`markov_classifier`, :class:`MarkovSource`;
* :func:`all_sequences`, :func:`reference_outputs`, :func:`check_exhaustive`;
* :func:`size_lower_bound` (the counting bound, worst case over functions).
"""

from spikeforge.universal.bounds import size_lower_bound, worst_case_size
from spikeforge.universal.circuit import Circuit, CircuitBuilder, Ref
from spikeforge.universal.classify import (
    CounterClassifier,
    MarkovSource,
    counter_classifier,
    markov_classifier,
)
from spikeforge.universal.compiler import (
    candidate_formulas,
    compile,
    compile_symmetric,
    complement_formula,
    dnf_formula,
    thresh_formula,
)
from spikeforge.universal.compose import compose, composition_formula
from spikeforge.universal.module import CircuitModule
from spikeforge.universal.primitives import (
    and_gate,
    ceil,
    clock,
    delay,
    latch,
    leaky_clock,
    not_gate,
    or_gate,
    skip,
    thresh,
)
from spikeforge.universal.verify import all_sequences, check_exhaustive, reference_outputs
from spikeforge.universal.windows import truth_table

__all__ = [
    "Circuit",
    "CircuitBuilder",
    "CircuitModule",
    "CounterClassifier",
    "MarkovSource",
    "Ref",
    "all_sequences",
    "and_gate",
    "candidate_formulas",
    "ceil",
    "check_exhaustive",
    "clock",
    "compile",
    "compile_symmetric",
    "complement_formula",
    "compose",
    "composition_formula",
    "counter_classifier",
    "delay",
    "dnf_formula",
    "latch",
    "leaky_clock",
    "markov_classifier",
    "not_gate",
    "or_gate",
    "reference_outputs",
    "size_lower_bound",
    "skip",
    "thresh",
    "thresh_formula",
    "truth_table",
    "worst_case_size",
]
