"""File classification from metadata (spec ``file-classification.md``): a safe streaming
scanner of directory trees and the magic-byte content ``kind`` rules (:mod:`.scan`,
:mod:`.kinds`); the debfiles data set (:mod:`.debfiles` loader, :mod:`.builder`); spiking
classifiers as scikit-learn estimators (:class:`SNNClassifier`, supervised BPTT on the van Rossum
distance; :class:`STDPClassifier`, unsupervised STDP) with an optional memristive synapse model
(:mod:`.memristive`); logistic-regression and SVM baselines (:mod:`.baselines`); saving and
loading fitted classifiers (:mod:`.persist`)."""

from __future__ import annotations

from spikeforge.files.baselines import RecordVectorizer, fit_baseline, make_baseline
from spikeforge.files.builder import BuildReport, build_debfiles
from spikeforge.files.debfiles import (
    CLASSES,
    COLUMNS,
    FEATURE_SETS,
    SHA256,
    Debfiles,
    load_debfiles,
)
from spikeforge.files.kinds import HEAD_BYTES, KINDS, MERGED, classify
from spikeforge.files.memristive import DifferentialArray, MemristiveArray, MemristiveSynapse
from spikeforge.files.persist import ModelFileError, load_model, save_model
from spikeforge.files.scan import (
    FIELDS,
    ScanResult,
    compare_throughput,
    iter_scan,
    scan,
    walk_baseline,
)
from spikeforge.files.stdp import STDPClassifier
from spikeforge.files.supervised import SNNClassifier
from spikeforge.files.targets import class_targets, nearest_target

__all__ = [
    "CLASSES",
    "COLUMNS",
    "FEATURE_SETS",
    "FIELDS",
    "HEAD_BYTES",
    "KINDS",
    "MERGED",
    "SHA256",
    "BuildReport",
    "Debfiles",
    "DifferentialArray",
    "MemristiveArray",
    "MemristiveSynapse",
    "ModelFileError",
    "RecordVectorizer",
    "SNNClassifier",
    "STDPClassifier",
    "ScanResult",
    "build_debfiles",
    "class_targets",
    "classify",
    "compare_throughput",
    "fit_baseline",
    "iter_scan",
    "load_debfiles",
    "load_model",
    "make_baseline",
    "nearest_target",
    "save_model",
    "scan",
    "walk_baseline",
]
