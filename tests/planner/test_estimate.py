"""The one-line question: fits, targets, and the shape of the throughput-latency curve."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fabrique.planner.errors import PlannerError, UnknownName
from fabrique.planner.estimate import Question, estimate

Q = Question(gpu="H200", gpus=1, model="llama-3.1-70b", precision="fp8",
             input_tokens=1000, output_tokens=1000)


def test_max_throughput_without_targets_batches_near_the_memory_limit() -> None:
    a = estimate(Q)
    assert a.fits and a.meets_targets and a.reason is None
    assert a.max_batch / 2 < a.batch <= a.max_batch
    assert a.tokens_per_s_per_gpu == pytest.approx(a.batch / (a.tpot_ms / 1e3), rel=1e-3)


def test_a_tpot_target_trades_throughput_for_latency() -> None:
    free = estimate(Q)
    tight = estimate(Question(**{**Q.__dict__, "tpot_ms": 30.0}))
    assert tight.tpot_ms <= 30.0
    assert tight.batch < free.batch
    assert tight.tokens_per_s_per_gpu < free.tokens_per_s_per_gpu


def test_unreachable_targets_say_so() -> None:
    a = estimate(Question(**{**Q.__dict__, "tpot_ms": 0.5}))
    assert a.fits and not a.meets_targets
    assert a.reason is not None and "no batch size meets the targets" in a.reason


def test_weights_that_do_not_fit_are_explained() -> None:
    a = estimate(Question(gpu="H100", gpus=1, model="llama-3.1-405b", precision="fp16",
                          input_tokens=1000, output_tokens=1000))
    assert not a.fits
    assert a.reason is not None and a.reason.startswith("weights: llama-3.1-405b at fp16 needs 811")


def test_a_stage_larger_than_the_nvlink_domain_is_refused_with_the_way_out() -> None:
    a = estimate(Question(gpu="H100", gpus=16, model="llama-3.1-405b", precision="fp16",
                          input_tokens=1000, output_tokens=1000))
    assert not a.fits and a.reason is not None and "NVLink domain (8)" in a.reason
    assert "--pp 2" in a.reason


def test_pipeline_stages_across_domains_fit_what_one_domain_cannot() -> None:
    a = estimate(Question(gpu="H100", gpus=16, pp=2, model="llama-3.1-405b", precision="fp16",
                          input_tokens=1000, output_tokens=1000))
    assert a.fits and a.parallel == "tp+pp2" and a.tokens_per_s_per_gpu > 0
    with pytest.raises(PlannerError, match="--pp must divide"):
        estimate(Question(gpu="H100", gpus=8, pp=3, model="llama-3.1-70b", precision="fp8",
                          input_tokens=1000, output_tokens=1000))


def test_pipeline_stages_trade_latency_for_memory() -> None:
    def ask(gpus: int, pp: int) -> float:
        return estimate(Question(gpu="H100", gpus=gpus, pp=pp, model="llama-3.1-70b", precision="fp8",
                                 input_tokens=1000, output_tokens=1000, concurrency=64)).tpot_ms
    # The same 64 sequences on 2 stages of TP4 run as 2 microbatches of 32: each round costs
    # about what TP4 costs at 32, plus the second microbatch's fixed costs and the hand-offs.
    tp4_at_32 = estimate(Question(gpu="H100", gpus=4, model="llama-3.1-70b", precision="fp8",
                                  input_tokens=1000, output_tokens=1000, concurrency=32)).tpot_ms
    assert tp4_at_32 < ask(8, 2) < 1.3 * tp4_at_32


def test_context_longer_than_the_model_allows() -> None:
    a = estimate(Question(gpu="H200", gpus=1, model="llama-2-70b", precision="fp8",
                          input_tokens=4000, output_tokens=1000))
    assert not a.fits and a.reason is not None and "context of 4096" in a.reason


def test_kv_cache_room_for_not_even_one_sequence() -> None:
    a = estimate(Question(gpu="H100", gpus=1, model="llama-3.1-70b", precision="fp8",
                          input_tokens=100_000, output_tokens=1000))
    assert not a.fits and a.reason is not None and a.reason.startswith("KV cache")


def test_bad_values_and_names() -> None:
    with pytest.raises(PlannerError, match="--gpus must be at least 1"):
        estimate(Question(**{**Q.__dict__, "gpus": 0}))
    with pytest.raises(UnknownName, match="closest first"):
        estimate(Question(**{**Q.__dict__, "model": "gpt-5"}))
    with pytest.raises(PlannerError, match="dense"):
        estimate(Question(**{**Q.__dict__, "parallel": "dep"}))


def test_fp4_is_faster_than_fp8_on_blackwell_not_on_hopper() -> None:
    def tput(gpu: str, precision: str) -> float:
        return estimate(Question(gpu=gpu, gpus=1, model="llama-3.1-70b", precision=precision,
                                 input_tokens=1000, output_tokens=1000)).tokens_per_s_per_gpu
    assert tput("B200", "fp4") > 1.2 * tput("B200", "fp8")
    # Hopper computes FP4 weights at FP8: only memory is saved (bigger batches), never FLOPs.
    assert tput("H200", "fp4") < 1.5 * tput("H200", "fp8")


def test_moe_uses_expert_parallelism_and_reads_only_the_experts_it_needs() -> None:
    a = estimate(Question(gpu="B200", gpus=8, model="deepseek-r1", precision="fp4",
                          input_tokens=1000, output_tokens=1000, tpot_ms=50))
    assert a.parallel == "dep" and a.fits and a.meets_targets


@settings(max_examples=25, deadline=None)
@given(isl=st.integers(16, 8000), osl=st.integers(16, 4000),
       gpu=st.sampled_from(["H100", "H200", "B200", "GB200"]),
       model=st.sampled_from(["llama-3.1-8b", "mistral-7b", "lucie-7b", "mixtral-8x7b"]))
def test_curve_is_sane_for_any_workload(isl: int, osl: int, gpu: str, model: str) -> None:
    a = estimate(Question(gpu=gpu, gpus=1, model=model, precision="fp8", input_tokens=isl,
                          output_tokens=osl), with_curve=True)
    if not a.fits:
        return
    tpot = np.array([p["tpot_ms"] for p in a.curve])
    tput = np.array([p["tokens_per_s_per_gpu"] for p in a.curve])
    assert np.all(tpot > 0) and np.all(tput > 0)
    assert np.all(np.diff(tpot) > 0)          # a bigger batch never makes a step faster
    assert tput[-1] > tput[0]                  # batching pays
    assert a.tokens_per_s_per_gpu == pytest.approx(tput.max(), rel=1e-3)


def test_a_given_concurrency_is_the_operating_batch() -> None:
    a = estimate(Question(**{**Q.__dict__, "concurrency": 16}))
    assert a.batch == 16 and a.reason is None
    over = estimate(Question(**{**Q.__dict__, "concurrency": 100_000}))
    assert over.batch == over.max_batch and over.reason is not None and "queue" in over.reason


def test_an_arrival_rate_maps_to_a_batch_by_littles_law() -> None:
    a = estimate(Question(**{**Q.__dict__, "rate": 1.0}))
    request_s = a.ttft_ms / 1e3 + Q.output_tokens * a.tpot_ms / 1e3
    assert a.batch / request_s >= 1.0
    assert (a.batch - 1) / request_s < 1.0 + 0.05   # the smallest batch that keeps up
    busier = estimate(Question(**{**Q.__dict__, "rate": 2.0}))
    assert busier.batch > a.batch and busier.tpot_ms >= a.tpot_ms
    flood = estimate(Question(**{**Q.__dict__, "rate": 1e6}))
    assert flood.reason is not None and "capacity" in flood.reason


def test_concurrency_and_rate_exclude_each_other() -> None:
    with pytest.raises(PlannerError, match="not both"):
        estimate(Question(**{**Q.__dict__, "rate": 1.0, "concurrency": 4}))


def test_a_smaller_kv_cache_holds_more_sequences() -> None:
    base = Question(gpu="H100", gpus=1, model="llama-3.1-8b", precision="fp8", input_tokens=4000,
                    output_tokens=1000)
    fp16, fp8, fp4 = (estimate(Question(**{**base.__dict__, "kv_cache": kv})) for kv in
                      ("fp16", "fp8", "fp4"))
    assert fp16.max_batch < fp8.max_batch < fp4.max_batch
    assert fp8.max_batch == estimate(base).max_batch          # FP8 weights default to an FP8 cache
    assert fp4.tokens_per_s_per_gpu > fp16.tokens_per_s_per_gpu
