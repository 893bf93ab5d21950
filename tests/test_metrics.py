"""Metrics on hand-made inputs."""

from __future__ import annotations

import pytest
import torch

from spikeforge.metrics import (
    accuracy,
    agreement,
    max_abs_difference,
    spike_counts,
    spikes_per_neuron,
)


def test_accuracy_and_agreement() -> None:
    logits = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    labels = torch.tensor([1, 0, 0, 0])
    assert accuracy(logits, labels) == 0.75
    assert agreement(logits, torch.tensor([1, 0, 1, 1])) == 0.75
    assert agreement(logits, logits * 2) == 1.0
    with pytest.raises(ValueError, match="3 predictions for 4 labels"):
        accuracy(logits[:3], labels)
    with pytest.raises(ValueError, match="empty"):
        accuracy(logits[:0], labels[:0])


def test_spikes_per_neuron_counts_strictly_before_t_max() -> None:
    # layer 1 (t_max = 2): 3 of 4 neurons per sample spike, one sits exactly at t_max
    layer1 = torch.tensor([[1.0, 1.5, 2.0, 1.999], [2.0, 2.0, 2.0, 1.0]])
    # layer 2 (t_max = 5): 1 of 2 neurons spike in each sample
    layer2 = torch.tensor([[4.0, 5.0], [5.0, 2.5]])
    assert spike_counts([layer1, layer2], [2.0, 5.0]) == [(4, 8), (2, 4)]
    assert spikes_per_neuron([layer1, layer2], [2.0, 5.0]) == pytest.approx(6 / 12)
    with pytest.raises(ValueError, match="2 layers of times but 1"):
        spikes_per_neuron([layer1, layer2], [2.0])


def test_max_abs_difference() -> None:
    a = [torch.zeros(2), torch.ones(3)]
    b = [torch.tensor([0.0, -0.5]), torch.ones(3)]
    assert max_abs_difference(a, b) == 0.5
    assert max_abs_difference(torch.ones(2), torch.ones(2)) == 0.0
