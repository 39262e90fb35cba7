"""Sweeps agree with the one-configuration answer and cover the whole grid."""

from __future__ import annotations

import numpy as np
import pytest

from fabrique.planner import catalog
from fabrique.planner.engines import engine
from fabrique.planner.estimate import Question, estimate
from fabrique.planner.sweep import sweep


def test_grid_size_and_agreement_with_estimate() -> None:
    accs = [catalog.accelerator("H200"), catalog.accelerator("B200")]
    models = [catalog.model("llama-3.1-70b"), catalog.model("deepseek-r1"), catalog.model("mistral-7b")]
    r = sweep(accs, models, engine("trtllm"), precisions=("fp8", "fp4"), gpus=(1, 8),
              workloads=((1000, 1000), (2000, 300)), tpot_targets_ms=(30, 100), points=48)
    assert r.size == 2 * 3 * 2 * 2 * 2 * 2
    for i in range(r.size):
        a = estimate(Question(gpu=accs[int(r.accelerator[i])].name, gpus=int(r.gpus[i]),
                              model=models[int(r.model[i])].name,
                              precision=catalog.PRECISIONS[int(r.precision[i])],
                              input_tokens=int(r.input_tokens[i]), output_tokens=int(r.output_tokens[i]),
                              tpot_ms=float(r.tpot_target_ms[i])))
        assert bool(r.fits[i]) == a.fits
        if a.fits and a.meets_targets:
            assert r.tpot_ms[i] <= r.tpot_target_ms[i]
            # Different batch grids, same model: the best points agree closely.
            assert r.tokens_per_s_per_gpu[i] == pytest.approx(a.tokens_per_s_per_gpu, rel=0.12)
        else:
            assert r.tokens_per_s_per_gpu[i] == 0


def test_looser_targets_never_lower_throughput() -> None:
    r = sweep(catalog.accelerators(), catalog.models(), engine("trtllm"),
              tpot_targets_ms=(20, 50, 200))
    t = r.tokens_per_s_per_gpu.reshape(-1, 3)
    assert np.all(np.diff(t, axis=1) >= 0)
