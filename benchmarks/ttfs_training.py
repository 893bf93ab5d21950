"""Cost of one training step of a B1 TTFS network against its ReLU network.

Same model (FC2 784-600-10 and LeNet5 with BatchNorm folded, as mapped by
:func:`spikeforge.ttfs.from_relu`), same dtype, batch 128 of MNIST training images, same run:
forward (closed-form spike times), cross-entropy, backward, Adam step; for the SNN also P2's
window growth after the step. Contenders alternate; the median of ``--repeats`` passes of
``--steps`` steps is reported with the ratio (issue 3's target: at most 1.5x).

The ReLU contender is the *folded* network (BatchNorm merged), i.e. exactly the function the
B1 network computes, so both train the same parameters.

Run: ``SPIKEFORGE_DATA=/path/to/data python benchmarks/ttfs_training.py``
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn

from spikeforge.data import load_mnist, to_unit_float
from spikeforge.models import fc2, lenet5
from spikeforge.ttfs import TTFSNetwork, from_relu
from spikeforge.ttfs.train import grow_windows

ARCHS = {"fc2": fc2, "lenet5": lenet5}
DTYPES = {"float64": torch.float64, "float32": torch.float32}


def folded_relu(net: TTFSNetwork) -> nn.Module:
    """The canonical ReLU network a B1 net is equal to, as a module with its own parameters."""
    chain = copy.deepcopy(net.mapping.chain)

    class Folded(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weights = nn.ParameterList(nn.Parameter(s.affine.weight) for s in chain.stages)
            self.biases = nn.ParameterList(nn.Parameter(s.affine.bias) for s in chain.stages)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for stage, w, b in zip(chain.stages, self.weights, self.biases, strict=True):
                stage.affine.weight, stage.affine.bias = w, b
            return chain.forward(x)

    return Folded()


def time_steps(step, steps: int) -> float:
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    return (time.perf_counter() - start) * 1e3 / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    images, labels = load_mnist("train", args.data_dir)
    x_all = to_unit_float(images[:4096], 255.0, torch.float64)
    y_all = torch.from_numpy(labels[:4096])
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch_size}")
    print(f"{'arch':<7} {'dtype':<8} {'relu ms/step':>13} {'b1 ms/step':>11} {'ratio':>7}")
    for arch, build in ARCHS.items():
        torch.manual_seed(0)
        model = build().double().eval()
        snn64 = from_relu(model, x_all, neuron="b1")
        for dtype_name, dtype in DTYPES.items():
            snn = copy.deepcopy(snn64).to(dtype)
            relu = folded_relu(snn64).to(dtype)
            x, y = x_all.to(dtype), y_all
            batches = [
                torch.arange(i, i + args.batch_size) % x.shape[0]
                for i in range(0, args.steps * args.batch_size, args.batch_size)
            ]
            opt_relu = torch.optim.Adam(relu.parameters(), lr=1e-4)
            opt_snn = torch.optim.Adam(snn.parameters(), lr=1e-4)

            def relu_step(i: int, relu=relu, opt=opt_relu, x=x, y=y, batches=batches) -> None:
                opt.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(relu(x[batches[i]]), y[batches[i]]).backward()
                opt.step()

            def snn_step(i: int, snn=snn, opt=opt_snn, x=x, y=y, batches=batches) -> None:
                opt.zero_grad(set_to_none=True)
                out = snn.run(x[batches[i]])
                nn.functional.cross_entropy(out.logits, y[batches[i]]).backward()
                opt.step()
                grow_windows(snn, out.hidden_times)

            relu_step(0), snn_step(0)  # warm-up
            t_relu, t_snn = [], []
            for r in range(args.repeats):
                order = [(relu_step, t_relu), (snn_step, t_snn)]
                for step, acc in order if r % 2 == 0 else order[::-1]:
                    acc.append(time_steps(step, args.steps))
            a, b = statistics.median(t_relu), statistics.median(t_snn)
            print(f"{arch:<7} {dtype_name:<8} {a:13.2f} {b:11.2f} {b / a:6.2f}x")


if __name__ == "__main__":
    main()
