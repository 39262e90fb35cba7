"""Plan → serve → measure → recalibrate, end to end on loopback: the simulated engine takes its
timing from the planner (made slower, as a real deployment may be), the client measures TTFT and
TPOT, and calibration moves the planner's prediction to what was measured."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from openai import OpenAI
from typer.testing import CliRunner

from fabrique.cli import app
from fabrique.planner.estimate import Question, params_for
from fabrique.planner.simprofile import sim_timing

DEPLOYMENT = ["--gpu", "H200", "--model", "llama-3.1-70b", "--precision", "fp8", "--gpus", "1"]
OUTPUT = 12
SLOWER = 1.5  # the served deployment decodes 1.5x slower than planned


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the simulator exited"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("the simulator did not start")


def _one(client: OpenAI, concurrency: int) -> dict[str, float]:
    start = time.perf_counter()
    first = last = 0.0
    usage = None
    stream = client.chat.completions.create(
        model="sim", max_tokens=OUTPUT, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Explain the capacity of a site. " * 20}])
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            last = time.perf_counter()
            first = first or last
        if chunk.usage:
            usage = chunk.usage
    assert usage is not None
    return {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens,
            "ttft_ms": (first - start) * 1e3,
            "tpot_ms": (last - first) * 1e3 / (usage.completion_tokens - 1),
            "concurrency": concurrency}


@pytest.fixture
def simulator() -> object:
    timing = sim_timing(params_for(Question(gpu="H200", gpus=1, model="llama-3.1-70b",
                                            precision="fp8", input_tokens=200,
                                            output_tokens=OUTPUT)), 200, OUTPUT, up_to=8)
    port = _port()
    cmd = [sys.executable, "-m", "fabrique", "simulate", "--port", str(port),
           "--decode-ms", f"{timing.decode_ms * SLOWER:.3f}", "--prefill-tps", f"{timing.prefill_tps:.0f}",
           "--ttft-ms", f"{timing.ttft_ms:.3f}", "--slowdown", f"{timing.slowdown:.5f}"]
    proc = subprocess.Popen(cmd, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ})
    try:
        _wait(port, proc)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_plan_serve_measure_recalibrate(simulator: str, tmp_path: Path) -> None:
    client = OpenAI(base_url=simulator, api_key="unused", max_retries=0)
    records = []
    for concurrency in (1, 2, 4, 8):
        with ThreadPoolExecutor(concurrency) as pool:
            records += list(pool.map(_one, [client] * concurrency, [concurrency] * concurrency))
    usage = tmp_path / "usage.jsonl"
    usage.write_text("".join(json.dumps(r) + "\n" for r in records))

    runner = CliRunner()
    fit = runner.invoke(app, ["plan", "calibrate", str(usage), *DEPLOYMENT, "--json"])
    assert fit.exit_code == 0, fit.output
    result = json.loads(fit.stdout)
    assert result["records"] == 15
    assert result["rms_log_error_after"] < result["rms_log_error_before"]
    calibration = tmp_path / "calibration.json"
    calibration.write_text(fit.stdout)

    measured = [r["tpot_ms"] for r in records if r["concurrency"] == 4]
    mean = sum(measured) / len(measured)
    prompt = str(records[0]["input_tokens"])
    ask = ["plan", "estimate", *DEPLOYMENT, "--input-tokens", prompt, "--output-tokens", str(OUTPUT),
           "--concurrency", "4", "--json"]
    planned = json.loads(runner.invoke(app, ask).stdout)["tpot_ms"]
    recalibrated = json.loads(runner.invoke(app, [*ask, "--calibration", str(calibration)]).stdout)
    # Before: the plan misses the slower deployment by ~SLOWER; after: within 15 %.
    assert mean / planned > 1.3
    assert recalibrated["tpot_ms"] == pytest.approx(mean, rel=0.15)
