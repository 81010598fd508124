"""Training throughput of the full pipeline vs the model's raw forward+backward, same batch size.

Trains `resnet18` on Fashion-MNIST with `unlearnkit.train` (in-memory uint8 tensors, batched on-device
augmentation, cosine schedule) and times, in the same process, the bare model on synthetic tensors already on
the device. The pipeline's cost is 1 - pipeline/raw.

    python benchmarks/train_throughput.py --epochs 3 --out runs/fmnist-resnet18
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from unlearnkit import load_dataset, train
from unlearnkit.bench.runner import machine_description
from unlearnkit.engine.device import get_device
from unlearnkit.models import build_model


def raw_throughput(arch: str, batch: int, shape: tuple[int, int, int], classes: int, steps: int,
                   with_step: bool) -> float:
    """Images/s of forward+backward (+ an SGD step if `with_step`) on tensors already on the device."""
    device = get_device()
    model = build_model(arch, classes, shape, (0.5,) * shape[0], (0.25,) * shape[0]).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(batch, *shape, device=device)
    y = torch.randint(0, classes, (batch,), device=device)
    for i in range(steps + 3):
        if i == 3:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if with_step:
            opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--raw-steps", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/throughput")
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args()
    b = load_dataset(a.data)
    shape = b.input_shape
    raw = [raw_throughput(a.arch, a.batch_size, shape, b.num_classes, a.raw_steps, False)]
    raw_step = [raw_throughput(a.arch, a.batch_size, shape, b.num_classes, a.raw_steps, True)]
    out = train(a.data, a.arch, Path(a.out), epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, seed=a.seed,
                overwrite=a.overwrite)
    raw.append(raw_throughput(a.arch, a.batch_size, shape, b.num_classes, a.raw_steps, False))
    raw_step.append(raw_throughput(a.arch, a.batch_size, shape, b.num_classes, a.raw_steps, True))
    m = json.loads((out / "metrics.json").read_text())
    meta = json.loads((out / "meta.json").read_text())
    n_train = len(b.y_train) - round(len(b.y_train) * meta["data"]["val_fraction"])
    pipe = a.epochs * n_train / meta["seconds"]
    raw_fb, raw_fbs = sum(raw) / len(raw), sum(raw_step) / len(raw_step)
    print(f"| {a.data} {a.arch}, batch {a.batch_size}, {a.epochs} epochs | images/s |")
    print("|---|---|")
    print(f"| full training pipeline (unlearnkit train) | {pipe:.0f} |")
    print(f"| raw forward+backward, synthetic tensors | {raw_fb:.0f} |")
    print(f"| raw forward+backward+SGD step | {raw_fbs:.0f} |")
    print(f"\npipeline cost vs forward+backward: {100 * (1 - pipe / raw_fb):.1f}% (target <= 15%); "
          f"vs forward+backward+step: {100 * (1 - pipe / raw_fbs):.1f}%")
    print(f"test accuracy {m['test_acc']:.2f}% (target >= 90%), training {meta['seconds']:.0f} s")
    print(f"machine: {machine_description()}, {torch.get_num_threads()} threads; run: {out}")


if __name__ == "__main__":
    main()
