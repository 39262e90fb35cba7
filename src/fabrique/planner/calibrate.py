"""Fit a deployment's efficiency factors to what it was measured doing.

Input: usage records (JSON lines), one per request: ``input_tokens``, ``output_tokens``,
``ttft_ms``, ``tpot_ms`` and ``concurrency`` (requests running on the deployment when it was
admitted). Output: three factors on the model's global ones — compute (GEMM and attention
peaks), bandwidth (HBM and NVLink) and overhead (fixed per-step costs) — chosen to minimize the
squared log error of TTFT and TPOT, with the error before and after.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from fabrique.planner.errors import PlannerError
from fabrique.planner.perf import Arr, Params, curve

PRIOR = 0.002  # weight of (log factor)^2 against the mean squared log error
FIELDS = ("input_tokens", "output_tokens", "ttft_ms", "tpot_ms", "concurrency")


@dataclass(frozen=True)
class Factors:
    compute: float = 1.0
    bandwidth: float = 1.0
    overhead: float = 1.0


@dataclass(frozen=True)
class Calibration:
    factors: Factors
    records: int
    groups: int
    rms_log_error_before: float
    rms_log_error_after: float

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "factors": asdict(self.factors)}


def scaled(p: Params, f: Factors | tuple[Arr, Arr, Arr]) -> Params:
    """`p` with its efficiency factors multiplied (scalars, or arrays that broadcast)."""
    c, b, o = (f.compute, f.bandwidth, f.overhead) if isinstance(f, Factors) else f
    c_, b_, o_ = (np.asarray(x, dtype=float) for x in (c, b, o))
    return replace(p, peak=p.peak * c_, attn_peak=p.attn_peak * c_,
                   gemm_peak=p.gemm_peak * c_[..., None], bw=p.bw * b_, link=p.link * b_,
                   t_step=p.t_step * o_, t_seq=p.t_seq * o_, t_layer=p.t_layer * o_)


def read_records(path: Path) -> Arr:
    """Records as an array [n, 5] in FIELDS order; errors name the file, line and field."""
    rows: list[list[float]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise PlannerError(f"{path}: cannot read the usage records ({exc.strerror})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise PlannerError(f"{path}:{number}: not a JSON object") from None
        if not isinstance(record, dict):
            raise PlannerError(f"{path}:{number}: not a JSON object")
        row = []
        for name in FIELDS:
            value = record.get(name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                raise PlannerError(f"{path}:{number}: {name}: a positive number is required")
            row.append(float(value))
        rows.append(row)
    if not rows:
        raise PlannerError(f"{path}: no usage records")
    return np.array(rows)


def _predict(p: Params, groups: Arr) -> tuple[Arr, Arr]:
    isl, osl, batch = groups[:, 0], groups[:, 1], groups[:, 4]
    c = curve(p, batch, isl, osl)
    return c.ttft_s * 1e3, c.tpot_s * 1e3


def _error(p: Params, groups: Arr, weights: Arr, measured: Arr) -> Arr:
    ttft, tpot = _predict(p, groups)
    err = (np.log(ttft) - measured[:, 0]) ** 2 + (np.log(tpot) - measured[:, 1]) ** 2
    total: Arr = (err * weights).sum(axis=-1) / (2.0 * weights.sum())
    return total


def calibrate(p: Params, records: Arr) -> Calibration:
    """Grid search in log space, coarse then fine, over the three factors."""
    keys, inverse, counts = np.unique(records[:, [0, 1, 4]], axis=0, return_inverse=True,
                                      return_counts=True)
    inverse = inverse.reshape(-1)
    logs = np.log(records[:, [2, 3]])
    measured = np.stack([np.bincount(inverse, logs[:, i]) / counts for i in (0, 1)], axis=1)
    groups = np.zeros((len(keys), 5))
    groups[:, [0, 1, 4]] = keys
    weights = counts.astype(float)
    before = float(_error(p, groups, weights, measured))
    center, span = np.zeros(3), math.log(8.0)
    for _ in range(4):
        axis = np.linspace(-span, span, 9)
        grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3) + center
        f = np.exp(grid)
        trial = scaled(p, (f[:, 0:1], f[:, 1:2], f[:, 2:3]))
        # A weak prior towards the global factors: measurements that cannot tell two factors
        # apart (all bandwidth-bound, say) leave them near 1 instead of anywhere on a ridge.
        prior = PRIOR * (grid ** 2).sum(axis=1)
        best = int(np.argmin(_error(trial, groups, weights, measured) + prior))
        center, span = grid[best], span / 4.0
    factors = Factors(*(round(float(x), 3) for x in np.exp(center)))
    after = float(_error(scaled(p, factors), groups, weights, measured))
    return Calibration(factors=factors, records=len(records), groups=len(keys),
                       rms_log_error_before=round(math.sqrt(before), 4),
                       rms_log_error_after=round(math.sqrt(after), 4))


def load_factors(path: Path) -> Factors:
    """Factors from the JSON `fabrique plan calibrate --json` wrote."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        f = data["factors"]
        return Factors(compute=float(f["compute"]), bandwidth=float(f["bandwidth"]),
                       overhead=float(f["overhead"]))
    except OSError as exc:
        raise PlannerError(f"{path}: cannot read the calibration ({exc.strerror})") from None
    except (ValueError, KeyError, TypeError):
        raise PlannerError(f"{path}: not a calibration (expected the JSON of "
                           "'fabrique plan calibrate --json', with factors.compute, "
                           "factors.bandwidth and factors.overhead)") from None
