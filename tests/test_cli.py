"""The CLI as a user runs it: real processes, real ports, the openai SDK as the client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest
from openai import OpenAI

FABRIQUE = [sys.executable, "-m", "fabrique"]


def run(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*FABRIQUE, *args], env=env, capture_output=True, text=True,
                            timeout=60)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "FABRIQUE_HOME": str(tmp_path / "home")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited: {proc.stderr.read() if proc.stderr else ''}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError("the server did not start")


def test_serve_with_no_config_and_a_cli_key(env):
    key = run("keys", "create", "--tenant", "acme", env=env).stdout.strip().splitlines()[-1]
    assert key.startswith("fab-")
    port = free_port()
    proc = subprocess.Popen([*FABRIQUE, "serve", "--port", str(port)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, proc)
        sdk = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
        ids = {m.id for m in sdk.models.list().data}
        assert {"fabrique-sim-chat", "fabrique-sim-embed"} <= ids
        answer = sdk.chat.completions.create(model="fabrique-sim-chat", max_tokens=3,
                                             messages=[{"role": "user", "content": "Salut"}])
        assert answer.choices[0].message.content.startswith("[simulated]")
        stream = sdk.chat.completions.create(model="fabrique-sim-chat", max_tokens=3, stream=True,
                                             messages=[{"role": "user", "content": "Salut"}])
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert sdk.completions.create(model="fabrique-sim-chat", prompt="a", max_tokens=2).choices
        assert sdk.embeddings.create(model="fabrique-sim-embed", input="a").data[0].embedding
        # Revoked from another process: refused within the key cache TTL (5 s by default).
        key_id = key[4:16]
        run("keys", "revoke", key_id, env=env)
        time.sleep(5.2)
        with pytest.raises(Exception, match="revoked"):
            sdk.models.list()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert f"http://127.0.0.1:{port}/v1" in err
    assert "fabrique keys create --tenant" in err
    assert key not in err  # secrets never reach the logs


def test_sigterm_ends_open_streams_with_an_error_event(env, tmp_path):
    config = tmp_path / "slow.yaml"
    config.write_text("server: {shutdown_timeout_s: 2}\n"
                      "providers: [{name: sim, type: simulated, profile: {decode_ms_per_token: 100}}]\n"
                      "models: [{name: chat, deployments: [{provider: sim}]}]\n")
    key = run("keys", "create", "--tenant", "acme", "--config", str(config),
              env=env).stdout.strip().splitlines()[-1]
    port = free_port()
    proc = subprocess.Popen([*FABRIQUE, "serve", "--config", str(config), "--port", str(port)],
                            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, proc)
        sdk = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
        stream = sdk.chat.completions.create(model="chat", max_tokens=500, stream=True,
                                             messages=[{"role": "user", "content": "Salut"}])
        assert next(iter(stream)).choices
        proc.terminate()
        with pytest.raises(openai.APIError, match="shutting down") as raised:
            for _ in stream:
                pass
        assert raised.value.code == "gateway_shutdown"
    finally:
        proc.terminate()
        proc.communicate(timeout=15)


def test_keys_list_and_revoke(env):
    key = run("keys", "create", "--tenant", "acme", "--name", "ci", env=env).stdout.split()[-1]
    listed = run("keys", "list", "--json", env=env).stdout
    assert key[4:16] in listed and key not in listed
    run("keys", "revoke", key[4:16], env=env)
    assert '"status":"revoked"' in run("keys", "list", "--json", env=env).stdout
    bad = run("keys", "revoke", "nosuchkey000", env=env, check=False)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_policies_for_tenants_and_keys(env, tmp_path):
    path = tmp_path / "f.yaml"
    path.write_text("sovereignty:\n  policies:\n    - name: open\n      personal: {jurisdictions: ['*']}\n")
    bad = run("tenants", "set-policy", "acme", "nope", "--config", str(path), env=env, check=False)
    assert bad.returncode == 1
    assert bad.stderr == f"fabrique: unknown policy 'nope': {path} declares default, open\n"
    bad = run("tenants", "set-policy", "acme", "open", env=env, check=False)
    assert bad.stderr == ("fabrique: unknown policy 'open': the built-in config declares default; give "
                          "the gateway's config with --config FILE or FABRIQUE_CONFIG\n")
    run("tenants", "set-policy", "acme", "open", "--config", str(path), env=env)
    assert run("tenants", "list", env=env).stdout == "acme\topen\n"
    run("keys", "create", "--tenant", "acme", "--policy", "open", "--config", str(path), env=env)
    assert '"policy":"open"' in run("keys", "list", "--json", env=env).stdout
    run("tenants", "set-policy", "acme", env=env)
    assert run("tenants", "list", env=env).stdout == "acme\tdefault (default)\n"


def test_config_check_says_what_serve_would_refuse(env, tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("providers: [{name: sim, type: simulated}]\n"
                    "models: [{name: chat, deployments: [{provider: sim, model: m}]}]\n"
                    "metering: {deployments: {sim/nope: {price: {input_eur_per_1m: 1}}}}\n")
    bad = run("config", "check", str(path), env=env, check=False)
    assert bad.returncode == 2
    assert "unknown deployment 'sim/nope' (known: sim/m)" in bad.stderr


def test_config_errors_name_file_field_and_line(env, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("providers:\n  - name: up\n    type: openai_compatible\n"
                    "    base_url: http://x/v1\n    timeouts:\n      connect_s: soon\n")
    result = run("serve", "--config", str(path), env=env, check=False)
    assert result.returncode == 2
    assert f"{path}:6: providers[0].timeouts.connect_s:" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_command_has_help_with_an_example(env):
    for command in (["serve"], ["simulate"], ["scan"], ["keys", "create"], ["keys", "list"],
                    ["keys", "revoke"], ["tenants", "list"], ["tenants", "set-policy"],
                    ["config", "check"], ["config", "reference"]):
        out = run(*command, "--help", env=env).stdout
        assert "Example" in out, command


def test_simulate_serves_the_openai_api(env):
    port = free_port()
    proc = subprocess.Popen([*FABRIQUE, "simulate", "--port", str(port), "--decode-ms", "0",
                             "--model", "sim-chat"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, proc)
        sdk = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        answer = sdk.chat.completions.create(model="sim-chat", max_tokens=3,
                                             messages=[{"role": "user", "content": "x"}])
        assert answer.usage.completion_tokens == 3
        assert [m.id for m in sdk.models.list().data] == ["sim-chat"]
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_simulate_rejects_bad_options(env):
    result = run("simulate", "--error-rate", "2", env=env, check=False)
    assert result.returncode == 2
    assert "--error-rate" in result.stderr and "Traceback" not in result.stderr


def test_scan_prints_one_json_object_per_finding(env, tmp_path):
    text = "Écrivez à léa@example.fr ou au 06 12 34 56 78.\n"
    result = subprocess.run([*FABRIQUE, "scan"], input=text, env=env, capture_output=True,
                            text=True, timeout=60)
    findings = [json.loads(line) for line in result.stdout.splitlines()]
    assert [f["type"] for f in findings] == ["EMAIL", "PHONE_NUMBER"]
    for f in findings:  # offsets are characters, not bytes ("É", "é")
        assert text[f["start"]:f["end"]] == f["text"]
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\xff\xfe\x00")
    bad = run("scan", str(binary), env=env, check=False)
    assert bad.returncode == 1 and f"{binary}: not UTF-8" in bad.stderr


def test_scan_ner_finds_names_no_cue_announces(env):
    text = "Hier, Claire Bernard a signé le contrat.\n"
    plain = run_with_input(["scan"], text, env)
    assert plain.returncode == 0 and plain.stdout == ""
    result = run_with_input(["scan", "--ner"], text, env)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["text"] for line in result.stdout.splitlines()] == ["Claire Bernard"]


def test_scan_ner_without_spacy_says_how_to_install_it(env, tmp_path):
    shadow = tmp_path / "no-spacy" / "spacy"  # found before the real one: importing it fails
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('simulated: no spaCy here')\n")
    env = {**env, "PYTHONPATH": os.pathsep.join([str(shadow.parent), env.get("PYTHONPATH", "")])}
    result = run_with_input(["scan", "--ner"], "M. Dupont", env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "fabrique: --ner: NER needs spaCy, which is not installed: pip install 'fabrique[ner]' "
        "(from a checkout: .venv/bin/pip install -e '.[ner]')"]


def run_with_input(args: list[str], text: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FABRIQUE, *args], input=text, env=env, capture_output=True, text=True,
                          timeout=60)


def test_scan_uses_the_configs_own_recognizers(env, tmp_path):
    path = tmp_path / "f.yaml"
    path.write_text("sovereignty:\n  recognizers:\n    - {name: staff, type: EMPLOYEE_ID, "
                    "patterns: ['\\bEMP-\\d{6}\\b']}\n")
    text = "Badge EMP-123456 perdu."
    assert run_with_input(["scan"], text, env).stdout == ""
    found = run_with_input(["scan", "--config", str(path)], text, env)
    assert json.loads(found.stdout) == {"type": "EMPLOYEE_ID", "start": 6, "end": 16,
                                        "text": "EMP-123456", "score": 1.0}
