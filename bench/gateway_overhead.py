#!/usr/bin/env python3
"""What does Fabrique add to a request? Latency, CPU and memory, against a direct call and LiteLLM.

One run, on 127.0.0.1 only, with every process cleaned up at the end:

- a fast OpenAI-like upstream (aiohttp.web, its own process) that answers at once:
  a chat completion JSON with usage, or an SSE stream of N chunks, a usage chunk when
  ``stream_options.include_usage`` is set, then ``data: [DONE]``;
- the Fabrique gateway (``fabrique serve``, its own process, auth on with a real key);
- LiteLLM's proxy, from its own virtual environment (``bench/.venv-litellm``, made here
  when missing; never a dependency of fabrique), with a master key;
- a load generator (an aiohttp client, its own process) that calls the upstream directly,
  through Fabrique and through LiteLLM: non-streaming, 5-chunk and 50-chunk streams, at
  concurrency 1, 32 and 128 (at 1, direct and gateway calls alternate), plus 5- and
  50-chunk streams paced 2 ms a chunk at concurrency 32; then 100,000 requests (10,000
  with --quick) for the gateway's RSS.

The figure that carries over between machines is the gateway's CPU time per request
(psutil ``cpu_times`` of the gateway before and after each scenario): the load generator
and the upstream share the same cores, so requests/s and latencies under load depend on
the machine and on that contention.

    .venv/bin/python bench/gateway_overhead.py            # full run, about 5 minutes
    .venv/bin/python bench/gateway_overhead.py --quick    # < 60 s, no LiteLLM, JSON on the last line
    .venv/bin/python bench/gateway_overhead.py --quick --fabrique-src ../other/src   # A/B a change
    .venv/bin/python bench/gateway_overhead.py --profile  # + py-spy profiles of the gateway

Results: tables on stdout, ``bench/results/gateway_overhead.json`` and ``.md`` (see README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import platform
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "results" / "gateway_overhead.json"
LITELLM_VENV = BENCH_DIR / ".venv-litellm"
HOST = "127.0.0.1"
PUBLIC_MODEL = "bench-model"  # what clients ask the gateways for
UPSTREAM_MODEL = "bench-upstream"  # what the upstream is asked for
PACED_SUFFIX = "-paced"  # a model name ending so makes the upstream space its chunks
PACE_S = 0.002
UPSTREAM_KEY = "sk-bench-upstream"
LITELLM_MASTER_KEY = "sk-bench-litellm-master"
REQUEST_TIMEOUT_S = 30.0
MIB = 1024 * 1024

# (name, stream, chunks asked for as max_tokens, paced)
KINDS = {
    "chat": (False, 16, False),
    "stream5": (True, 5, False),
    "stream50": (True, 50, False),
    "stream5-paced": (True, 5, True),
    "stream50-paced": (True, 50, True),
}
CONCURRENCIES = (1, 32, 128)

TARGETS = {
    "rps_per_core": 3000.0,  # non-streaming at concurrency 32, from gateway CPU time
    "added_p50_ms": 0.6,  # at concurrency 1, non-streaming
    "added_p99_ms": 2.0,
    "cpu_us_per_chunk": 30.0,
    "rss_mib": 100.0,
    "rss_growth_mib": 5.0,  # "flat": growth from the first sample after warm-up to the end
}


# ---------------------------------------------------------------------------------------
# The upstream: a minimal OpenAI-like server that answers at once.
# ---------------------------------------------------------------------------------------

def upstream_main(port: int) -> None:
    import orjson
    from aiohttp import web

    created = int(time.time())
    cache: dict[tuple[str, int, bool, bool], Any] = {}

    def completion(model: str, n: int) -> bytes:
        return orjson.dumps({
            "id": "chatcmpl-bench", "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "finish_reason": "length", "logprobs": None,
                         "message": {"role": "assistant", "content": " ".join(["word"] * n)}}],
            "usage": {"prompt_tokens": 20, "completion_tokens": n, "total_tokens": 20 + n}})

    def chunks(model: str, n: int, usage: bool) -> list[bytes]:
        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return b"data: " + orjson.dumps({
                "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": created,
                "model": model, "choices": choices, **extra}) + b"\n\n"
        out = []
        for i in range(n):
            delta = {"role": "assistant", "content": "word"} if i == 0 else {"content": " word"}
            out.append(chunk([{"index": 0, "delta": delta, "logprobs": None,
                               "finish_reason": "length" if i == n - 1 else None}]))
        if usage:
            out.append(chunk([], usage={"prompt_tokens": 20, "completion_tokens": n,
                                        "total_tokens": 20 + n}))
        out.append(b"data: [DONE]\n\n")
        return out

    async def chat(request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        model = str(body.get("model") or UPSTREAM_MODEL)
        n = max(1, int(body.get("max_tokens") or body.get("max_completion_tokens") or 16))
        stream = bool(body.get("stream"))
        usage = (body.get("stream_options") or {}).get("include_usage") is True
        stats["requests"] += 1
        key = (model, n, stream, usage)
        answer = cache.get(key)
        if answer is None:
            answer = cache[key] = chunks(model, n, usage) if stream else completion(model, n)
        if not stream:
            return web.Response(body=answer, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        await response.prepare(request)
        paced = model.endswith(PACED_SUFFIX)
        for part in answer:
            await response.write(part)
            if paced:
                await asyncio.sleep(PACE_S)
        await response.write_eof()
        return response

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": UPSTREAM_MODEL, "object": "model"}]})

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def get_stats(request: web.Request) -> web.Response:
        return web.json_response(stats)

    stats = {"connections": 0, "requests": 0}
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_get("/stats", get_stats)

    async def serve() -> None:
        # aiohttp's server, with a protocol factory that counts the TCP connections accepted:
        # a gateway that pools its upstream connections opens few.
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        server = runner.server
        assert server is not None

        def protocol() -> Any:
            stats["connections"] += 1
            return server()

        await asyncio.get_running_loop().create_server(protocol, HOST, port, backlog=1024)
        await asyncio.Event().wait()  # until the bench stops this process

    loop = _new_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(serve())


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


# ---------------------------------------------------------------------------------------
# The load generator: JSON lines on stdin/stdout. One "run" command, then for each phase
# (a warm-up, then one or more measured segments) it waits for "go" and answers a summary.
# ---------------------------------------------------------------------------------------

def load_main() -> None:
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(_load_loop())
    finally:
        loop.close()


async def _load_loop() -> None:
    loop = asyncio.get_running_loop()

    async def readline() -> str:
        return await loop.run_in_executor(None, sys.stdin.readline)

    while True:
        line = await readline()
        if not line or line.strip() == "quit":
            return
        cmd = json.loads(line)
        await _load_run(cmd, readline)


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _load_run(cmd: dict[str, Any], readline: Any) -> None:
    """One scenario. ``targets`` has one entry, or two that are called alternately (paired
    runs at concurrency 1: the gateway and the direct call see the same machine noise)."""
    import aiohttp

    targets = [(t["url"], json.dumps(t["body"]).encode(),
                {"Content-Type": "application/json", **t["headers"]}) for t in cmd["targets"]]
    concurrency = int(cmd["concurrency"])
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     skip_auto_headers=("User-Agent",)) as session:
        for phase in cmd["phases"]:
            await readline()  # "go"
            _emit({"targets": await _phase(session, targets, bool(cmd["stream"]), concurrency,
                                           int(phase["max_requests"]), float(phase["max_seconds"]))})


class BadAnswer(Exception):
    pass


async def _phase(session: Any, targets: list[tuple[str, bytes, dict[str, str]]], stream: bool,
                 concurrency: int, max_requests: int, max_seconds: float) -> list[dict[str, Any]]:
    k = len(targets)
    latencies: list[list[float]] = [[] for _ in targets]
    ttfbs: list[list[float]] = [[] for _ in targets]
    errors: list[Counter[str]] = [Counter() for _ in targets]
    chunks = [0] * k
    state = {"left": max_requests, "issued": 0}
    perf = time.perf_counter

    async def one(url: str, body: bytes, headers: dict[str, str]) -> tuple[float, int]:
        async with session.post(url, data=body, headers=headers) as resp:
            if resp.status != 200:
                await resp.read()
                raise BadAnswer(f"http_{resp.status}")
            if not stream:
                data = await resp.read()
                if b'"usage"' not in data:
                    raise BadAnswer("no_usage")
                return 0.0, 0
            first = 0.0
            n = 0
            tail = b""
            async for chunk in resp.content.iter_any():
                if not first:
                    first = perf()
                n += chunk.count(b"data: ")
                tail = (tail + chunk)[-32:]
            if not tail.endswith(b"data: [DONE]\n\n"):
                raise BadAnswer("no_done")
            return first, n

    async def worker() -> None:
        while state["left"] > 0 and perf() < deadline:
            state["left"] -= 1
            i = state["issued"] % k
            state["issued"] += 1
            t0 = perf()
            try:
                first, n = await one(*targets[i])
            except BadAnswer as exc:
                errors[i][str(exc)] += 1
                continue
            except Exception as exc:
                errors[i][type(exc).__name__] += 1
                await asyncio.sleep(0.001)  # a refused connection must not spin the CPU
                continue
            latencies[i].append(perf() - t0)
            if first:
                ttfbs[i].append(first - t0)
            chunks[i] += n

    started = perf()
    deadline = started + max_seconds
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    duration = perf() - started
    busy = sum(sum(lat) for lat in latencies) or 1.0
    out = []
    for i in range(k):
        ok = len(latencies[i])
        # Alternating targets share the time: each one's rate is over its share of it.
        share = sum(latencies[i]) / busy if k > 1 else 1.0
        out.append({"ok": ok, "errors": dict(errors[i]), "duration_s": duration,
                    "rps": ok / (duration * share) if duration > 0 and share > 0 else 0.0,
                    "latency_ms": _summary(latencies[i]),
                    "ttfb_ms": _summary(ttfbs[i]) if ttfbs[i] else None,
                    "chunks_per_request": chunks[i] / ok if ok and stream else None})
    return out


def _summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    s = sorted(values)

    def pct(p: float) -> float:
        return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))] * 1000

    return {"p50": pct(50), "p90": pct(90), "p99": pct(99), "max": s[-1] * 1000,
            "mean": sum(s) / len(s) * 1000, "n": len(s)}


# ---------------------------------------------------------------------------------------
# Process management: every child in its own session, killed with the bench.
# ---------------------------------------------------------------------------------------

def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL if the bench dies without cleaning up (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Children:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.all: list[Child] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None,
              stdin: bool = False, stdout_pipe: bool = False) -> Child:
        log = self.workdir / f"{name}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE if stdout_pipe else out, stderr=out, env=env,
                start_new_session=True, preexec_fn=_die_with_parent, cwd=self.workdir)
        child = Child(name, popen, log)
        self.all.append(child)
        return child

    def stop(self, child: Child, grace_s: float = 5.0) -> None:
        if child.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGTERM)
            try:
                child.popen.wait(grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.popen.wait(grace_s)
        # Whatever the child left in its process group (LiteLLM's helpers, say).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        for stream in (child.popen.stdin, child.popen.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if child in self.all:
            self.all.remove(child)

    def stop_all(self) -> None:
        for child in reversed(list(self.all)):
            self.stop(child)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(url: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
         timeout: float = 10.0) -> tuple[int, bytes]:
    assert url.startswith(f"http://{HOST}:"), url
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json",
                                                          **(headers or {})})
    try:
        with _NO_PROXY_OPENER.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(child: Child, url: str, timeout_s: float, check: Any = None) -> None:
    """Poll ``url`` until it answers 200 (and ``check(body)``), the child dies, or time is up."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if child.popen.poll() is not None:
            raise RuntimeError(f"{child.name} exited with {child.popen.returncode}:\n{child.tail()}")
        try:
            status, body = http(url, timeout=2.0)
            if status == 200 and (check is None or check(body)):
                return
            last = f"HTTP {status}: {body[:200]!r}"
        except (OSError, urllib.error.URLError) as exc:
            last = str(exc)
        time.sleep(0.1)
    raise RuntimeError(f"{child.name} not ready after {timeout_s:.0f} s ({last}):\n{child.tail()}")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra)
    return env


