"""The PyTorch twin of `configs/fashion-mnist.toml` as a user runs it, for the marginal cost of
an epoch: 784-300-100-10 ReLU, Adam (lr 1.2e-3), inputs scaled to [0, 1] (global min-max of
the training images: 0 and 255), a fresh seeded shuffle every epoch, and after every epoch a
full evaluation of the training and test sets (loss and accuracy), as Lopper's loop does. The
same data files (Debian's dataset-fashion-mnist, or datasets/fashion-mnist/), 2 threads.

    python3 crates/trainer/benches/pytorch_fashion_epoch.py [--batch 128] [--epochs 1 3]

prints one line per epoch count: the wall time of the whole run (data already in memory, as
Lopper's epochs start after loading) and, for two counts, the marginal cost of an epoch
(T(b) - T(a)) / (b - a), which leaves start-up out.
"""
import argparse
import gzip
import os
import struct
import time

import torch

ROOTS = ["/usr/share/datasets/fashion-mnist", "datasets/fashion-mnist"]


def idx(name):
    for root in ROOTS:
        for path in (os.path.join(root, name + ".gz"), os.path.join(root, name)):
            if os.path.exists(path):
                opener = gzip.open if path.endswith(".gz") else open
                with opener(path, "rb") as f:
                    data = f.read()
                magic, n = struct.unpack(">II", data[:8])
                dims = magic & 0xFF
                shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
                body = data[4 + 4 * dims:]
                return torch.frombuffer(bytearray(body), dtype=torch.uint8).view(*shape)
    raise SystemExit(f"{name}: not found under {ROOTS}; install dataset-fashion-mnist")


def load():
    x_train = idx("train-images-idx3-ubyte").view(-1, 784).float()
    y_train = idx("train-labels-idx1-ubyte").long()
    x_test = idx("t10k-images-idx3-ubyte").view(-1, 784).float()
    y_test = idx("t10k-labels-idx1-ubyte").long()
    lo, hi = x_train.min(), x_train.max()
    return (x_train - lo) / (hi - lo), y_train, (x_test - lo) / (hi - lo), y_test


def evaluate(model, loss_fn, x, y, chunk=2048):
    loss, correct = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(x), chunk):
            out = model(x[s:s + chunk])
            loss += loss_fn(out, y[s:s + chunk]).item() * len(out)
            correct += (out.argmax(1) == y[s:s + chunk]).sum().item()
    return loss / len(x), correct / len(x)


def run(data, epochs, batch):
    x_train, y_train, x_test, y_test = data
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 300), torch.nn.ReLU(),
        torch.nn.Linear(300, 100), torch.nn.ReLU(),
        torch.nn.Linear(100, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1.2e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(x_train), generator=gen)
        for s in range(0, len(order), batch):
            idx_b = order[s:s + batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x_train[idx_b]), y_train[idx_b])
            loss.backward()
            opt.step()
        train = evaluate(model, loss_fn, x_train, y_train)
        test = evaluate(model, loss_fn, x_test, y_test)
    return time.perf_counter() - start, train, test


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--epochs", type=int, nargs="+", default=[1, 3])
    a = p.parse_args()
    torch.set_num_threads(2)
    data = load()
    times = {}
    for e in a.epochs:
        t, train, test = run(data, e, a.batch)
        times[e] = t
        print(f"pytorch {torch.__version__} threads=2 batch={a.batch}: {e} epochs {t:.3f} s "
              f"(train accuracy {train[1]:.4f}, test accuracy {test[1]:.4f})")
    if len(a.epochs) == 2:
        lo, hi = a.epochs
        print(f"pytorch marginal epoch: {(times[hi] - times[lo]) / (hi - lo):.3f} s")


if __name__ == "__main__":
    main()
