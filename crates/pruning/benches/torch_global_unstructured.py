"""PyTorch reference for benches/global_select.rs: torch.nn.utils.prune.global_unstructured
(L1, amount 0.9) over Linear layers holding 10.5M weights, on the CPU with 2 threads.

    python3 crates/pruning/benches/torch_global_unstructured.py
"""
import statistics
import time

import torch
import torch.nn.utils.prune as prune

torch.set_num_threads(2)
torch.manual_seed(0)
shapes = [(2048, 4096), (1024, 2048), (10, 1024)]  # nn.Linear(in, out) weights are [out, in]
weights = [torch.randn(o, i) * 0.05 for (o, i) in shapes]
times = []
for _ in range(10):
    layers = []
    for (o, i), w in zip(shapes, weights):
        lin = torch.nn.Linear(i, o, bias=False)
        with torch.no_grad():
            lin.weight.copy_(w)
        layers.append(lin)
    t0 = time.perf_counter()
    prune.global_unstructured([(l, "weight") for l in layers], pruning_method=prune.L1Unstructured, amount=0.9)
    times.append(time.perf_counter() - t0)
total = sum(o * i for o, i in shapes)
kept = sum(int(l.weight_mask.sum()) for l in layers)
print(f"torch {torch.__version__} global_unstructured over {total} weights: median {statistics.median(times) * 1e3:.1f} ms "
      f"(min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}); kept {kept}")
