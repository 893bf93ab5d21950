"""The ``spikeforge`` command (also ``python -m spikeforge``).

Subcommands:

* ``spikeforge demo``: the main job (sklearn digits, CNN -> TTFS, both neuron models);
* ``spikeforge reproduce ttfs-mapping --dataset mnist|fashion-mnist --arch fc2|lenet5``;
* ``spikeforge data verify``: check the MNIST / Fashion-MNIST files and their checksums.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from spikeforge.data import DataCorruptError, DataNotFoundError

REPRODUCE_DEFAULT_EPOCHS = {"fc2": 30, "lenet5": 15}


def _demo(args: argparse.Namespace) -> int:
    from spikeforge.ttfs.experiments import run_demo

    run_demo(
        args.out,
        epochs=args.epochs,
        seed=args.seed,
        event=not args.no_event,
        progress=not args.quiet,
    )
    return 0


def _reproduce_ttfs_mapping(args: argparse.Namespace) -> int:
    from spikeforge.training import TrainConfig
    from spikeforge.ttfs.experiments import load_dataset, run_mapping_experiment

    dataset = load_dataset(args.dataset, args.data_dir).subset(
        args.train_samples, args.test_samples
    )
    epochs = args.epochs or REPRODUCE_DEFAULT_EPOCHS[args.arch]
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        progress=not args.quiet,
    )
    out = args.out or f"reports/ttfs-mapping-{args.dataset}-{args.arch}"
    run_mapping_experiment(
        dataset,
        args.arch,
        out,
        train=cfg,
        zeta=args.zeta,
        event_samples=args.event_samples,
        progress=not args.quiet,
    )
    return 0


def _data_verify(args: argparse.Namespace) -> int:
    from spikeforge.data import load_idx_dataset, resolve_data_dir

    root = resolve_data_dir(args.data_dir)
    print(f"data directory: {root}")
    for name in ("mnist", "fashion-mnist"):
        for split in ("train", "test"):
            images, _ = load_idx_dataset(name, split, root)
            print(f"  {name:14s} {split:5s} {images.shape[0]:6d} images  checksums OK")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spikeforge", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="digits CNN -> TTFS SNN, closed form and event simulation")
    demo.add_argument("--out", default="reports/demo", help="report folder (default %(default)s)")
    demo.add_argument("--epochs", type=int, default=60)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--no-event", action="store_true", help="skip the event simulation")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(run=_demo)

    repro = sub.add_parser("reproduce", help="reproduce a paper experiment")
    experiments = repro.add_subparsers(dest="experiment", required=True)
    mapping = experiments.add_parser(
        "ttfs-mapping", help="exact ReLU -> TTFS mapping on MNIST / Fashion-MNIST"
    )
    mapping.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    mapping.add_argument("--arch", choices=["fc2", "lenet5"], default="fc2")
    mapping.add_argument(
        "--data-dir",
        default=None,
        help="folder holding mnist/ and fashion-mnist/ (else $SPIKEFORGE_DATA)",
    )
    mapping.add_argument(
        "--out", default=None, help="report folder (default reports/ttfs-mapping-DATASET-ARCH)"
    )
    mapping.add_argument(
        "--epochs", type=int, default=None, help="training epochs (default: fc2 20, lenet5 10)"
    )
    mapping.add_argument("--batch-size", type=int, default=128)
    mapping.add_argument("--lr", type=float, default=1e-3)
    mapping.add_argument("--seed", type=int, default=0)
    mapping.add_argument("--zeta", type=float, default=0.5, help="window margin (default 0.5)")
    mapping.add_argument(
        "--event-samples",
        type=int,
        default=None,
        help="test samples to event-simulate (default: all)",
    )
    mapping.add_argument(
        "--train-samples",
        type=int,
        default=None,
        help="use only the first N training images (quick runs)",
    )
    mapping.add_argument(
        "--test-samples",
        type=int,
        default=None,
        help="use only the first N test images (quick runs)",
    )
    mapping.add_argument("--quiet", action="store_true", help="no progress bars")
    mapping.set_defaults(run=_reproduce_ttfs_mapping)

    data = sub.add_parser("data", help="data set utilities")
    data_sub = data.add_subparsers(dest="action", required=True)
    verify = data_sub.add_parser("verify", help="check MNIST / Fashion-MNIST files and checksums")
    verify.add_argument("--data-dir", default=None)
    verify.set_defaults(run=_data_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (DataNotFoundError, DataCorruptError) as exc:
        print(f"spikeforge: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spikeforge: interrupted (rerun the same command to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
