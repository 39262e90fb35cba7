"""One planning question: how fast does this model run on these GPUs, under these targets?"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from fabrique.planner import catalog
from fabrique.planner.calibrate import Factors, scaled
from fabrique.planner.deploy import KV_DEFAULT, single
from fabrique.planner.engines import Engine
from fabrique.planner.engines import engine as find_engine
from fabrique.planner.errors import PlannerError
from fabrique.planner.perf import Params, curve, kv_bytes_per_token, kv_free_bytes, max_batch
from fabrique.planner.perf import weights_per_gpu as weights_gpu
from fabrique.planner.trtllm_bench import bench_settings


@dataclass(frozen=True)
class Question:
    gpu: str
    gpus: int
    model: str
    precision: str
    input_tokens: int
    output_tokens: int
    tpot_ms: float | None = None
    ttft_ms: float | None = None
    engine: str = "trtllm"
    parallel: str = "auto"      # auto | tp | dep (attention data-parallel + expert-parallel)
    concurrency: int | None = None      # load given as running requests per replica ...
    rate: float | None = None           # ... or as arrivals per second per replica
    factors: Factors | None = None      # a deployment's calibration (`fabrique plan calibrate`)
    pp: int = 1                         # pipeline stages (gpus / pp per stage)
    kv_cache: str | None = None         # KV-cache precision (default: fp16 for fp16, else fp8)
    engine_settings: tuple[tuple[str, float | bool], ...] = ()   # overrides of the engine profile


@dataclass
class Answer:
    gpu: str
    model: str
    precision: str
    gpus: int
    parallel: str
    engine: str
    input_tokens: int
    output_tokens: int
    fits: bool
    reason: str | None
    meets_targets: bool
    tokens_per_s_per_gpu: float
    tokens_per_s: float
    ttft_ms: float
    tpot_ms: float
    batch: int
    max_batch: int
    weights_gb_per_gpu: float
    kv_cache_gb: float
    status: str
    curve: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self, with_curve: bool = False) -> dict[str, object]:
        out = asdict(self)
        if not with_curve:
            out.pop("curve")
        return out


def batch_grid(top: float, points: int = 48) -> np.ndarray:
    """Batch sizes from 1 to `top`, geometric, integers, `top` included."""
    if top < 1:
        return np.ones(1)
    grid = np.unique(np.round(np.geomspace(1.0, top, points)))
    return np.asarray(grid, dtype=np.float64)


def _check(q: Question) -> None:
    for name in ("gpus", "input_tokens", "output_tokens"):
        if getattr(q, name) < 1:
            raise PlannerError(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("tpot_ms", "ttft_ms"):
        value = getattr(q, name)
        if value is not None and value <= 0:
            raise PlannerError(f"--{name.replace('_', '-')} must be positive")
    if q.concurrency is not None and q.rate is not None:
        raise PlannerError("give --concurrency or --rate, not both")
    if (q.concurrency is not None and q.concurrency < 1) or (q.rate is not None and q.rate <= 0):
        raise PlannerError("--concurrency must be at least 1 and --rate positive")
    if q.pp < 1 or q.gpus % q.pp:
        raise PlannerError(f"--pp must divide --gpus ({q.gpus}) into equal stages")
    if q.parallel not in ("auto", "tp", "dep"):
        raise PlannerError(f"--parallel must be auto, tp or dep, not {q.parallel!r}")


def _why_not(q: Question, acc: catalog.Accelerator, mdl: catalog.Model, p: Params,
             top: float) -> str | None:
    stage = q.gpus // q.pp
    if stage > acc.nvlink_domain:
        return (f"{stage} GPUs per stage exceed one {acc.name} NVLink domain ({acc.nvlink_domain}); "
                f"use pipeline stages (--pp {-(-q.gpus // acc.nvlink_domain)} or more) so that "
                "each stage's tensor/expert parallelism stays inside a domain")
    if q.input_tokens + q.output_tokens > mdl.max_context:
        return (f"input+output tokens {q.input_tokens + q.output_tokens} exceed {mdl.name}'s "
                f"context of {mdl.max_context}")
    weights = float(weights_gpu(p)) / 1e9
    room = acc.memory_gb - float(p.workspace) / 1e9
    if weights > room:
        return (f"weights: {mdl.name} at {q.precision} needs {weights:.1f} GB per GPU over "
                f"{q.gpus} GPU(s); {acc.name} has {acc.memory_gb:g} GB, {room:.0f} GB after the "
                "engine's workspace; use more GPUs or a lower precision")
    if top < 1:
        per_seq = float(kv_bytes_per_token(p)) * (q.input_tokens + q.output_tokens) / 1e9
        return (f"KV cache: one sequence of {q.input_tokens + q.output_tokens} tokens needs "
                f"{per_seq:.2f} GB; {max(float(kv_free_bytes(p)), 0) / 1e9:.2f} GB is left "
                "after the weights")
    return None


def _operating_point(q: Question, grid: np.ndarray, request_s: np.ndarray,
                     top: float) -> tuple[int, str | None]:
    """Index of the batch a given load runs at: the concurrency itself (capped by what fits), or
    the smallest batch whose request rate (Little's law: batch / request time) covers `rate`."""
    if q.concurrency is not None:
        if q.concurrency > top:
            return len(grid) - 1, (f"concurrency {q.concurrency} exceeds the {int(top)} sequences "
                                   "that fit; the rest wait in the queue")
        return q.concurrency - 1, None
    rates = grid / request_s
    enough = np.nonzero(rates >= (q.rate or 0.0))[0]
    if enough.size == 0:
        return len(grid) - 1, (f"{q.rate:g} requests/s exceed this replica's capacity of "
                               f"{rates.max():.2f}; the queue grows without bound")
    return int(enough[0]), None


def _engine(q: Question) -> Engine:
    """The engine profile with the question's overrides (names checked)."""
    eng = find_engine(q.engine)
    known = [f for f in Engine.__dataclass_fields__ if f != "name"]
    overrides: dict[str, Any] = {}
    for key, value in q.engine_settings:
        if key not in known:
            raise PlannerError(f"unknown engine setting {key!r}; known: {', '.join(known)}")
        kind = Engine.__dataclass_fields__[key].type   # annotations are strings here
        overrides[key] = bool(value) if kind == "bool" else int(value) if kind == "int" else float(value)
    eng = replace(eng, **overrides)
    if eng.bench_settings and not {"max_batch", "max_num_tokens"} & overrides.keys():
        prec = catalog.precision(q.precision)
        kv = catalog.precision(q.kv_cache) if q.kv_cache else KV_DEFAULT[prec]
        cap, budget = bench_settings(catalog.accelerator(q.gpu), catalog.model(q.model), prec, kv,
                                     q.gpus // q.pp, q.pp, q.input_tokens, q.output_tokens,
                                     eng.kv_memory_fraction)
        eng = replace(eng, max_batch=cap, max_num_tokens=budget)
    return eng


def params_for(q: Question) -> Params:
    """The model's parameters for the question's deployment (names resolved, calibration applied)."""
    _check(q)
    acc, mdl = catalog.accelerator(q.gpu), catalog.model(q.model)
    dep = mdl.moe is not None and q.gpus // q.pp > 1 and q.parallel != "tp"
    kv = catalog.precision(q.kv_cache) if q.kv_cache is not None else None
    p = single(acc, mdl, catalog.precision(q.precision), q.gpus, dep, _engine(q), q.pp, kv)
    return scaled(p, q.factors) if q.factors is not None else p


def estimate(q: Question, *, with_curve: bool = False) -> Answer:
    """Answer `q`: the best batch meeting the targets (or the maximum throughput without any)."""
    _check(q)
    acc, mdl = catalog.accelerator(q.gpu), catalog.model(q.model)
    prec, eng = catalog.precision(q.precision), _engine(q)
    dep = mdl.moe is not None and q.gpus // q.pp > 1 and q.parallel != "tp"
    if q.parallel == "dep" and mdl.moe is None:
        raise PlannerError(f"--parallel dep needs a mixture-of-experts model; {mdl.name} is dense")
    p = params_for(q)
    isl, osl = np.array(float(q.input_tokens)), np.array(float(q.output_tokens))
    top = float(max_batch(p, isl, osl))
    reason = _why_not(q, acc, mdl, p, top)
    base = dict(gpu=acc.name, model=mdl.name, precision=prec, gpus=q.gpus,
                parallel=("dep" if dep else "tp") + (f"+pp{q.pp}" if q.pp > 1 else ""),
                engine=eng.name, input_tokens=q.input_tokens,
                output_tokens=q.output_tokens, weights_gb_per_gpu=round(float(weights_gpu(p)) / 1e9, 2),
                kv_cache_gb=round(max(float(kv_free_bytes(p)), 0.0) / 1e9, 1), status=acc.status)
    if reason is not None:
        return Answer(**base, fits=False, reason=reason, meets_targets=False,  # type: ignore[arg-type]
                      tokens_per_s_per_gpu=0.0, tokens_per_s=0.0, ttft_ms=0.0, tpot_ms=0.0,
                      batch=0, max_batch=0)
    loaded = q.concurrency is not None or q.rate is not None
    # Every batch size up to 8,192 (tile and wave effects make the curve jagged, so a coarse
    # grid can miss the best point under a target); the curve shown is thinned to 48 points.
    grid = np.arange(1.0, top + 1.0) if top <= 8192 else batch_grid(top, 8192)
    c = curve(p, grid, isl, osl)
    ok = np.ones(grid.shape, dtype=bool)
    if q.tpot_ms is not None:
        ok &= c.tpot_s * 1e3 <= q.tpot_ms
    if q.ttft_ms is not None:
        ok &= c.ttft_s * 1e3 <= q.ttft_ms
    tput = c.tokens_per_s_per_gpu
    if loaded:
        i, why = _operating_point(q, grid, c.ttft_s + osl * c.tpot_s, top)
        meets = bool(ok[i])
        if not meets:
            why = "; ".join(filter(None, [why, "the targets are not met at this load"]))
    else:
        meets = bool(ok.any())
        i = int(np.argmax(np.where(ok, tput, -1.0))) if meets else 0
        why = None if meets else ("no batch size meets the targets; the row shows batch 1 "
                                  f"(TTFT {c.ttft_s[0] * 1e3:.0f} ms, TPOT {c.tpot_s[0] * 1e3:.1f} ms)")
    shown = np.union1d(np.searchsorted(grid, batch_grid(top)), [i])
    points = [{"batch": float(grid[j]), "ttft_ms": float(c.ttft_s[j] * 1e3),
               "tpot_ms": float(c.tpot_s[j] * 1e3), "tokens_per_s_per_gpu": float(tput[j])}
              for j in shown] if with_curve else []
    return Answer(**base, fits=True, reason=why, meets_targets=meets,  # type: ignore[arg-type]
                  tokens_per_s_per_gpu=round(float(tput[i]), 1),
                  tokens_per_s=round(float(tput[i]) * q.gpus, 1),
                  ttft_ms=round(float(c.ttft_s[i]) * 1e3, 2), tpot_ms=round(float(c.tpot_s[i]) * 1e3, 3),
                  batch=int(grid[i]), max_batch=int(top), curve=points)
