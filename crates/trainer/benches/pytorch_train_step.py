"""The PyTorch reference for benches/train_step.rs: one training step (forward, backward, Adam)
of 784-300-100-10 at batch 128, ReLU, cross-entropy, on the CPU with 2 threads.

Run beside `cargo xtask bench` in the same sitting:  python3 crates/trainer/benches/pytorch_train_step.py
"""
import statistics
import time

import torch

torch.set_num_threads(2)
torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Linear(784, 300), torch.nn.ReLU(),
    torch.nn.Linear(300, 100), torch.nn.ReLU(),
    torch.nn.Linear(100, 10),
)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = torch.nn.CrossEntropyLoss()
x_host = torch.tensor([(k % 251) / 251.0 for k in range(128 * 784)], dtype=torch.float32).view(128, 784)
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


for _ in range(50):
    step()
times = []
for _ in range(20):
    t0 = time.perf_counter()
    for _ in range(50):
        step()
    times.append((time.perf_counter() - t0) / 50 * 1e3)
print(f"pytorch {torch.__version__} threads=2: median {statistics.median(times):.3f} ms/step "
      f"(min {min(times):.3f}, max {max(times):.3f}) over 20 x 50 steps")
