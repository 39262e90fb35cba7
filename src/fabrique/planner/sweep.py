"""Sweeps: every accelerator x model x precision x replica size x workload x TPOT target at once,
as NumPy arrays (configurations along one axis, batch sizes along another)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fabrique.planner import catalog
from fabrique.planner.catalog import PRECISIONS, Accelerator, Model
from fabrique.planner.deploy import build
from fabrique.planner.engines import Engine
from fabrique.planner.perf import Arr, curve, max_batch, weights_per_gpu


@dataclass(frozen=True)
class SweepResult:
    """One entry per configuration (flattened grid); `index` names the grid axes."""

    accelerator: Arr      # index into accs
    model: Arr            # index into models
    precision: Arr        # index into PRECISIONS
    gpus: Arr
    input_tokens: Arr
    output_tokens: Arr
    tpot_target_ms: Arr
    fits: Arr             # bool: fits in memory and one NVLink domain
    tokens_per_s_per_gpu: Arr   # best throughput meeting the target (0 if none)
    batch: Arr
    tpot_ms: Arr
    ttft_ms: Arr

    @property
    def size(self) -> int:
        return int(self.fits.size)


def sweep(accs: Sequence[Accelerator], models: Sequence[Model], engine: Engine, *,
          precisions: Sequence[str] = PRECISIONS, gpus: Sequence[int] = (1, 2, 4, 8),
          workloads: Sequence[tuple[int, int]] = ((1000, 1000),),
          tpot_targets_ms: Sequence[float] = (20, 50, 100), points: int = 24) -> SweepResult:
    """Evaluate the whole grid; `points` batch sizes (geometric, 1 to the maximum) per config."""
    prec_idx = [PRECISIONS.index(catalog.precision(p)) for p in precisions]
    grids = np.meshgrid(np.arange(len(accs)), np.arange(len(models)), np.array(prec_idx),
                        np.array(gpus, dtype=float), np.arange(len(workloads)), indexing="ij")
    a, m, q, n, w = (g.reshape(-1, 1) for g in grids)
    moe = np.array([mdl.moe is not None for mdl in models])
    dep = (moe[m] & (n > 1)).astype(float)
    p = build(accs, models, engine, a.astype(float), m.astype(float), q.astype(float), n, dep)
    wl = np.array(workloads, dtype=float)
    isl, osl = wl[w, 0], wl[w, 1]
    top = max_batch(p, isl, osl)
    domain = np.array([acc.nvlink_domain for acc in accs], dtype=float)[a]
    room = p.mem - p.workspace
    fits = (top >= 1) & (n <= domain) & (weights_per_gpu(p) <= room)
    steps = np.linspace(0.0, 1.0, points)[None, :]
    batch = np.maximum(np.round(np.power(np.maximum(top, 1.0), steps)), 1.0)
    c = curve(p, batch, isl, osl)
    targets = np.asarray(tpot_targets_ms, dtype=float)
    ok = (c.tpot_s[..., None] * 1e3 <= targets) & fits[..., None]         # [configs, batch, target]
    score = np.where(ok, c.tokens_per_s_per_gpu[..., None], -1.0)
    best = score.argmax(axis=1)                                            # [configs, target]
    rows = np.arange(best.shape[0])[:, None]
    met = ok.any(axis=1)

    def pick(x: Arr) -> Arr:
        picked: Arr = np.where(met, x[rows, best], 0.0).reshape(-1)
        return picked

    k = targets.size

    def rep(x: Arr) -> Arr:
        repeated: Arr = np.repeat(x.reshape(-1), k)
        return repeated

    return SweepResult(
        accelerator=rep(a), model=rep(m), precision=rep(q), gpus=rep(n), input_tokens=rep(isl),
        output_tokens=rep(osl), tpot_target_ms=np.tile(targets, best.shape[0]),
        fits=rep(fits), tokens_per_s_per_gpu=pick(c.tokens_per_s_per_gpu), batch=pick(batch),
        tpot_ms=pick(c.tpot_s * 1e3), ttft_ms=pick(c.ttft_s * 1e3))
