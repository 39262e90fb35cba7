"""``fabrique audit`` as an auditor runs it: a real server, then export, verify, prove."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from ..test_cli import FABRIQUE, free_port, run, wait_for_port


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    import os
    return {**os.environ, "FABRIQUE_HOME": str(tmp_path / "home")}


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> dict[str, str]:
    import os
    return {**os.environ, "FABRIQUE_HOME": str(tmp_path_factory.mktemp("served") / "home")}


@pytest.fixture(scope="module")
def served(home):
    """A `fabrique serve` that answered three requests, then stopped (once per module: the
    tests only read its ledger)."""
    env = home
    key = run("keys", "create", "--tenant", "acme", env=env).stdout.strip().splitlines()[-1]
    port = free_port()
    proc = subprocess.Popen([*FABRIQUE, "serve", "--port", str(port)], env=env, text=True,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        ids = []
        for _ in range(3):
            resp = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=30,
                              headers={"Authorization": f"Bearer {key}"},
                              json={"model": "fabrique-sim-chat", "max_tokens": 3,
                                    "messages": [{"role": "user", "content": "hi"}]})
            assert resp.status_code == 200
            ids.append(resp.headers["x-fabrique-request-id"])
    finally:
        proc.terminate()
        proc.wait(30)
        proc.stderr.close()
    return ids


def test_export_verify_and_tamper(home, served, tmp_path):
    pub = tmp_path / "ledger.pub"
    pub.write_text(run("audit", "public-key", env=home).stdout)
    export = tmp_path / "audit.jsonl"
    export.write_text(run("audit", "export", env=home).stdout)
    ok = run("audit", "verify", str(export), "--public-key", str(pub), env=home)
    assert "ok — records 0 to 2 (3)" in ok.stdout
    lines = export.read_text().splitlines()
    line = json.loads(lines[2])
    line["record"]["status"] = 500
    lines[2] = json.dumps(line)
    export.write_text("\n".join(lines) + "\n")
    bad = run("audit", "verify", str(export), "--public-key", str(pub), env=home, check=False)
    assert bad.returncode == 1
    assert bad.stderr.strip() == (f"fabrique: {export}: record 1: modified: its content does not "
                                  "hash to its leaf hash")


def test_proofs_from_the_cli(home, served):
    proof = json.loads(run("audit", "proof", "--request-id", served[1], env=home).stdout)
    assert proof["index"] == 1 and proof["record"]["request_id"] == served[1]
    cons = json.loads(run("audit", "proof", "--consistency", "1", env=home).stdout)
    assert cons["first"] == 1 and cons["second"] == 3


def test_bad_input_is_one_line(env, tmp_path):
    out = run("audit", "verify", str(tmp_path / "none.jsonl"), "--public-key", "AAAA", env=env,
              check=False)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "--public-key" in out.stderr
    # No gateway has run with this data folder: no key to publish, and none is made up.
    out = run("audit", "public-key", env=env, check=False)
    assert out.returncode == 1 and "no ledger signing key in" in out.stderr
    key = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="  # RFC 8032's first test public key
    out = run("audit", "verify", str(tmp_path / "none.jsonl"), "--public-key", key, env=env,
              check=False)
    assert out.returncode == 2 and "none.jsonl: cannot read" in out.stderr
    out = run("audit", "export", "--since", "last tuesday", env=env, check=False)
    assert out.returncode == 2 and out.stderr.startswith("fabrique: --since 'last tuesday'")
    out = run("audit", "proof", "--index", "99", env=env, check=False)
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "no record 99" in out.stderr
    out = run("audit", "proof", env=env, check=False)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr


def test_every_audit_command_has_help_with_an_example(env):
    for command in ("export", "verify", "proof", "erase", "public-key", "payload"):
        assert "Example" in run("audit", command, "--help", env=env).stdout, command


def test_proofs_verify_offline_and_a_forged_one_fails(home, served, tmp_path):
    pub = run("audit", "public-key", env=home).stdout.strip()
    proof = tmp_path / "p.json"
    proof.write_text(run("audit", "proof", "--index", "2", env=home).stdout)
    ok = run("audit", "verify", str(proof), "--public-key", pub, env=home)
    assert "record 2 is in the log of 3 records signed by key" in ok.stdout
    doc = json.loads(proof.read_text())
    doc["record"]["status"] = 201
    proof.write_text(json.dumps(doc))
    bad = run("audit", "verify", str(proof), "--public-key", pub, env=home, check=False)
    assert bad.returncode == 1 and "record 2: modified" in bad.stderr
    cons = tmp_path / "c.json"
    cons.write_text(run("audit", "proof", "--consistency", "2", env=home).stdout)
    assert "is a prefix of the log of 3 records" in run(
        "audit", "verify", str(cons), "--public-key", pub, env=home).stdout
    doc = json.loads(cons.read_text())
    doc["first_root"] = "00" * 32
    cons.write_text(json.dumps(doc))
    bad = run("audit", "verify", str(cons), "--public-key", pub, env=home, check=False)
    assert bad.returncode == 1 and "fork" in bad.stderr


def test_a_tenant_export_verifies_offline(home, served, tmp_path):
    pub = run("audit", "public-key", env=home).stdout.strip()
    export = tmp_path / "acme.jsonl"
    export.write_text(run("audit", "export", "--tenant", "acme", env=home).stdout)
    out = run("audit", "verify", str(export), "--public-key", pub, env=home).stdout
    assert "3 records of tenant acme, each proven in the tree head of size 3" in out
