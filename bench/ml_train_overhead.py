"""Benchmark: a 20-epoch MLP trained through tek vs the same loop in a plain script.

Two comparisons, each repeated ``--repeat`` times (best of each is reported):

- end to end (cold): ``python plain.py`` vs ``python -c <run a one-task plan
  through core.engine>``, both from process start to exit, so both pay
  Python's start, torch's import and the data; tek also pays the engine and
  starting its worker process.
- loop only (warm): the training loop's time inside the plain script vs the
  ``train`` task's running time in an engine whose ML worker is already warm
  (one task first warms it), which is what a plan of many ML tasks sees.

Same data (``moons``, ``--n`` samples, 20% validation), same model (standardise,
MLP 64-64 ReLU), AdamW lr 0.01, batch 64, one thread, validation every epoch.
Target: tek at most 5% slower. Usage: ``.venv/bin/python bench/ml_train_overhead.py``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PLAIN = r"""
import sys, time
import torch
from torch import nn
from core.ml.data import synthetic
n, epochs = int(sys.argv[1]), int(sys.argv[2])
torch.manual_seed(0); torch.set_num_threads(1)
ds = synthetic("moons", {"n": n, "noise": 0.2, "data_seed": 0})
g = torch.Generator().manual_seed(0)
order = torch.randperm(n, generator=g); n_val = int(n * 0.2)
xv, yv, x, y = ds.x[order[:n_val]], ds.y[order[:n_val]], ds.x[order[n_val:]], ds.y[order[n_val:]]
mean, std = x.mean(0), x.std(0)
model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
opt = torch.optim.AdamW(model.parameters(), lr=0.01); loss_fn = nn.CrossEntropyLoss()
t0 = time.perf_counter()
for epoch in range(epochs):
    model.train(); total = 0.0
    for idx in torch.split(torch.randperm(len(x), generator=g), 64):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model((x[idx] - mean) / std), y[idx]); loss.backward(); opt.step()
        total += loss.item() * len(idx)
    model.eval()
    with torch.no_grad():
        out = torch.cat([model((p - mean) / std) for p in torch.split(xv, 512)])
        val_loss = float(loss_fn(out, yv)); acc = float((out.argmax(1) == yv).float().mean())
    print(f"epoch {epoch + 1} loss {total / len(x):.4f} val_loss {val_loss:.4f} val_acc {acc:.4f}", flush=True)
print("LOOP_S", time.perf_counter() - t0)
"""

TEK = r"""
import sys, anyio
from core.engine import create_run, RunOptions
from core.plan import Plan, Task
cmd = f"train model=mlp hidden=64;64 data=moons n={sys.argv[1]} epochs={sys.argv[2]} lr=0.01 batch_size=64 threads=1 seed=0"
tasks = tuple(Task(id=f"t{i}", agent="ml", command=cmd, deps=(f"t{i-1}",) if i else ()) for i in range(int(sys.argv[3])))
summary = anyio.run(create_run(Plan(tasks), RunOptions()).run)
assert summary.status.value == "succeeded", summary.to_json()
for tid, result in summary.tasks.items():
    print("TASK_S", tid, result.duration_s)
"""


def _run(code: str, *args: object) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=env["TEK_HOME"],
        check=False,
    )
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"benchmark child failed:\n{done.stdout}\n{done.stderr}")
    return wall, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60_000, help="samples (default 60000)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    os.environ["TEK_HOME"] = tempfile.mkdtemp(prefix="tek-bench-")
    plain_wall, plain_loop, tek_wall, tek_loop = [], [], [], []
    for _ in range(opts.repeat):
        wall, out = _run(PLAIN, opts.n, opts.epochs)
        plain_wall.append(wall)
        plain_loop.append(float(out.split("LOOP_S")[1]))
        wall, _ = _run(TEK, opts.n, opts.epochs, 1)
        tek_wall.append(wall)
        _, out = _run(TEK, opts.n, opts.epochs, 2)  # t0 warms the worker; t1 is measured
        tek_loop.append(float(out.split("TASK_S t1")[1].split()[0]))
    load = os.getloadavg()
    print(
        f"MLP 64-64 on moons, n={opts.n}, {opts.epochs} epochs, 1 thread, best of {opts.repeat}"
        f" (load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})"
    )
    for label, plain, tek in (
        ("end to end, cold", plain_wall, tek_wall),
        ("loop only, warm", plain_loop, tek_loop),
    ):
        p, t = min(plain), min(tek)
        print(
            f"  {label:<17} plain {p:7.2f} s   tek {t:7.2f} s   tek/plain {t / p:5.3f} ({(t / p - 1) * 100:+.1f}%)"
        )


if __name__ == "__main__":
    main()
