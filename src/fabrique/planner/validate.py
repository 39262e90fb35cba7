"""Check the performance model against published measurements (data/validation.yaml)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fabrique.planner import catalog
from fabrique.planner.catalog import _read
from fabrique.planner.deploy import KV_DEFAULT, single
from fabrique.planner.engines import engine
from fabrique.planner.perf import max_batch, offline_run
from fabrique.planner.trtllm_bench import bench_settings


@dataclass(frozen=True)
class Row:
    gpu: str
    model: str
    precision: str
    gpus: int
    parallel: str
    engine: str
    input_tokens: int
    output_tokens: int
    requests: int
    measured_per_gpu: float
    predicted_per_gpu: float
    batch: int
    note: str
    source: str

    @property
    def error(self) -> float:
        """Signed relative error of the prediction (+0.10: predicts 10 % more than measured)."""
        return self.predicted_per_gpu / self.measured_per_gpu - 1.0


# Engine settings a row may publish (its benchmark command), overriding the engine's defaults.
SETTINGS = {"max_batch": "max_batch", "max_num_tokens": "max_num_tokens",
            "kv_memory_fraction": "kv_memory_fraction", "attention_dp_balance": "attention_dp_balance"}


def _row(entry: dict[str, Any]) -> Row:
    acc, mdl = catalog.accelerator(entry["gpu"]), catalog.model(entry["model"])
    eng = engine(entry["engine"])
    n = int(entry["gpus"])
    prec = catalog.precision(entry["precision"])
    kv = catalog.precision(entry["kv_cache"]) if "kv_cache" in entry else None
    if eng.bench_settings and "max_batch" not in entry and "max_num_tokens" not in entry:
        # the run left them to trtllm-bench; its estimate uses the KV precision the checkpoint
        # declares (`bench_kv_cache`), which may differ from the one the run used
        declared = entry.get("bench_kv_cache") or kv or KV_DEFAULT[prec]
        cap, budget = bench_settings(acc, mdl, prec, catalog.precision(declared), n, 1,
                                     int(entry["input_tokens"]), int(entry["output_tokens"]),
                                     float(entry.get("kv_memory_fraction", eng.kv_memory_fraction)))
        eng = replace(eng, max_batch=cap, max_num_tokens=budget)
    eng = replace(eng, **{SETTINGS[k]: entry[k] for k in SETTINGS if k in entry})
    p = single(acc, mdl, prec, n, entry["parallel"] == "dep", eng, kv_cache=kv)
    isl, osl = np.array(float(entry["input_tokens"])), np.array(float(entry["output_tokens"]))
    batch = max_batch(p, isl, osl)
    if "concurrency" in entry:  # the benchmark client keeps at most this many requests running
        batch = np.minimum(batch, float(entry["concurrency"]))
    predicted = float(offline_run(p, batch, isl, osl, np.array(float(entry["requests"]))))
    measured = float(entry["measured"]) / (n if entry["per"] == "total" else 1)
    return Row(gpu=acc.name, model=str(entry["model"]), precision=entry["precision"], gpus=n,
               parallel=entry["parallel"], engine=eng.name, input_tokens=int(isl),
               output_tokens=int(osl), requests=int(entry["requests"]), measured_per_gpu=measured,
               predicted_per_gpu=predicted, batch=int(batch), note=entry.get("note", ""),
               source=entry["source"])


def rows() -> list[Row]:
    """Every validation row, predicted."""
    return [_row(entry) for entry in _read("validation.yaml")["rows"]]


def summary(table: list[Row]) -> dict[str, float | int]:
    errors = [abs(r.error) for r in table]
    return {"rows": len(table), "accelerators": len({r.gpu for r in table}),
            "models": len({r.model for r in table}),
            "median_abs_error": statistics.median(errors), "max_abs_error": max(errors),
            "within_35pct": sum(e <= 0.35 for e in errors)}
