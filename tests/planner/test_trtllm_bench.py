"""trtllm-bench's own choice of batch cap and token budget, reproduced by hand."""

from __future__ import annotations

from fabrique.planner import catalog
from fabrique.planner.trtllm_bench import bench_settings


def test_dense_model_gets_about_what_memory_holds() -> None:
    # Llama 3.1 8B FP8 on one H100: (74.5 - 7.48) GiB x 0.9 / (64 KiB x 2000 tokens) = 494
    # requests -> rounded up to a multiple of 128 -> 512; tokens 494 x 2 -> the 2,048 floor
    cap, budget = bench_settings(catalog.accelerator("H100"), catalog.model("llama-3.1-8b"), "fp8",
                                 "fp8", 1, 1, 1000, 1000, 0.9)
    assert (cap, budget) == (512, 2048)


def test_mla_model_is_capped_far_below_its_memory() -> None:
    # DeepSeek-R1 FP8 on 8 H200 with a 2-byte KV estimate: the tool counts 128 heads x 56 dims
    # x 2 (K and V) per layer, 25x the real MLA latent: ~117 requests -> 128 per rank
    cap, budget = bench_settings(catalog.accelerator("H200"), catalog.model("deepseek-r1"), "fp8",
                                 "fp16", 8, 1, 1000, 1000, 0.9)
    assert (cap, budget) == (128, 2048)


def test_long_prompts_raise_the_token_budget() -> None:
    cap, budget = bench_settings(catalog.accelerator("H200"), catalog.model("llama-3.1-8b"), "fp8",
                                 "fp8", 1, 1, 2048, 128, 0.9)
    assert budget > 8192 and budget % 1024 == 0 and cap >= 64
