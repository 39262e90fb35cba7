#!/usr/bin/env python3
"""What do metering and limiting add to a request? p50/p99 and CPU, in process and with Redis.

One run, on 127.0.0.1, against the same fast upstream as ``gateway_overhead.py`` (whose
upstream, load generator and process machinery this reuses), three gateways side by side:

- ``base``: the gateway before metering (the source just before the commit that added
  ``fabrique/metering``, exported with ``git archive``; or ``--base-src``);
- ``default``: this tree with no ``metering`` settings: what every request pays anyway
  (usage measured, metrics, a usage row), no limits or budgets;
- ``metering``: this tree, with a price and an energy profile on the deployment, RPM and
  TPM limits per tenant and key, and a daily budget per tenant — all far above the load, so
  every request is admitted, reserved, metered, settled and written to the usage table;
- ``metering+redis``: the same with ``metering.redis_url`` (the machine's Redis, a key
  prefix of the run's own, deleted after).

At concurrency 1 requests alternate between ``base`` and one metering gateway (paired, so
both see the same machine noise): the added latency is the difference of their p50 and
p99. At concurrency 32 each gateway runs alone and its CPU per request is measured.

    .venv/bin/python bench/metering.py            # about 2 minutes
    .venv/bin/python bench/metering.py --quick    # < 60 s, one JSON object on the last line

Results: a table on stderr, ``bench/results/metering.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateway_overhead as go

REPO = go.BENCH_DIR.parent
RESULTS_FILE = go.BENCH_DIR / "results" / "metering.json"
REDIS_URL = "redis://127.0.0.1:6379/0"
TARGETS = {"added_p50_ms_in_process": 0.2, "added_p50_ms_redis": 0.6}
HIGH = 10**9  # limits far above the load: everything admitted, everything counted


def metering_config(redis_prefix: str | None) -> dict[str, Any]:
    deployment = f"bench/{go.UPSTREAM_MODEL}"
    config: dict[str, Any] = {
        "deployments": {deployment: {
            "price": {"input_eur_per_1m": 0.5, "output_eur_per_1m": 1.5},
            "energy": {"source": "model", "input_wh_per_1k": 0.05, "output_wh_per_1k": 0.5},
            "region": "FR"}},
        "limits": [{"scope": "tenant", "rpm": HIGH, "tpm": HIGH},
                   {"scope": "key", "rpm": HIGH}],
        "budgets": [{"scope": "tenant", "period": "daily", "eur": 1e6}],
    }
    if redis_prefix is not None:
        config.update(redis_url=REDIS_URL, redis_prefix=redis_prefix)
    return config


def export_base(workdir: Path) -> tuple[Path, str]:
    """The package just before metering landed (the parent of the commit that added
    ``fabrique/metering``): the gateway without metering, on any branch, after merges too."""
    added = subprocess.run(["git", "-C", str(REPO), "log", "--diff-filter=A", "--format=%H",
                            "--", "src/fabrique/metering/__init__.py"],
                           capture_output=True, text=True, check=True).stdout.split()
    if not added:
        raise RuntimeError("no commit adds src/fabrique/metering: give --base-src")
    base = subprocess.run(["git", "-C", str(REPO), "rev-parse", added[-1] + "^"],
                          capture_output=True, text=True, check=True).stdout.strip()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", base, "src"],
                             capture_output=True, check=True).stdout
    out = workdir / "base"
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(out, filter="data")
    return out / "src", base[:12]


def start_gateway(children: go.Children, workdir: Path, name: str, upstream_port: int,
                  src: Path, metering: dict[str, Any] | None) -> tuple[go.Child, go.Target]:
    import yaml

    home = workdir / f"home-{name}"
    config: dict[str, Any] = {
        "data_dir": str(home), "server": {"access_log": False},
        "providers": [{"name": "bench", "type": "openai_compatible",
                       "base_url": f"http://{go.HOST}:{upstream_port}/v1",
                       "api_key": go.UPSTREAM_KEY, "max_connections": 256,
                       "jurisdiction": "FR"}],
        "models": [{"name": go.PUBLIC_MODEL,
                    "deployments": [{"provider": "bench", "model": go.UPSTREAM_MODEL}]}],
    }
    if metering is not None:
        config["metering"] = metering
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = go.clean_env(FABRIQUE_HOME=str(home), PYTHONPATH=str(src.resolve()))
    env.pop("FABRIQUE_CONFIG", None)
    cmd = [sys.executable, "-m", "fabrique"]
    made = subprocess.run([*cmd, "keys", "create", "--tenant", "bench", "--config", str(path)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    if made.returncode != 0:
        raise RuntimeError(f"{name}: keys create failed: {made.stderr[-2000:]}")
    key = made.stdout.strip().splitlines()[-1].strip()
    port = go.free_port()
    child = children.start(name, [*cmd, "serve", "--config", str(path), "--port", str(port)],
                           env=env)
    base = f"http://{go.HOST}:{port}"
    go.wait_ready(child, f"{base}/healthz", 60)
    target = go.Target(name, f"{base}/v1/chat/completions", go.PUBLIC_MODEL,
                       {"Authorization": f"Bearer {key}"}, pid=child.pid)
    go.probe(target)
    return child, target


def drop_redis_keys(prefix: str) -> None:
    async def drop() -> None:
        import redis.asyncio as aioredis
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()
    with contextlib.suppress(Exception):
        asyncio.run(drop())


def run(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.monotonic()

    def log(msg: str) -> None:
        print(f"[bench {time.monotonic() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    quick = args.quick
    paired = go.Bounds(seconds=3.0 if quick else 15.0, requests=200_000,
                       warm_seconds=0.5 if quick else 2.0, warm_requests=500)
    loaded = go.Bounds(seconds=2.0 if quick else 6.0, requests=200_000,
                       warm_seconds=0.3 if quick else 1.0, warm_requests=300)
    workdir = Path(tempfile.mkdtemp(prefix="fabrique-bench-metering-"))
    children = go.Children(workdir)
    prefix = "fabrique-bench-" + secrets.token_hex(6)
    results: dict[str, Any] = {"benchmark": "metering", "mode": "quick" if quick else "full",
                               "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                               "machine": go.machine(), "targets": TARGETS}
    runner: go.Runner | None = None
    try:
        base_src, base_rev = (args.base_src, "given") if args.base_src else export_base(workdir)
        results["base"] = base_rev
        up_port = go.free_port()
        upstream = children.start("upstream", [sys.executable, go.__file__, "_upstream",
                                               "--port", str(up_port)])
        go.wait_ready(upstream, f"http://{go.HOST}:{up_port}/health", 30)
        src = REPO / "src"
        gateways = {
            "base": start_gateway(children, workdir, "base", up_port, base_src, None)[1],
            "default": start_gateway(children, workdir, "default", up_port, src, None)[1],
            "metering": start_gateway(children, workdir, "metering", up_port, src,
                                      metering_config(None))[1],
            "metering+redis": start_gateway(children, workdir, "metering-redis", up_port, src,
                                            metering_config(prefix))[1],
        }
        gateways["metering+redis"].name = "metering+redis"
        log("upstream and four gateways up")
        lg = children.start("loadgen", [sys.executable, go.__file__, "_load"], stdin=True,
                            stdout_pipe=True)
        runner = go.Runner(go.LoadGen(lg), upstream.pid, f"http://{go.HOST}:{up_port}")
        rows: list[dict[str, Any]] = []
        for kind in ("chat", "stream5"):
            for variant in ("default", "metering", "metering+redis"):
                seg = runner.segments([gateways["base"], gateways[variant]], kind, 1,
                                      (paired.warm_requests, paired.warm_seconds),
                                      [(paired.requests, paired.seconds)])[0]
                base_res, var_res = seg["targets"]
                row = {"kind": kind, "concurrency": 1, "variant": variant,
                       "requests": var_res["ok"], "errors": sum(var_res["errors"].values())
                       + sum(base_res["errors"].values()),
                       "base_ms": go._round(base_res["latency_ms"]),
                       "variant_ms": go._round(var_res["latency_ms"])}
                for p in ("p50", "p99"):
                    row[f"added_{p}_ms"] = round(var_res["latency_ms"][p]
                                                 - base_res["latency_ms"][p], 3)
                rows.append(row)
                log(f"{kind:8} c=1 {variant:15} p50 {row['base_ms']['p50']:.3f} -> "
                    f"{row['variant_ms']['p50']:.3f} ms (+{row['added_p50_ms']:.3f}), p99 "
                    f"{row['base_ms']['p99']:.3f} -> {row['variant_ms']['p99']:.3f} ms "
                    f"(+{row['added_p99_ms']:.3f})")
        cpu: dict[str, Any] = {}
        for name, target in gateways.items():
            (row,) = runner.scenario([target], "chat", 32, loaded)
            cpu[name] = {"cpu_us_per_request": row.get("gateway_cpu_us_per_request"),
                         "rps": row["rps"], "p50_ms": row["latency_ms"]["p50"],
                         "p99_ms": row["latency_ms"]["p99"], "errors": row["errors"],
                         "others_cpu_util": row["cpu_util"].get("others")}
            log(f"chat     c=32 {name:15} {cpu[name]['cpu_us_per_request']} µs CPU/request, "
                f"{row['rps']} req/s, machine's other work {cpu[name]['others_cpu_util']} cores")
        results["paired"] = rows
        results["concurrency_32"] = cpu
        for name in ("default", "metering", "metering+redis"):
            base_cpu = cpu["base"]["cpu_us_per_request"]
            if base_cpu and cpu[name]["cpu_us_per_request"]:
                cpu[name]["added_cpu_us_per_request"] = round(
                    cpu[name]["cpu_us_per_request"] - base_cpu, 1)
        chat = {r["variant"]: r for r in rows if r["kind"] == "chat"}
        results["summary"] = {
            "added_p50_ms_default": chat["default"]["added_p50_ms"],
            "added_p99_ms_default": chat["default"]["added_p99_ms"],
            "added_p50_ms_in_process": chat["metering"]["added_p50_ms"],
            "added_p99_ms_in_process": chat["metering"]["added_p99_ms"],
            "added_p50_ms_redis": chat["metering+redis"]["added_p50_ms"],
            "added_p99_ms_redis": chat["metering+redis"]["added_p99_ms"],
            "added_cpu_us_default": cpu["default"].get("added_cpu_us_per_request"),
            "added_cpu_us_in_process": cpu["metering"].get("added_cpu_us_per_request"),
            "added_cpu_us_redis": cpu["metering+redis"].get("added_cpu_us_per_request"),
        }
    finally:
        if runner is not None:
            with contextlib.suppress(Exception):
                runner.loadgen.send("quit")
        children.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
        drop_redis_keys(prefix)
    results["duration_s"] = round(time.monotonic() - t0, 1)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (< 60 s)")
    parser.add_argument("--base-src", type=Path, default=None,
                        help="src/ of the gateway to compare with (default: the commit before "
                        "metering landed, exported with git archive)")
    parser.add_argument("--out", type=Path, default=RESULTS_FILE, help="where to write the JSON")
    args = parser.parse_args()
    try:
        results = run(args)
    except Exception as exc:
        print(f"metering bench failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(json.dumps({"benchmark": "metering", "error": f"{type(exc).__name__}: {exc}"}))
        raise SystemExit(1) from exc
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {args.out}", file=sys.stderr)
    print(json.dumps(results, separators=(",", ":")))


if __name__ == "__main__":
    main()
