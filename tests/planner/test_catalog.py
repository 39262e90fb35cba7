"""Catalogs: every number has a source; architectures reproduce the published parameter counts."""

from __future__ import annotations

import pytest
import yaml

from fabrique.planner import catalog
from fabrique.planner.catalog import _read
from fabrique.planner.errors import UnknownName
from fabrique.planner.shapes import shape


def _numbers(node: object, path: str = "") -> list[tuple[str, object]]:
    """Every {value, source} pair under `node`, with its path."""
    found: list[tuple[str, object]] = []
    if isinstance(node, dict):
        if "value" in node:
            found.append((path, node.get("source")))
        for key, child in node.items():
            if key not in ("value", "source"):
                found.extend(_numbers(child, f"{path}.{key}"))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            found.extend(_numbers(child, f"{path}[{i}]"))
    return found


@pytest.mark.parametrize("name", ["accelerators.yaml", "models.yaml", "engines.yaml"])
def test_every_value_has_a_source(name: str) -> None:
    numbers = _numbers(_read(name))
    assert numbers
    missing = [path for path, source in numbers if not (isinstance(source, str) and source.strip())]
    assert missing == []


def test_every_validation_row_has_a_source() -> None:
    for row in _read("validation.yaml")["rows"]:
        assert row["source"].startswith("TensorRT-LLM") or "http" in row["source"]


def test_data_files_are_plain_yaml() -> None:
    for name in ("accelerators.yaml", "models.yaml", "engines.yaml", "validation.yaml"):
        assert isinstance(yaml.safe_load(yaml.safe_dump(_read(name))), dict)


def test_catalog_covers_the_issue() -> None:
    gpus = {a.name for a in catalog.accelerators()}
    assert {"H100-SXM", "H200-SXM", "B200", "GB200-NVL72", "B300", "GB300-NVL72", "VR200-NVL144"} <= gpus
    assert catalog.accelerator("vera-rubin").status == "announced"
    names = {m.name for m in catalog.models()}
    assert {"mistral-7b", "mixtral-8x22b", "mistral-large-2", "llama-3.1-8b", "llama-3.1-70b",
            "llama-3.1-405b", "llama-2-70b", "deepseek-v3", "lucie-7b"} <= names


@pytest.mark.parametrize("model", catalog.models(), ids=lambda m: m.name)
def test_architecture_reproduces_published_parameters(model: catalog.Model) -> None:
    s = shape(model)
    assert s.params_total / 1e9 == pytest.approx(model.params_b, rel=0.02)
    if model.active_params_b is not None:
        assert s.params_active / 1e9 == pytest.approx(model.active_params_b, rel=0.03)


def test_mla_caches_the_latent_not_the_heads() -> None:
    ds = shape(catalog.model("deepseek-r1"))
    llama = shape(catalog.model("llama-3.1-70b"))
    assert ds.kv_elems_per_token == (512 + 64) * 61
    assert llama.kv_elems_per_token == 2 * 8 * 128 * 80


def test_unknown_names_list_the_closest_first() -> None:
    with pytest.raises(UnknownName) as err:
        catalog.accelerator("H20O")
    assert err.value.message.startswith("unknown GPU 'H20O'; known (closest first): H200-SXM")
    with pytest.raises(UnknownName) as err:
        catalog.model("lama-3.1-70")
    assert "closest first): llama-3.1-70b" in err.value.message


def test_aliases_and_precisions() -> None:
    assert catalog.accelerator("gb200").name == "GB200-NVL72"
    assert catalog.model("Llama-3.3-70B").name == "llama-3.1-70b"
    assert catalog.precision("BF16") == "fp16"
    assert catalog.precision("nvfp4") == "fp4"


def test_each_alias_is_listed_with_the_model_it_names() -> None:
    aliases = catalog.model_aliases()
    assert "deepseek-r1" in aliases["deepseek-v3"]
    for name, others in aliases.items():
        assert all(catalog.model(alias).name == name for alias in others)
