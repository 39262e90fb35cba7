#!/usr/bin/env python3
"""How many planner configurations per second does a NumPy sweep evaluate?

A configuration is one accelerator x model x precision x replica size x workload (input/output
tokens) x TPOT target; for each, the planner finds the best throughput meeting the target over
24 batch sizes (1 to the memory/engine limit), so one configuration is 24 evaluations of the
step-time model (dense GEMM rooflines with tile and wave quantization, experts, attention,
communication, fixed costs) and of the TTFT model.

    .venv/bin/python bench/planner_sweep.py            # grids up to ~1.3 M configurations
    .venv/bin/python bench/planner_sweep.py --quick    # < 60 s; JSON on the last line

Results: a table on stdout and ``bench/results/planner_sweep.json`` (see README.md).
Target (issue 7): at least 10,000 configurations per second.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "src"))

from fabrique.planner import catalog  # noqa: E402
from fabrique.planner.engines import engine  # noqa: E402
from fabrique.planner.sweep import sweep  # noqa: E402

RESULTS_FILE = BENCH_DIR / "results" / "planner_sweep.json"
WORKLOADS = [(128, 128), (1000, 1000), (128, 2048), (2000, 300), (8000, 1000), (1000, 4000),
             (500, 2000), (20000, 2000), (4000, 500), (2048, 2048), (5000, 500), (300, 300)]
TARGETS = [10, 15, 20, 25, 30, 40, 50, 75, 100, 150, 200, 400]
GPUS = [1, 2, 4, 8, 16, 36, 72]


def run(workloads: int, targets: int, gpus: int, points: int, repeats: int) -> dict[str, float]:
    accs, models, eng = catalog.accelerators(), catalog.models(), engine("trtllm")
    args = dict(gpus=GPUS[:gpus], workloads=WORKLOADS[:workloads], tpot_targets_ms=TARGETS[:targets],
                points=points)
    sweep(accs, models, eng, **args)  # warm-up: catalogs, NumPy
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = sweep(accs, models, eng, **args)
        times.append(time.perf_counter() - start)
    best = min(times)
    curves = result.size // targets  # targets reuse one curve: count curves too, to be fair
    return {"configurations": result.size, "seconds": best,
            "configurations_per_s": result.size / best, "curves_per_s": curves / best,
            "fitting": int(result.fits.sum()),
            "meeting_target": int((result.tokens_per_s_per_gpu > 0).sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grids, < 60 s")
    opts = parser.parse_args()
    # (workloads, TPOT targets, replica sizes, batch sizes per configuration)
    grids = [(1, 3, 4, 24), (4, 6, 7, 24), (12, 12, 7, 24)]
    if not opts.quick:
        grids += [(12, 12, 7, 96)]
    rows = []
    for w, t, g, points in grids:
        row = run(w, t, g, points, repeats=2 if opts.quick else 5)
        rows.append({"workloads": w, "targets": t, "replica_sizes": g, "batch_points": points, **row})
    print(f"{'configurations':>15} {'batch pts':>9} {'seconds':>9} {'configs/s':>12} {'curves/s':>10} "
          f"{'fitting':>9} {'meet target':>12}")
    for r in rows:
        print(f"{r['configurations']:>15,} {r['batch_points']:>9} {r['seconds']:>9.3f} "
              f"{r['configurations_per_s']:>12,.0f} {r['curves_per_s']:>10,.0f} {r['fitting']:>9,} "
              f"{r['meeting_target']:>12,}")
    summary = {
        "bench": "planner_sweep", "quick": opts.quick,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
                    "cores": os.cpu_count()},
        "target_configurations_per_s": 10_000,
        "best_configurations_per_s": max(r["configurations_per_s"] for r in rows),
        "largest": rows[-1], "rows": rows,
    }
    RESULTS_FILE.parent.mkdir(exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: summary[k] for k in ("bench", "quick", "target_configurations_per_s",
                                               "best_configurations_per_s", "largest")}))


if __name__ == "__main__":
    main()