# ---------------------------------------------------------------------------------------
# Measuring processes.
# ---------------------------------------------------------------------------------------

def _psutil() -> Any:
    import psutil
    return psutil


def tree(pid: int) -> list[Any]:
    psutil = _psutil()
    try:
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for proc in tree(pid):
        with contextlib.suppress(_psutil().Error):
            t = proc.cpu_times()
            total += t.user + t.system
    return total


def own_cpu_seconds() -> float:
    """This process's CPU seconds, its children left out (they are measured on their own)."""
    t = _psutil().Process().cpu_times()
    return float(t.user + t.system)


def rss_mib(pid: int) -> float:
    total = 0
    for proc in tree(pid):
        with contextlib.suppress(_psutil().Error):
            total += proc.memory_info().rss
    return total / MIB


class LoadGen:
    """The load-generator process, driven over its stdin/stdout."""

    def __init__(self, child: Child) -> None:
        self.child = child
        self._buf = b""

    def send(self, obj: Any) -> None:
        stdin = self.child.popen.stdin
        assert stdin is not None
        stdin.write((obj if isinstance(obj, str) else json.dumps(obj)).encode() + b"\n")
        stdin.flush()

    def recv(self, timeout_s: float) -> dict[str, Any]:
        stdout = self.child.popen.stdout
        assert stdout is not None
        fd = stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"load generator silent for {timeout_s:.0f} s:\n{self.child.tail()}")
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if ready:
                data = os.read(fd, 65536)
                if not data:
                    raise RuntimeError(f"load generator exited:\n{self.child.tail()}")
                self._buf += data
        line, _, self._buf = self._buf.partition(b"\n")
        return dict(json.loads(line))


