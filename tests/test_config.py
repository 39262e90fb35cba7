"""Config loading: validation errors that name the file, the field and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from fabrique.config import Config, default_config, load_config, settings_reference
from fabrique.errors import ConfigError

EXAMPLES = Path(__file__).parent.parent / "examples"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fabrique.yaml"
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.message


def test_default_config_is_offline_and_simulated():
    config = default_config()
    assert {p.type for p in config.providers} == {"simulated"}
    assert all("sim" in m.name for m in config.models)


def test_unknown_field_names_path_and_line(tmp_path):
    path = write(tmp_path, "server:\n  port: 80\n  prot: 81\n")
    assert error_of(path).startswith(f"{path}:3: server.prot: unknown setting (every setting: ")
    # A misspelt section whose value is a block: the line of its name, not of its first child.
    path = write(tmp_path, "models: []\nserverr:\n  port: 1\n")
    assert error_of(path).startswith(f"{path}:2: serverr: unknown setting")


def test_wrong_type_says_what_was_expected(tmp_path):
    path = write(tmp_path, "routing:\n  retries: many\n")
    message = error_of(path)
    assert f"{path}:2: routing.retries:" in message and "integer" in message


def test_unknown_references_name_their_line(tmp_path):
    path = write(tmp_path, "providers:\n  - name: a\n    type: simulated\nmodels:\n  - name: m\n"
                           "    deployments:\n      - provider: ghost\n    fallbacks: [e]\n"
                           "  - name: e\n    kind: embedding\n    deployments: [{provider: a}]\n")
    assert error_of(path).splitlines() == [
        f"{path}:7: models[0].deployments[0].provider: model 'm' uses provider 'ghost', which "
        "is not declared (declared: a)",
        f"{path}:8: models[0].fallbacks[0]: model 'm' (chat) cannot fall back to 'e', an "
        "embedding model"]


def test_bad_recognizers_and_policies_fail_at_start_naming_them(tmp_path):
    path = write(tmp_path, "sovereignty:\n  recognizers:\n    - name: staff\n      type: STAFF_ID\n"
                           "      patterns: ['EMP-(\\d+']\n")
    assert error_of(path).startswith(
        f"{path}:3: sovereignty.recognizers[0]: recognizer 'staff': pattern 1 is not a valid "
        "regular expression (missing ), unterminated subpattern")
    path = write(tmp_path, "sovereignty:\n  recognizers:\n    - {name: x, type: X, patterns: ['a*']}\n")
    assert "recognizer 'x': pattern 1 matches the empty string" in error_of(path)
    path = write(tmp_path, "sovereignty:\n  recognizers:\n    - {name: x, type: lower, deny_list: [a]}\n")
    assert error_of(path) == (f"{path}:3: sovereignty.recognizers[0].type: 'lower' must be "
                              "UPPER_SNAKE, e.g. LOWER")
    path = write(tmp_path, "sovereignty:\n  tenants:\n    acme: strict\n  default_policy: open\n")
    assert error_of(path).splitlines() == [
        f"{path}:4: sovereignty.default_policy: unknown policy 'open' (declared: default)",
        f"{path}:3: sovereignty.tenants.acme: tenant 'acme' has unknown policy 'strict' "
        "(declared: default)"]
    path = write(tmp_path, "sovereignty:\n  entity_classes:\n    FR_NIR: sensitive\n    NIR: sensitive\n")
    assert error_of(path).startswith(
        f"{path}:4: sovereignty.entity_classes.NIR: unknown entity type 'NIR' (known: ADDRESS, "
        "CREDIT_CARD, DATE_OF_BIRTH, EMAIL, FR_ADDRESS, FR_NIR,")
    path = write(tmp_path, "sovereignty:\n  policies:\n    - name: p\n      personal:\n"
                           "        jurisdictions: [France]\n")
    assert error_of(path) == (
        f"{path}:5: sovereignty.policies[0].personal: jurisdictions: 'France' is not an ISO "
        "3166-1 country code (two capital letters, e.g. FR, DE, US), or EEA, EU or *")
    path = write(tmp_path, "providers:\n  - {name: a, type: simulated, jurisdiction: UK}\n")
    assert error_of(path) == (f"{path}:2: providers[0].jurisdiction: 'UK' is not an ISO 3166-1 "
                              "country code (two capital letters, e.g. FR, DE, US); ISO writes GB")


def test_a_wrong_provider_type_points_at_the_type_line(tmp_path):
    path = write(tmp_path, "providers:\n  - name: a\n    type: openai-compatible\n")
    assert error_of(path).startswith(f"{path}:3: providers[0].type: Input tag 'openai-compatible'")


def test_missing_env_var_names_the_line(tmp_path, monkeypatch):
    monkeypatch.delenv("NOPE_KEY", raising=False)
    path = write(tmp_path, "providers:\n  - name: a\n    type: openai_compatible\n"
                           "    base_url: http://h/v1\n    api_key: ${NOPE_KEY}\n")
    assert error_of(path) == (f"{path}:5: environment variable NOPE_KEY is not set "
                              "(write ${NOPE_KEY:-default} to give a default)")


def test_env_default(tmp_path, monkeypatch):
    monkeypatch.delenv("PORT_X", raising=False)
    assert load_config(write(tmp_path, "server:\n  port: ${PORT_X:-9999}\n")).server.port == 9999


def test_invalid_yaml_and_missing_file(tmp_path):
    assert "not valid YAML" in error_of(write(tmp_path, "server: [\n"))
    assert "cannot read" in error_of(tmp_path / "absent.yaml")
    assert "mapping" in error_of(write(tmp_path, "- a\n- b\n"))


def test_examples_are_valid(monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", "x")
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert files
    for path in files:
        assert isinstance(load_config(path), Config)


def test_every_setting_is_documented():
    reference = settings_reference()
    assert "TODO" not in reference
    for line in reference.splitlines():
        if line.startswith("- `"):
            assert line.split(":", 1)[1].strip(), f"undocumented: {line}"


def test_docs_reference_is_current():
    docs = Path(__file__).parent.parent / "docs" / "config.md"
    assert docs.read_text() == settings_reference(), "run: fabrique config reference > docs/config.md"
