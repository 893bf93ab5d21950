"""``spikeforge reproduce universal`` (spec ``universal.md``): the table of verified circuit
constructions, spike-train classification between Markov sources (constructed Bayes circuit
against a trained LIF SNN) and neurons against window size."""

from spikeforge.experiments.universal.command import COMMANDS

__all__ = ["COMMANDS"]