@dataclass
class Target:
    name: str  # "direct", "fabrique" or "litellm"
    url: str
    model: str
    headers: dict[str, str]
    pid: int | None = None  # the gateway's process, when there is one


@dataclass
class Bounds:
    seconds: float
    requests: int
    warm_seconds: float
    warm_requests: int


def request_body(kind: str, model: str) -> dict[str, Any]:
    stream, n, paced = KINDS[kind]
    body: dict[str, Any] = {
        "model": model + (PACED_SUFFIX if paced else ""),
        "messages": [{"role": "system", "content": "You are a benchmark. Answer briefly."},
                     {"role": "user", "content": "Say hello to the gateway benchmark."}],
        "max_tokens": n, "temperature": 0}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores), since boot."""
    t = _psutil().cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0)
                 - getattr(t, "guest_nice", 0.0))


def upstream_stats(base: str) -> dict[str, int]:
    status, body = http(f"{base}/stats", timeout=10)
    return dict(json.loads(body)) if status == 200 else {}


@dataclass
class Runner:
    loadgen: LoadGen
    upstream_pid: int
    upstream_base: str
    results: list[dict[str, Any]] = field(default_factory=list)

    def segments(self, targets: list[Target], kind: str, concurrency: int, warm: tuple[int, float],
                 segments: list[tuple[int, float]], on_segment: Any = None) -> list[dict[str, Any]]:
        """Warm up, then run each segment; returns per segment the load generator's results
        per target, with the CPU seconds of each process and the upstream's new connections."""
        self.loadgen.send({"op": "run", "stream": KINDS[kind][0], "concurrency": concurrency,
                           "targets": [{"url": t.url, "headers": t.headers,
                                        "body": request_body(kind, t.model)} for t in targets],
                           "phases": [{"max_requests": r, "max_seconds": s} for r, s in [warm, *segments]]})
        self.loadgen.send("go")
        self.loadgen.recv(warm[1] + REQUEST_TIMEOUT_S + 30)
        procs = {"gateway": next((t.pid for t in targets if t.pid), None), "upstream": self.upstream_pid,
                 "loadgen": self.loadgen.child.pid}
        out = []
        for _requests, seconds in segments:
            up_before = upstream_stats(self.upstream_base)
            before = {k: cpu_seconds(p) for k, p in procs.items() if p}
            before["bench"], before["machine"] = own_cpu_seconds(), machine_busy_s()
            self.loadgen.send("go")
            res = self.loadgen.recv(seconds + REQUEST_TIMEOUT_S + 30)
            after = {k: cpu_seconds(p) for k, p in procs.items() if p}
            after["bench"], after["machine"] = own_cpu_seconds(), machine_busy_s()
            up_after = upstream_stats(self.upstream_base)
            cpu = {k: after[k] - before[k] for k in before}
            # Busy CPU not spent by the bench's own processes: other work on the machine.
            cpu["others"] = max(0.0, cpu.pop("machine") - sum(cpu.values()))
            res["cpu_s"] = cpu
            res["upstream_connections"] = up_after.get("connections", 0) - up_before.get("connections", 0)
            if on_segment is not None:
                on_segment(res)
            out.append(res)
        return out

    def scenario(self, targets: list[Target], kind: str, concurrency: int, bounds: Bounds,
                 keep_direct: bool = True) -> list[dict[str, Any]]:
        """One measured segment. With two targets (direct and a gateway, at concurrency 1)
        requests alternate between them and the gateway's row carries the direct figures
        measured alongside it as its baseline."""
        seg = self.segments(targets, kind, concurrency, (bounds.warm_requests, bounds.warm_seconds),
                            [(bounds.requests, bounds.seconds)])[0]
        rows = [scenario_row(t, kind, concurrency, res, seg) for t, res in zip(targets, seg["targets"],
                                                                                 strict=True)]
        if len(rows) > 1:
            direct = next(r for r in rows if r["target"] == "direct")
            for row in rows:
                row["paired"] = True
                if row is not direct:
                    row["baseline"] = {"latency_ms": direct["latency_ms"], "ttfb_ms": direct["ttfb_ms"]}
            if not keep_direct:
                rows.remove(direct)
        self.results += rows
        return rows


def scenario_row(target: Target, kind: str, concurrency: int, res: dict[str, Any],
                 seg: dict[str, Any]) -> dict[str, Any]:
    stream = KINDS[kind][0]
    ok, dur = res["ok"], res["duration_s"]
    cpu = seg["cpu_s"]
    row: dict[str, Any] = {
        "target": target.name, "kind": kind, "stream": stream, "concurrency": concurrency,
        "requests": ok, "errors": sum(res["errors"].values()), "error_kinds": res["errors"],
        "duration_s": round(dur, 3), "rps": round(res["rps"], 1),
        "latency_ms": _round(res["latency_ms"]), "ttfb_ms": _round(res["ttfb_ms"]),
        "chunks_per_request": res["chunks_per_request"],
        "cpu_util": {k: round(v / dur, 3) for k, v in cpu.items()} if dur else {},
    }
    if target.pid is not None and ok:
        per_req = cpu["gateway"] / ok
        row["gateway_cpu_us_per_request"] = round(per_req * 1e6, 1)
        row["rps_per_gateway_core"] = round(1 / per_req, 0) if per_req > 0 else None
        if stream and res["chunks_per_request"]:
            row["gateway_cpu_us_per_chunk_all_in"] = round(per_req * 1e6 / res["chunks_per_request"], 2)
        row["upstream_connections_opened"] = seg["upstream_connections"]
        row["upstream_connections_per_request"] = round(seg["upstream_connections"] / ok, 3)
    return row


