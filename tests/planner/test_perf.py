"""The performance model's pieces: what they compute, checked against independent arithmetic."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from fabrique.planner import catalog
from fabrique.planner.deploy import single
from fabrique.planner.engines import engine
from fabrique.planner.perf import _poisson_max, _tile_efficiency, kv_bytes_per_token, step_time


@pytest.mark.parametrize(("lam", "n"), [(0.05, 8), (0.5, 8), (2.0, 4), (6.0, 16), (30.0, 8)])
def test_expected_poisson_maximum_matches_sampling(lam: float, n: int) -> None:
    rng = np.random.default_rng(7)
    sampled = rng.poisson(lam, size=(200_000, n)).max(axis=1).mean()
    computed = float(_poisson_max(np.array(lam), np.array(float(n))))
    # exact below lam = 12; the Gaussian extreme above is an approximation
    assert computed == pytest.approx(sampled, rel=0.02 if lam <= 12 else 0.1)


def test_one_rank_is_its_mean() -> None:
    assert float(_poisson_max(np.array(3.0), np.array(1.0))) == pytest.approx(3.0, rel=1e-6)


def test_tile_efficiency() -> None:
    sms = np.array(132.0)
    # 128 rows x 256 columns x 132 tiles: one full wave
    assert float(_tile_efficiency(np.array(128.0), np.array(256.0 * 132), sms)) == pytest.approx(1.0)
    # 129 rows pad to 256: just over half useful
    assert float(_tile_efficiency(np.array(129.0), np.array(256.0 * 132), sms)) == pytest.approx(129 / 256)
    # 133 tiles: two waves, the second nearly empty
    assert float(_tile_efficiency(np.array(128.0), np.array(256.0 * 133), sms)) == pytest.approx(133 / 264)


def test_kv_bytes_gqa_and_mla() -> None:
    eng = engine("trtllm")
    llama = single(catalog.accelerator("H200"), catalog.model("llama-3.1-70b"), "fp8", 1, False, eng)
    assert float(kv_bytes_per_token(llama)) == 80 * 2 * 8 * 128 * 1.0     # FP8 cache
    # MLA's latent is not split by heads: under TP every rank holds all of it
    ds = single(catalog.accelerator("B200"), catalog.model("deepseek-r1"), "fp4", 8, False, eng)
    assert float(kv_bytes_per_token(ds)) == 61 * 576 * 1.0 * 8           # MLA latent on every TP rank
    dep = single(catalog.accelerator("B200"), catalog.model("deepseek-r1"), "fp4", 8, True, eng)
    assert float(kv_bytes_per_token(dep)) == 61 * 576 * 1.0              # DEP: each rank its own


def test_balancing_prefills_over_attention_dp_ranks_shortens_the_step() -> None:
    acc, mdl = catalog.accelerator("B200"), catalog.model("deepseek-r1")
    off = single(acc, mdl, "fp4", 8, True, engine("trtllm"))
    on = single(acc, mdl, "fp4", 8, True, replace(engine("trtllm"), attention_dp_balance=True))
    args = (np.array(2048.0), np.array(1024.0), np.array(2048.0), np.array(1024.0))
    assert float(step_time(on, *args)) < float(step_time(off, *args))
    tp = single(catalog.accelerator("B200"), catalog.model("llama-3.1-70b"), "fp4", 8, False,
                engine("trtllm"))
    tp_on = replace(tp, dp_balance=np.array(1.0))
    assert float(step_time(tp, *args)) == float(step_time(tp_on, *args))   # TP has no DP ranks
