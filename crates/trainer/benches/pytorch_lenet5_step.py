"""The PyTorch reference for the LeNet-5 case of benches/train_step.rs: one training step
(forward, backward, Adam) of LeNet-5 on 1×28×28 images at batch 128 — conv 6@5×5 (padding 2),
ReLU, max pool 2, conv 16@5×5, ReLU, max pool 2, dense 400-120-84-10 with ReLU, cross-entropy —
on the CPU with 2 threads.

Run beside `cargo bench -p trainer --bench train_step` in the same sitting:
    python3 crates/trainer/benches/pytorch_lenet5_step.py
"""
import statistics
import time

import torch

torch.set_num_threads(2)
torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Flatten(),
    torch.nn.Linear(400, 120), torch.nn.ReLU(),
    torch.nn.Linear(120, 84), torch.nn.ReLU(),
    torch.nn.Linear(84, 10),
)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = torch.nn.CrossEntropyLoss()
# The Rust benchmark's batch: (k % 251) / 251 over 128 × 784 values, labels r % 10.
x_host = torch.tensor([(k % 251) / 251.0 for k in range(128 * 784)], dtype=torch.float32)
x_host = x_host.view(128, 1, 28, 28)
y_host = torch.tensor([r % 10 for r in range(128)])


def step():
    # A fresh copy of the batch each step, as the Rust benchmark copies its host buffer.
    x = x_host.clone()
    y = y_host.clone()
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()


for _ in range(20):
    step()
times = []
for _ in range(10):
    t0 = time.perf_counter()
    for _ in range(20):
        step()
    times.append((time.perf_counter() - t0) / 20 * 1e3)
print(f"pytorch {torch.__version__} threads=2: LeNet-5 median {statistics.median(times):.3f} ms/step "
      f"(min {min(times):.3f}, max {max(times):.3f}) over 10 x 20 steps")
