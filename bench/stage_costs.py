"""What each optional part of the request path costs: the gateway's CPU per request with the
audit ledger on (sync full, sync normal) and off, beside an older checkout as the baseline,
all on the same machine in one run.

Each variant is a real ``fabrique serve`` process in front of the same minimal upstream (an
aiohttp server answering a chat completion at once, in its own process). A load generator
sends a one-message prompt at concurrency 32, then at concurrency 1; the gateway's CPU time
(psutil, user + system) over the requests gives CPU per request. Loopback only; every loop is
bounded in count; every process is stopped at the end.

    .venv/bin/python bench/stage_costs.py                       # 3,000 + 600 requests a variant
    .venv/bin/python bench/stage_costs.py --quick               # 1,000 + 200
    .venv/bin/python bench/stage_costs.py --base-src ../old/src # add an older checkout's gateway

The last line of stdout is the result as one JSON object; it is also written to
``bench/results/stage_costs.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results" / "stage_costs.json"
FABRIQUE = [sys.executable, "-m", "fabrique"]
ANSWER = json.dumps({
    "id": "c1", "object": "chat.completion", "created": 1, "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}}).encode()
PROMPT = {"model": "m", "max_tokens": 5,
          "messages": [{"role": "user", "content": "Bonjour, quelle heure est-il à Lyon ?"}]}
VARIANTS: dict[str, dict[str, Any]] = {
    "ledger off": {"ledger": {"enabled": False}},
    "ledger sync normal": {"ledger": {"sync": "normal"}},
    "defaults (ledger sync full)": {},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def upstream(port: int) -> None:
    """The upstream's process: answers every chat completion at once."""
    from aiohttp import web

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=ANSWER, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


async def load(url: str, key: str, requests: int, concurrency: int) -> int:
    import aiohttp

    errors = 0
    gate = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async def one() -> None:
            nonlocal errors
            async with gate, session.post(url, json=PROMPT,
                                          headers={"Authorization": f"Bearer {key}"}) as resp:
                await resp.read()
                errors += resp.status != 200
        await asyncio.gather(*[one() for _ in range(requests)])
    return errors


def measure(name: str, config: dict[str, Any], upstream_port: int, counts: tuple[int, int],
            src: Path | None, workdir: Path) -> dict[str, Any]:
    import psutil
    import yaml

    home = workdir / name.replace(" ", "-").replace("(", "").replace(")", "")
    home.mkdir()
    cfg = {"data_dir": str(home), "server": {"access_log": False},
           "providers": [{"name": "up", "type": "openai_compatible", "jurisdiction": "FR",
                          "hosting": "self-hosted", "base_url": f"http://127.0.0.1:{upstream_port}/v1"}],
           "models": [{"name": "m", "deployments": [{"provider": "up", "model": "m"}]}], **config}
    path = home / "fabrique.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "FABRIQUE_HOME": str(home)}
    env.pop("FABRIQUE_CONFIG", None)
    if src is not None:
        env["PYTHONPATH"] = str(src.resolve())
    made = subprocess.run([*FABRIQUE, "keys", "create", "--tenant", "bench", "--config", str(path)],
                          capture_output=True, text=True, env=env, timeout=120, check=True)
    key = made.stdout.strip().splitlines()[-1]
    port = free_port()
    gateway = subprocess.Popen([*FABRIQUE, "serve", "--config", str(path), "--port", str(port)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        deadline = time.monotonic() + 30
        while True:  # bounded wait for the port
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or gateway.poll() is not None:
                    raise RuntimeError(f"{name}: the gateway did not start") from None
                time.sleep(0.1)
        asyncio.run(load(url, key, 300, 32))  # warm-up
        process = psutil.Process(gateway.pid)
        out: dict[str, Any] = {"variant": name, "config": config, "src": str(src) if src else None}
        for concurrency, requests in ((32, counts[0]), (1, counts[1])):
            cpu0, wall0 = sum(process.cpu_times()[:2]), time.perf_counter()
            errors = asyncio.run(load(url, key, requests, concurrency))
            cpu, wall = sum(process.cpu_times()[:2]) - cpu0, time.perf_counter() - wall0
            out[f"c{concurrency}"] = {"requests": requests, "errors": errors,
                                      "cpu_us_per_request": round(cpu / requests * 1e6, 1),
                                      "requests_per_s": round(requests / wall, 1)}
        return out
    finally:
        gateway.terminate()
        try:
            gateway.wait(timeout=15)
        except subprocess.TimeoutExpired:
            gateway.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 + 200 requests per variant")
    parser.add_argument("--base-src", type=Path, help="an older checkout's src/ as a baseline "
                        "(run with its own defaults)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    counts = (1000, 200) if args.quick else (3000, 600)
    port = free_port()
    server = multiprocessing.Process(target=upstream, args=(port,), daemon=True)
    server.start()
    rows = []
    try:
        time.sleep(1.0)
        with tempfile.TemporaryDirectory(prefix="stage-costs-") as tmp:
            variants = ([("baseline", {}, args.base_src)] if args.base_src else [])
            variants += [(name, config, None) for name, config in VARIANTS.items()]
            for name, config, src in variants:
                rows.append(measure(name, config, port, counts, src, Path(tmp)))
                print(f"{name:30s} c=32 {rows[-1]['c32']['cpu_us_per_request']:8.1f} µs/req   "
                      f"c=1 {rows[-1]['c1']['cpu_us_per_request']:8.1f} µs/req", flush=True)
    finally:
        server.kill()
    result = {"benchmark": "stage_costs", "mode": "quick" if args.quick else "full",
              "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "nproc": os.cpu_count(),
              "variants": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