def _round(summary: dict[str, float] | None) -> dict[str, float] | None:
    if summary is None:
        return None
    return {k: (round(v, 3) if k != "n" else int(v)) for k, v in summary.items()}


# ---------------------------------------------------------------------------------------
# The gateways.
# ---------------------------------------------------------------------------------------

def fabrique_cmd() -> list[str]:
    script = Path(sys.executable).parent / "fabrique"
    return [str(script)] if script.exists() else [sys.executable, "-m", "fabrique"]


def start_fabrique(children: Children, workdir: Path, upstream_port: int,
                   server: dict[str, Any] | None = None, src: Path | None = None) -> tuple[Child, Target]:
    import yaml

    home = workdir / "fabrique-home"
    config = {
        "data_dir": str(home),
        "server": server or {},
        "providers": [{"name": "bench", "type": "openai_compatible",
                       "base_url": f"http://{HOST}:{upstream_port}/v1",
                       "api_key": UPSTREAM_KEY, "max_connections": 256}],
        "models": [{"name": PUBLIC_MODEL, "deployments": [{"provider": "bench", "model": UPSTREAM_MODEL}]},
                   {"name": PUBLIC_MODEL + PACED_SUFFIX,
                    "deployments": [{"provider": "bench", "model": UPSTREAM_MODEL + PACED_SUFFIX}]}],
    }
    path = workdir / "fabrique.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = clean_env(FABRIQUE_HOME=str(home))
    env.pop("FABRIQUE_CONFIG", None)
    if src is not None:  # another checkout's package, ahead of the installed one (A/B runs)
        env["PYTHONPATH"] = os.pathsep.join([str(src.resolve()), *filter(None, [env.get("PYTHONPATH")])])
    made = subprocess.run([*fabrique_cmd(), "keys", "create", "--tenant", "bench", "--config", str(path)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    if made.returncode != 0 or not made.stdout.strip():
        raise RuntimeError(f"fabrique keys create failed ({made.returncode}): {made.stderr[-2000:]}")
    key = made.stdout.strip().splitlines()[-1].strip()
    port = free_port()
    child = children.start("fabrique", [*fabrique_cmd(), "serve", "--config", str(path),
                                        "--port", str(port)], env=env)
    base = f"http://{HOST}:{port}"
    wait_ready(child, f"{base}/healthz", 60)
    target = Target("fabrique", f"{base}/v1/chat/completions", PUBLIC_MODEL,
                    {"Authorization": f"Bearer {key}"}, pid=child.pid)
    probe(target)
    return child, target


def probe(target: Target) -> None:
    """One non-streaming and one streaming call that must succeed before measuring."""
    for kind in ("chat", "stream5"):
        status, body = http(target.url, request_body(kind, target.model), target.headers, timeout=30)
        if status != 200 or (b"[DONE]" not in body if KINDS[kind][0] else b'"usage"' not in body):
            raise RuntimeError(f"{target.name}: probe {kind} got HTTP {status}: {body[:300]!r}")


def litellm_version(venv: Path) -> str | None:
    py = venv / "bin" / "python"
    if not py.exists():
        return None
    out = subprocess.run([str(py), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                         capture_output=True, text=True, timeout=60, check=False)
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def ensure_litellm(venv: Path, log: Any) -> str:
    """LiteLLM's version in its own venv (bench/.venv-litellm), installing it there when missing."""
    version = litellm_version(venv)
    if version and (venv / "bin" / "litellm").exists():
        return version
    python3 = shutil.which("python3") or sys.executable
    log(f"installing litellm[proxy] into {venv} (once; a few minutes)")
    install_log = BENCH_DIR / "results" / "litellm-install.log"
    install_log.parent.mkdir(parents=True, exist_ok=True)
    with open(install_log, "wb") as out:
        if not (venv / "bin" / "python").exists():
            subprocess.run([python3, "-m", "venv", str(venv)], stdout=out, stderr=out,
                           timeout=300, check=True)
        pip = str(venv / "bin" / "pip")
        subprocess.run([pip, "install", "-q", "--upgrade", "pip"], stdout=out, stderr=out,
                       timeout=600, check=False)
        done = subprocess.run([pip, "install", "-q", "litellm[proxy]"], stdout=out, stderr=out,
                              timeout=1200, check=False)
    version = litellm_version(venv)
    if done.returncode != 0 or not version:
        tail = install_log.read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"pip install 'litellm[proxy]' failed: {' | '.join(tail)}")
    return version


def start_litellm(children: Children, workdir: Path, upstream_port: int,
                  venv: Path) -> tuple[Child, Target]:
    import yaml

    api_base = f"http://{HOST}:{upstream_port}/v1"
    config = {
        "model_list": [
            {"model_name": name, "litellm_params": {"model": f"openai/{upstream}",
                                                    "api_base": api_base, "api_key": UPSTREAM_KEY}}
            for name, upstream in ((PUBLIC_MODEL, UPSTREAM_MODEL),
                                   (PUBLIC_MODEL + PACED_SUFFIX, UPSTREAM_MODEL + PACED_SUFFIX))],
        "litellm_settings": {"drop_params": True, "set_verbose": False},
        "general_settings": {"master_key": LITELLM_MASTER_KEY},
    }
    path = workdir / "litellm.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = free_port()
    # No fetch of remote cost maps or presets: everything stays on 127.0.0.1.
    env = clean_env(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOCAL_BLOG_POSTS="True",
                    LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS="True", LITELLM_LOCAL_AUTOROUTER_PRESETS="True",
                    LITELLM_LOCAL_POLICY_TEMPLATES="True", LITELLM_LOG="ERROR",
                    DISABLE_SCHEMA_UPDATE="True", HOME=str(workdir))
    for var in ("DATABASE_URL", "REDIS_URL", "REDIS_HOST", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        env.pop(var, None)
    child = children.start("litellm", [str(venv / "bin" / "litellm"), "--config", str(path),
                                       "--host", HOST, "--port", str(port), "--num_workers", "1"],
                           env=env)
    base = f"http://{HOST}:{port}"
    wait_ready(child, f"{base}/health/liveliness", 180)
    target = Target("litellm", f"{base}/v1/chat/completions", PUBLIC_MODEL,
                    {"Authorization": f"Bearer {LITELLM_MASTER_KEY}"}, pid=child.pid)
    probe(target)
    return child, target


# ---------------------------------------------------------------------------------------
# The run.
# ---------------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package in ("fabrique", "aiohttp", "orjson", "uvloop"):
        with contextlib.suppress(Exception):
            import importlib.metadata as md
            versions[package] = md.version(package)
    return {"nproc": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
            "cpu_model": model, "python": platform.python_version(),
            "implementation": platform.python_implementation(), "kernel": platform.release(),
            "versions": versions}


def run(args: argparse.Namespace) -> dict[str, Any]:
    t_start = time.monotonic()
    quick = args.quick

    def log(msg: str) -> None:
        print(f"[bench {time.monotonic() - t_start:6.1f}s] {msg}", file=sys.stderr, flush=True)

    bounds = (Bounds(seconds=1.0, requests=20_000, warm_seconds=0.25, warm_requests=300) if quick
              else Bounds(seconds=5.0, requests=100_000, warm_seconds=1.0, warm_requests=2_000))
    lite_bounds = (Bounds(seconds=2.0, requests=2_000, warm_seconds=0.5, warm_requests=100) if quick
                   else Bounds(seconds=4.0, requests=5_000, warm_seconds=1.0, warm_requests=200))
    # Paced streams carry few requests per second and their CPU/request varies with how the
    # upstream's timers line up: longer windows.
    paced_bounds = Bounds(seconds=bounds.seconds * (2.5 if quick else 1.6), requests=bounds.requests,
                          warm_seconds=bounds.warm_seconds, warm_requests=bounds.warm_requests)
    soak_requests = args.soak_requests or (10_000 if quick else 100_000)
    soak_seconds = 40.0 if quick else 300.0
    run_litellm = (not args.skip_litellm) and (args.litellm or not quick)

    workdir = Path(tempfile.mkdtemp(prefix="fabrique-bench-"))
    children = Children(workdir)
    results: dict[str, Any] = {
        "benchmark": "gateway_overhead", "mode": "quick" if quick else "full",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(),
        "bounds": {"seconds_per_scenario": bounds.seconds, "warmup_seconds": bounds.warm_seconds,
                   "seconds_per_paced_scenario": round(bounds.seconds * (2.5 if quick else 1.6), 1),
                   "litellm_seconds_per_scenario": lite_bounds.seconds},
        "notes": [
            "Load generator (aiohttp client), upstream and gateway share the machine's cores; "
            "req/s and latency under load include that contention. gateway CPU/request is "
            "measured on the gateway process alone (psutil) and carries over between machines.",
            "rps_per_gateway_core = 1 / (gateway CPU seconds per request).",
            "At concurrency 1 direct and gateway requests alternate in one run (paired), so the "
            "added latency compares requests that saw the same machine noise; their req/s is "
            "over each one's share of the time.",
            "CPU per chunk: 'marginal' = (CPU/request of 50-chunk stream - of 5-chunk stream) "
            "/ 45 chunks at the same concurrency (chunks sent back to back, so several often "
            "arrive in one read); 'paced_marginal' = the same with chunks 2 ms apart (one read "
            "and one write per chunk, as with a real model); 'all_in' = CPU/request / events "
            "relayed (N chunks + usage chunk + [DONE]).",
            "others = busy CPU of the machine not spent by the bench's processes (other work "
            "on a shared machine); high values make req/s and latency noisy, not CPU/request.",
        ],
        "targets": TARGETS,
    }
    runner: Runner | None = None
    try:
        up_port = free_port()
        upstream = children.start("upstream", [sys.executable, __file__, "_upstream", "--port", str(up_port)])
        wait_ready(upstream, f"http://{HOST}:{up_port}/health", 30)
        direct = Target("direct", f"http://{HOST}:{up_port}/v1/chat/completions", UPSTREAM_MODEL,
                        {"Authorization": f"Bearer {UPSTREAM_KEY}"})
        probe(direct)
        log(f"upstream on :{up_port}")
        gw, fabrique = start_fabrique(children, workdir, up_port, src=args.fabrique_src)
        if args.fabrique_src:
            results["fabrique_src"] = str(args.fabrique_src.resolve())
        idle_rss = rss_mib(gw.pid)
        log(f"fabrique on {fabrique.url} (pid {gw.pid}, RSS {idle_rss:.1f} MiB)")
        lg = children.start("loadgen", [sys.executable, __file__, "_load"], stdin=True, stdout_pipe=True)
        runner = Runner(LoadGen(lg), upstream.pid, f"http://{HOST}:{up_port}")

        kinds = ["chat", "stream5", "stream50"]
        for kind in kinds:
            for conc in CONCURRENCIES:
                # At concurrency 1 direct and gateway calls alternate (paired); above, one
                # target after the other.
                for targets in ([[direct, fabrique]] if conc == 1 else [[direct], [fabrique]]):
                    for row in runner.scenario(targets, kind, conc, bounds):
                        log(_line(row))
        for kind in ("stream5-paced", "stream50-paced"):
            for target in (direct, fabrique):
                for row in runner.scenario([target], kind, 32, paced_bounds):
                    log(_line(row))

        results["rss"] = {"fabrique": {"idle_after_start_mib": round(idle_rss, 1),
                                       **soak(runner, fabrique, soak_requests, soak_seconds, log)}}
        if args.profile:
            results["profile"] = profile_gateway(runner, fabrique, 4.0 if quick else 8.0, log)
        children.stop(gw)

        litellm_info: dict[str, Any] = {"available": False}
        if not run_litellm:
            litellm_info["reason"] = ("skipped in --quick (use --litellm to include it)" if quick and
                                      not args.skip_litellm else "skipped (--skip-litellm)")
        else:
            try:
                litellm_info["version"] = ensure_litellm(args.litellm_venv, log)
                lchild, litellm = start_litellm(children, workdir, up_port, args.litellm_venv)
                litellm_info["available"] = True
                rss_start = rss_mib(lchild.pid)
                log(f"litellm {litellm_info['version']} on {litellm.url} (pid {lchild.pid}, "
                    f"RSS {rss_start:.0f} MiB)")
                for kind in kinds:
                    for conc in CONCURRENCIES:
                        targets = [direct, litellm] if conc == 1 else [litellm]
                        for row in runner.scenario(targets, kind, conc, lite_bounds, keep_direct=False):
                            log(_line(row))
                for kind in ("stream5-paced", "stream50-paced"):
                    for row in runner.scenario([litellm], kind, 32, lite_bounds):
                        log(_line(row))
                n = sum(r["requests"] + r["errors"] for r in runner.results if r["target"] == "litellm")
                litellm_info["rss"] = {"start_mib": round(rss_start, 1),
                                       "after_mib": round(rss_mib(lchild.pid), 1),
                                       "requests_between": n}
                children.stop(lchild)
            except Exception as exc:  # LiteLLM is a comparison, never a reason to fail the bench
                litellm_info["available"] = False
                litellm_info["reason"] = f"{type(exc).__name__}: {str(exc)[:800]}"
                log(f"litellm unavailable: {litellm_info['reason']}")
        results["litellm"] = litellm_info
    finally:
        if runner is not None:
            with contextlib.suppress(Exception):
                runner.loadgen.send("quit")
        children.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
    results["scenarios"] = runner.results if runner else []
    derive(results)
    results["duration_s"] = round(time.monotonic() - t_start, 1)
    return results


def soak(runner: Runner, target: Target, requests: int, max_seconds: float, log: Any) -> dict[str, Any]:
    """RSS of the gateway before, during and after ``requests`` non-streaming requests at c=32."""
    pid = target.pid
    assert pid is not None
    steps = 10
    per = max(1, requests // steps)
    before = rss_mib(pid)
    samples: list[dict[str, float]] = []
    done = [0]

    def sample(seg: dict[str, Any]) -> None:
        res = seg["targets"][0]
        done[0] += res["ok"] + sum(res["errors"].values())
        lat = res["latency_ms"] or {}
        samples.append({"requests": done[0], "rss_mib": round(rss_mib(pid), 1),
                        "rps": round(res["rps"], 1), "p50_ms": round(lat.get("p50", 0), 2),
                        "p99_ms": round(lat.get("p99", 0), 2), "max_ms": round(lat.get("max", 0), 2)})

    started = time.monotonic()
    segs = runner.segments([target], "chat", 32, (500, 1.0), [(per, max_seconds / steps)] * steps, sample)
    ok = sum(s["targets"][0]["ok"] for s in segs)
    errors = sum(sum(s["targets"][0]["errors"].values()) for s in segs)
    cpu = sum(s["cpu_s"].get("gateway", 0.0) for s in segs)
    after = rss_mib(pid)
    rss = {"requests": ok + errors, "requests_planned": requests, "errors": errors,
           "seconds": round(time.monotonic() - started, 1),
           "before_mib": round(before, 1), "after_mib": round(after, 1),
           "peak_mib": max([before, after] + [s["rss_mib"] for s in samples]),
           # "Flat after warm-up": growth from the first sample (after 10 % of the requests).
           "growth_after_warmup_mib": round(after - samples[0]["rss_mib"], 1) if samples else None,
           "gateway_cpu_us_per_request": round(cpu / ok * 1e6, 1) if ok else None,
           "samples": samples}
    log(f"soak: {ok + errors} requests, RSS {before:.1f} -> {after:.1f} MiB "
        f"(first sample {samples[0]['rss_mib'] if samples else '?'} MiB)")
    return rss


def profile_gateway(runner: Runner, target: Target, seconds: float, log: Any) -> dict[str, Any]:
    """py-spy on the gateway under load (c=32), after the measurements: where its CPU goes."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return {"available": False, "reason": "py-spy not found (pip install py-spy)"}
    out: dict[str, Any] = {"available": True}
    for kind in ("chat", "stream50", "stream50-paced"):
        raw = RESULTS_FILE.parent / f"profile-fabrique-{kind}-c32.txt"
        raw.parent.mkdir(parents=True, exist_ok=True)
        spy_proc = subprocess.Popen([spy, "record", "--format", "raw", "--rate", "250", "--duration",
                                     str(round(seconds)), "--nonblocking", "--output", str(raw),
                                     "--pid", str(target.pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    preexec_fn=_die_with_parent)
        try:
            runner.segments([target], kind, 32, (100_000, 0.7), [(1_000_000, seconds)])
            spy_proc.wait(seconds + 30)
        finally:
            if spy_proc.poll() is None:
                spy_proc.kill()
                spy_proc.wait()
        out[kind] = summarize_profile(raw)
        log(f"profile {kind}: {raw}")
    return out


def summarize_profile(path: Path, top: int = 15) -> dict[str, Any]:
    """Self time per function (the share of samples where it is the innermost Python frame;
    C code and syscalls count for the Python frame that called them)."""
    own: Counter[str] = Counter()
    total = 0
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        return {"error": str(exc)}
    for line in lines:
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not count.isdigit() or not stack.strip() or "aiosqlite/core.py" in frames[-1]:
            continue  # no Python frame, or an idle database worker thread waiting on its queue
        name, _, where = frames[-1].partition(" (")
        own[f"{name} ({where.rsplit(':', 1)[0]})"] += int(count)
        total += int(count)
    return {"samples": total,
            "self_pct": [[f, round(c * 100 / total, 1)] for f, c in own.most_common(top)] if total else []}


def _line(row: dict[str, Any]) -> str:
    lat = row["latency_ms"] or {}
    return (f"{row['target']:>8} {row['kind']:>14} c={row['concurrency']:<3} {row['rps']:>8.0f} req/s "
            f"p50 {lat.get('p50', 0):7.2f} ms p99 {lat.get('p99', 0):7.2f} ms "
            f"cpu {row.get('gateway_cpu_us_per_request', 0) or 0:7.1f} us/req errors {row['errors']}")


def _find(rows: list[dict[str, Any]], target: str, kind: str, conc: int) -> dict[str, Any] | None:
    return next((r for r in rows if r["target"] == target and r["kind"] == kind
                 and r["concurrency"] == conc), None)


def derive(results: dict[str, Any]) -> None:
    """Added latency (gateway minus direct), CPU per chunk, and the verdict on each target."""
    rows = results["scenarios"]
    for row in rows:
        if row["target"] == "direct":
            continue
        base = row.get("baseline") or _find(rows, "direct", row["kind"], row["concurrency"])
        if base and base["latency_ms"] and row["latency_ms"]:
            row["added_ms"] = {p: round(row["latency_ms"][p] - base["latency_ms"][p], 3)
                               for p in ("p50", "p99")}
            if row["ttfb_ms"] and base["ttfb_ms"]:
                row["added_ms"]["ttfb_p50"] = round(row["ttfb_ms"]["p50"] - base["ttfb_ms"]["p50"], 3)
    per_chunk: dict[str, Any] = {}
    for gw in ("fabrique", "litellm"):
        entry: dict[str, Any] = {}
        for conc in CONCURRENCIES:
            s5, s50 = _find(rows, gw, "stream5", conc), _find(rows, gw, "stream50", conc)
            if s5 and s50 and s5.get("gateway_cpu_us_per_request") and s50.get("gateway_cpu_us_per_request"):
                c5 = s5["chunks_per_request"] or 7
                c50 = s50["chunks_per_request"] or 52
                entry[f"marginal_us_c{conc}"] = round(
                    (s50["gateway_cpu_us_per_request"] - s5["gateway_cpu_us_per_request"]) / (c50 - c5), 2)
                entry[f"all_in_us_c{conc}"] = s50.get("gateway_cpu_us_per_chunk_all_in")
        p5, p50 = _find(rows, gw, "stream5-paced", 32), _find(rows, gw, "stream50-paced", 32)
        if p5 and p50 and p5.get("gateway_cpu_us_per_request") and p50.get("gateway_cpu_us_per_request"):
            entry["paced_marginal_us_c32"] = round(
                (p50["gateway_cpu_us_per_request"] - p5["gateway_cpu_us_per_request"])
                / ((p50["chunks_per_request"] or 52) - (p5["chunks_per_request"] or 7)), 2)
        if p50:
            entry["paced_all_in_us_c32"] = p50.get("gateway_cpu_us_per_chunk_all_in")
        if entry:
            per_chunk[gw] = entry
    results["cpu_per_chunk"] = per_chunk
    others = [r["cpu_util"].get("others", 0.0) * 100 for r in rows if r.get("cpu_util")]
    results["noise"] = {"others_cpu_mean_pct": round(sum(others) / len(others), 1) if others else None,
                        "others_cpu_max_pct": round(max(others), 1) if others else None}

    verdict = []

    def check(name: str, measured: float | None, target: float, higher_is_better: bool, how: str) -> None:
        met = None if measured is None else (measured >= target if higher_is_better else measured <= target)
        verdict.append({"name": name, "target": target, "measured": measured, "met": met, "how": how})

    chat32 = _find(rows, "fabrique", "chat", 32)
    check("requests/s per core (non-streaming, c=32)", chat32 and chat32.get("rps_per_gateway_core"),
          TARGETS["rps_per_core"], True, "1 / gateway CPU seconds per request")
    chat1 = _find(rows, "fabrique", "chat", 1)
    added = (chat1 or {}).get("added_ms") or {}
    check("added p50 latency at c=1 (ms)", added.get("p50"), TARGETS["added_p50_ms"], False,
          "fabrique p50 - direct p50, non-streaming")
    check("added p99 latency at c=1 (ms)", added.get("p99"), TARGETS["added_p99_ms"], False,
          "fabrique p99 - direct p99, non-streaming")
    fab = per_chunk.get("fabrique", {})
    chunk_figs = [v for k, v in fab.items() if k in ("marginal_us_c32", "paced_marginal_us_c32")
                  and v is not None]
    check("CPU per relayed chunk (us)", max(chunk_figs) if chunk_figs else None,
          TARGETS["cpu_us_per_chunk"], False, "worst marginal at c=32: back-to-back or paced chunks")
    rss = results.get("rss", {}).get("fabrique", {})
    check("RSS after the soak (MiB)", rss.get("after_mib"), TARGETS["rss_mib"], False,
          f"{rss.get('requests', 0)} non-streaming requests at c=32")
    check("RSS growth after warm-up (MiB)", rss.get("growth_after_warmup_mib"),
          TARGETS["rss_growth_mib"], False, "last sample - first sample (taken after 10 % of the soak)")
    results["verdict"] = verdict


# ---------------------------------------------------------------------------------------
# The report.
# ---------------------------------------------------------------------------------------

def report(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(200, shutil.get_terminal_size().columns))
    m = results["machine"]
    console.print(f"[bold]gateway_overhead[/] ({results['mode']}) on {m['nproc']} x {m['cpu_model']}, "
                  f"Python {m['python']}; {results['duration_s']} s")
    table = Table("target", "scenario", "conc", "req/s", "p50 ms", "p99 ms", "TTFB p50", "added p50",
                  "added p99", "gw CPU us/req", "req/s/core", "us/chunk", "gw CPU %", "up conn/req",
                  "other CPU %", "errors",
                  title="Scenarios (latency = whole request; TTFB = first body byte of a stream)")

    def f(v: Any, fmt: str = "{:.2f}") -> str:
        return "" if v is None else fmt.format(v)

    for r in results["scenarios"]:
        lat, ttfb, added = r["latency_ms"] or {}, r["ttfb_ms"] or {}, r.get("added_ms") or {}
        table.add_row(r["target"], r["kind"], str(r["concurrency"]), f(r["rps"], "{:.0f}"),
                      f(lat.get("p50")), f(lat.get("p99")), f(ttfb.get("p50")), f(added.get("p50")),
                      f(added.get("p99")), f(r.get("gateway_cpu_us_per_request"), "{:.0f}"),
                      f(r.get("rps_per_gateway_core"), "{:.0f}"),
                      f(r.get("gateway_cpu_us_per_chunk_all_in"), "{:.1f}"),
                      f(r["cpu_util"]["gateway"] * 100 if "gateway_cpu_us_per_request" in r else None,
                        "{:.0f}"),
                      f(r.get("upstream_connections_per_request"), "{:.2f}"),
                      f(r["cpu_util"].get("others", 0) * 100, "{:.0f}"), str(r["errors"]))
    console.print(table)

    chunks = Table("gateway", "figure", "CPU us per chunk", title="CPU per relayed chunk")
    for gw, entry in results["cpu_per_chunk"].items():
        for k, v in entry.items():
            chunks.add_row(gw, k, f(v))
    console.print(chunks)

    rss = results.get("rss", {}).get("fabrique")
    if rss:
        console.print(f"Fabrique RSS: {rss['idle_after_start_mib']} MiB idle after start, "
                      f"{rss['before_mib']} MiB before, {rss['after_mib']} MiB after "
                      f"{rss['requests']} requests (peak {rss['peak_mib']}, growth after warm-up "
                      f"{rss['growth_after_warmup_mib']} MiB, {rss['errors']} errors, {rss['seconds']} s)")
    lite = results.get("litellm", {})
    if lite.get("available"):
        console.print(f"LiteLLM {lite.get('version')}: RSS {lite['rss']['start_mib']} -> "
                      f"{lite['rss']['after_mib']} MiB over {lite['rss']['requests_between']} requests")
    else:
        console.print(f"LiteLLM: unavailable ({lite.get('reason')})")

    prof = results.get("profile")
    if prof and prof.get("available"):
        for kind, summary in prof.items():
            if kind == "available":
                continue
            t = Table("self %", "function (innermost Python frame)",
                      title=f"Gateway CPU profile, {kind} c=32 ({summary.get('samples')} samples; run_app = "
                      "uvloop's C code: epoll, recv, callbacks; StreamWriter._write* = send())")
            for name, pct in summary.get("self_pct", []):
                t.add_row(f"{pct:.1f}", name)
            console.print(t)
    elif prof:
        console.print(f"Profile: unavailable ({prof.get('reason')})")

    verdict = Table("target", "goal", "measured", "met", "how", title="Targets")
    for v in results["verdict"]:
        goal = f"{'>=' if 'per core' in v['name'] else '<='} {v['target']:g}"
        met = {True: "[green]yes[/]", False: "[red]NO[/]", None: "n/a"}[v["met"]]
        verdict.add_row(v["name"], goal, f(v["measured"], "{:.2f}"), met, v["how"])
    console.print(verdict)
    noise = results.get("noise") or {}
    if (noise.get("others_cpu_mean_pct") or 0) > 20:
        console.print(f"[yellow]Other work used {noise['others_cpu_mean_pct']}% of a core on average "
                      f"(max {noise['others_cpu_max_pct']}%) during the scenarios: req/s and latencies "
                      "are noisy; CPU/request less so. Re-run on a quiet machine for reference numbers.[/]")
    for note in results["notes"]:
        console.print(f"[dim]- {note}[/]")


def markdown(results: dict[str, Any]) -> str:
    """The results as Markdown tables, for bench/README.md."""
    def f(v: Any, fmt: str = "{:.2f}") -> str:
        return "" if v is None else fmt.format(v)

    m = results["machine"]
    out = [f"Run: {results['started_at']}, {results['mode']} mode, {results['duration_s']} s; "
           f"{m['nproc']} x {m['cpu_model']}, Python {m['python']}, "
           + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
           + f"; other work on the machine: {results['noise']['others_cpu_mean_pct']}% of a core on average.",
           "", "| target | scenario | conc | req/s | p50 ms | p99 ms | TTFB p50 ms | added p50 ms "
           "| added p99 ms | gateway CPU µs/req | req/s per core | CPU µs/event | upstream conn/req |",
           "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in results["scenarios"]:
        lat, ttfb, added = r["latency_ms"] or {}, r["ttfb_ms"] or {}, r.get("added_ms") or {}
        out.append(f"| {r['target']} | {r['kind']} | {r['concurrency']} | {f(r['rps'], '{:.0f}')} | "
                   f"{f(lat.get('p50'))} | {f(lat.get('p99'))} | {f(ttfb.get('p50'))} | "
                   f"{f(added.get('p50'))} | {f(added.get('p99'))} | "
                   f"{f(r.get('gateway_cpu_us_per_request'), '{:.0f}')} | "
                   f"{f(r.get('rps_per_gateway_core'), '{:.0f}')} | "
                   f"{f(r.get('gateway_cpu_us_per_chunk_all_in'), '{:.1f}')} | "
                   f"{f(r.get('upstream_connections_per_request'))} |")
    out += ["", "| gateway | CPU per relayed chunk | µs |", "|---|---|--:|"]
    for gw, entry in results["cpu_per_chunk"].items():
        out += [f"| {gw} | {k} | {f(v)} |" for k, v in entry.items()]
    rss = results.get("rss", {}).get("fabrique")
    if rss:
        out += ["", f"Fabrique RSS: {rss['idle_after_start_mib']} MiB idle after start; "
                f"{rss['before_mib']} MiB before and {rss['after_mib']} MiB after {rss['requests']:,} "
                f"non-streaming requests at c=32 (growth after warm-up {rss['growth_after_warmup_mib']} MiB, "
                f"{rss['errors']} errors, {rss['seconds']} s)."]
    lite = results.get("litellm", {})
    if lite.get("available"):
        out += [f"LiteLLM {lite.get('version')} RSS: {lite['rss']['start_mib']} MiB after start, "
                f"{lite['rss']['after_mib']} MiB after its {lite['rss']['requests_between']:,} requests."]
    else:
        out += [f"LiteLLM: unavailable ({lite.get('reason')})."]
    out += ["", "| target | goal | measured | met |", "|---|---|--:|---|"]
    for v in results["verdict"]:
        goal = f"{'≥' if 'per core' in v['name'] else '≤'} {v['target']:g}"
        met = {True: "yes", False: "**no**", None: "n/a"}[v["met"]]
        out.append(f"| {v['name']} | {goal} | {f(v['measured'])} | {met} |")
    return "\n".join(out) + "\n"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_upstream":
        upstream_main(int(sys.argv[3]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_load":
        load_main()
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="short run (< 60 s): 1 s per scenario, 10,000-request soak, no LiteLLM")
    parser.add_argument("--litellm", action="store_true", help="include LiteLLM even with --quick")
    parser.add_argument("--skip-litellm", action="store_true", help="leave LiteLLM out")
    parser.add_argument("--soak-requests", type=int, default=0,
                        help="requests for the RSS soak (default 100,000; 10,000 with --quick)")
    parser.add_argument("--out", type=Path, default=RESULTS_FILE, help="where to write the JSON")
    parser.add_argument("--litellm-venv", type=Path, default=LITELLM_VENV,
                        help="LiteLLM's own virtual environment, created when missing "
                        "(default bench/.venv-litellm)")
    parser.add_argument("--profile", action="store_true",
                        help="after the measurements, profile the gateway with py-spy (c=32: chat, "
                        "stream50, stream50-paced); raw stacks in bench/results/")
    parser.add_argument("--fabrique-src", type=Path, default=None,
                        help="run the gateway from this src/ directory instead of the installed "
                        "package (to compare a change: A/B)")
    args = parser.parse_args()

    def on_signal(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        results = run(args)
    except Exception as exc:  # still one JSON object on the last line, for scripts
        print(f"gateway_overhead failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(json.dumps({"benchmark": "gateway_overhead", "error": f"{type(exc).__name__}: {exc}"}))
        raise SystemExit(1) from exc
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results))
    report(results)
    print(f"results written to {args.out}")
    print(json.dumps(results, separators=(",", ":")))


if __name__ == "__main__":
    main()
