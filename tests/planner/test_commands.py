"""`fabrique plan` as a user runs it (in-process with Typer's runner; one real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fabrique.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "plan"
runner = CliRunner()

ESTIMATE = ["plan", "estimate", "--gpu", "H200", "--gpus", "1", "--model", "llama-3.1-70b",
            "--precision", "fp8", "--input-tokens", "1000", "--output-tokens", "1000"]


def test_estimate_json_has_the_fields_the_issue_names() -> None:
    result = runner.invoke(app, [*ESTIMATE, "--tpot-ms", "50", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    for key in ("tokens_per_s_per_gpu", "ttft_ms", "tpot_ms", "batch", "fits"):
        assert key in out
    assert out["fits"] is True and out["tpot_ms"] <= 50 and out["tokens_per_s_per_gpu"] > 0


def test_estimate_that_cannot_fit_is_json_with_a_reason() -> None:
    result = runner.invoke(app, ["plan", "estimate", "--gpu", "H100", "--model", "llama-3.1-405b",
                                 "--precision", "fp16", "--input-tokens", "1000",
                                 "--output-tokens", "1000", "--json"])
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert out["fits"] is False and "weights" in out["reason"]


def test_unknown_gpu_is_one_line_with_the_closest_names() -> None:
    result = runner.invoke(app, [*ESTIMATE[:2], "--gpu", "H2OO", *ESTIMATE[4:]])
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0
    assert "unknown GPU 'H2OO'; known (closest first): H200-SXM" in result.stderr


def test_estimate_table() -> None:
    result = runner.invoke(app, ESTIMATE)
    assert result.exit_code == 0 and "llama-3.1-70b on 1× H200-SXM" in result.stdout


def test_validate_prints_every_row_and_the_summary() -> None:
    result = runner.invoke(app, ["plan", "validate", "--json"])
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert out["summary"]["rows"] == len(out["rows"]) >= 12
    assert out["summary"]["accelerators"] >= 4 and out["summary"]["models"] >= 3
    assert all(row["source"] for row in out["rows"])
    table = runner.invoke(app, ["plan", "validate"])
    assert "median |error|" in table.stdout


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_run_as_they_are(example: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["plan", str(example), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["site"]["gpus"] > 0
    assert all(d["fits"] and d["tokens_per_s_per_gpu"] > 0 for d in out["deployments"])
    csv = runner.invoke(app, ["plan", "run", str(example), "--csv"])
    assert csv.stdout.splitlines()[0].startswith("name,model,precision,gpus")
    png = tmp_path / "plot.png"
    table = runner.invoke(app, ["plan", str(example), "--plot", str(png)])
    assert table.exit_code == 0 and png.read_bytes()[:4] == b"\x89PNG"


def test_44mw_site_is_18000_gb200() -> None:
    out = json.loads(runner.invoke(app, ["plan", str(EXAMPLES / "44mw-gb200.yaml"),
                                         "--json"]).stdout)
    assert out["site"]["gpus"] == 18_000 and out["site"]["systems"] == 250


@pytest.mark.parametrize(("text", "expected"), [
    ("name: x\nfacility: {accelerator: B200, grid_mw: 1}\nworkload: {input_tokens: 10}\n"
     "deployments: [{model: mistral-7b}]\n", ":3: workload.output_tokens: Field required"),
    ("name: x\nfacility: {accelerator: B2O0, grid_mw: 1}\nworkload: {input_tokens: 10, "
     "output_tokens: 5}\ndeployments: [{model: mistral-7b}]\n",
     ":2: facility.accelerator: unknown GPU 'B2O0'; known (closest first): B200"),
    ("name: x\nfacility: {accelerator: B200, grid_mw: 1}\nworkload: {input_tokens: 10, "
     "output_tokens: 5}\ndeployments:\n  - model: mistral-7b\n    precision: int3\n",
     ":6: deployments[0].precision: unknown precision 'int3'"),
    ("name: x\nfacility: {accelerator: B200, grid_mw: 1, gpus: 8}\nworkload: {input_tokens: 10, "
     "output_tokens: 5}\ndeployments: [{model: mistral-7b}]\n",
     ":2: facility: give exactly one of grid_mw or gpus"),
    ("name: [x\n", ": not valid YAML"),
])
def test_scenario_errors_name_the_file_line_and_field(text: str, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = runner.invoke(app, ["plan", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"fabrique: {path}")
    assert expected in result.stderr
    assert "Traceback" not in result.output


def test_missing_scenario_file() -> None:
    result = runner.invoke(app, ["plan", "no-such-file.yaml"])
    assert result.exit_code == 2 and "cannot read the scenario" in result.stderr


def test_every_plan_command_has_help_with_an_example() -> None:
    for command in ("estimate", "validate", "list", "run"):
        result = runner.invoke(app, ["plan", command, "--help"])
        assert result.exit_code == 0 and "Example" in result.stdout


def test_help_stays_light() -> None:
    """`fabrique --help` must not import NumPy or matplotlib."""
    code = ("import sys, fabrique.cli; "
            "print(any(m in sys.modules for m in ('numpy', 'matplotlib', 'rich.table')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_announced_hardware_says_so() -> None:
    result = runner.invoke(app, ["plan", "estimate", "--gpu", "vera-rubin", "--gpus", "8", "--model",
                                 "deepseek-r1", "--precision", "fp4", "--input-tokens", "1000",
                                 "--output-tokens", "500"])
    assert result.exit_code == 0 and "ANNOUNCED" in result.stdout
    out = json.loads(runner.invoke(app, ["plan", "estimate", "--gpu", "vera-rubin", "--model",
                                         "llama-3.1-8b", "--input-tokens", "100",
                                         "--output-tokens", "100", "--json"]).stdout)
    assert out["status"] == "announced"


def test_a_deployment_that_cannot_fit_is_reported_not_crashed(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("name: tight\nfacility: {accelerator: H100, gpus: 8}\n"
                    "workload: {input_tokens: 1000, output_tokens: 100}\n"
                    "deployments:\n  - {model: llama-3.1-405b, precision: fp16, gpus_per_replica: 8}\n")
    table = runner.invoke(app, ["plan", str(path)])
    assert table.exit_code == 0 and "weights: llama-3.1-405b at fp16 needs" in table.stdout
    out = json.loads(runner.invoke(app, ["plan", str(path), "--json"]).stdout)
    assert out["deployments"][0]["fits"] is False


def test_engine_settings_from_the_command_line_and_scenarios(tmp_path: Path) -> None:
    ask = ["plan", "estimate", "--gpu", "B200", "--gpus", "8", "--model", "deepseek-r1",
           "--precision", "fp4", "--input-tokens", "1000", "--output-tokens", "1000", "--json"]
    base = json.loads(runner.invoke(app, ask).stdout)
    capped = json.loads(runner.invoke(app, [*ask, "--set", "max_batch=64"]).stdout)
    assert capped["max_batch"] == 64 * 8 < base["max_batch"]        # per attention rank
    balanced = json.loads(runner.invoke(app, [*ask, "--set", "attention_dp_balance=true",
                                              "--tpot-ms", "40"]).stdout)
    unbalanced = json.loads(runner.invoke(app, [*ask, "--tpot-ms", "40"]).stdout)
    assert balanced["tokens_per_s_per_gpu"] > unbalanced["tokens_per_s_per_gpu"]
    bad = runner.invoke(app, [*ask, "--set", "warp_speed=9"])
    assert bad.exit_code == 1 and "unknown engine setting 'warp_speed'" in bad.stderr
    path = tmp_path / "s.yaml"
    path.write_text("name: x\nfacility: {accelerator: B200, gpus: 8}\nworkload: {input_tokens: 10, "
                    "output_tokens: 5}\ndeployments:\n  - model: mistral-7b\n"
                    "    engine_settings: {warp: 1}\n")
    result = runner.invoke(app, ["plan", str(path)])
    assert result.exit_code == 2
    assert ":6: deployments[0].engine_settings.warp: unknown engine" in result.stderr


def test_users_to_gpus() -> None:
    out = json.loads(runner.invoke(app, ["plan", str(EXAMPLES / "startup-8xb300.yaml"),
                                         "--json"]).stdout)
    for d in out["deployments"]:
        # enough whole replicas for 20,000 users, and one replica fewer would not be
        per_gpu_users = d["users"] / d["gpus"]
        assert d["gpus_for_users"] * per_gpu_users >= 20_000
        replica = 4 if d["model"] == "mistral-large-2" else 1
        assert (d["gpus_for_users"] - replica) * per_gpu_users < 20_000
        assert d["mw_for_users"] == pytest.approx(d["gpus_for_users"] * out["site"]["kw_per_gpu"] / 1e3)


def test_the_scenario_format_in_the_docs_runs(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "planner.md").read_text()
    start = doc.index("```yaml\nname: a site") + len("```yaml\n")
    path = tmp_path / "doc.yaml"
    path.write_text(doc[start:doc.index("```", start)])
    result = runner.invoke(app, ["plan", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["deployments"][0]["gpus_for_users"] > 0
