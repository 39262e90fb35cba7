"""A tiny random-weight llama model in GGUF, for tests against llama-cpp-python's server.

The model is generated, not downloaded: 2 layers, 64-wide, random weights from a fixed
seed. Only its vocabulary is real: the vocab-only file ``ggml-vocab-llama-spm.gguf``
that ships in llama-cpp-python's *source* distribution (vendor/llama.cpp/models/).

Both files are cached in ``tests/.cache/`` (git-ignored). The vocabulary is found, in
order, in that cache; in a ``llama_cpp_python-*.tar.gz`` sdist placed in the cache
(the offline route); else pip downloads the sdist of the installed version once
(``pip download --no-binary :all: --no-deps``), the vocabulary is extracted and the
76 MB tarball deleted.

Run it to fill the cache ahead of time (e.g. in CI, before going offline)::

    python tests/providers/tiny_gguf.py        # prints the model's path
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

CACHE = Path(__file__).resolve().parent.parent / ".cache"
VOCAB = "ggml-vocab-llama-spm.gguf"
DIST = "llama-cpp-python"

# The architecture: small enough to load in milliseconds, big enough to be a real llama.
N_LAYER, N_EMBD, N_HEAD, N_HEAD_KV, N_FF, N_CTX_TRAIN = 2, 64, 4, 2, 128, 2048
SEED = 1234
_SPEC = f"v1-{VOCAB}-{N_LAYER}-{N_EMBD}-{N_HEAD}-{N_HEAD_KV}-{N_FF}-{N_CTX_TRAIN}-{SEED}"


class VocabUnavailable(RuntimeError):
    """The vocabulary is not cached and could not be fetched (e.g. offline)."""


def vocab_file(cache: Path = CACHE) -> Path:
    """The vocab-only GGUF from llama-cpp-python's sdist, cached in ``cache``."""
    target = cache / VOCAB
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    local = sorted(cache.glob("llama_cpp_python-*.tar.gz"))
    if local:
        _extract_vocab(local[-1], target)
        return target
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        _extract_vocab(_download_sdist(Path(tmp)), target)
    return target


def _download_sdist(dest: Path) -> Path:
    try:
        version = importlib.metadata.version(DIST)
    except importlib.metadata.PackageNotFoundError as exc:
        raise VocabUnavailable(f"{DIST} is not installed") from exc
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:",
           "--no-deps", f"{DIST}=={version}", "-d", str(dest)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VocabUnavailable(f"cannot run pip download: {exc}") from exc
    tarballs = sorted(dest.glob("*.tar.gz"))
    if proc.returncode != 0 or not tarballs:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise VocabUnavailable(f"pip download {DIST}=={version} failed: {' | '.join(tail)}")
    return tarballs[0]


def _extract_vocab(tarball: Path, target: Path) -> None:
    suffix = f"/vendor/llama.cpp/models/{VOCAB}"
    with tarfile.open(tarball) as tar:
        member = next((m for m in tar if m.isfile() and m.name.endswith(suffix)), None)
        if member is None:
            raise VocabUnavailable(f"{tarball.name} has no {suffix}")
        source = tar.extractfile(member)
        assert source is not None
        _write_atomically(target, source.read())


def _write_atomically(target: Path, data: bytes) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)


def model_file(cache: Path = CACHE) -> Path:
    """The tiny model, generated into ``cache`` on first use (a few MB, well under a second)."""
    digest = hashlib.sha256(_SPEC.encode()).hexdigest()[:12]
    target = cache / f"tiny-llama-{digest}.gguf"
    if not target.is_file():
        vocab = vocab_file(cache)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        _write_model(tmp, vocab)
        os.replace(tmp, target)
    return target


def _tokenizer_fields(vocab: Path) -> list[tuple[str, Any, Any, Any]]:
    """Every ``tokenizer.*`` key of ``vocab`` as (key, value, type, sub_type)."""
    from gguf import GGUFReader, GGUFValueType

    out = []
    for name, field in GGUFReader(vocab).fields.items():
        if not name.startswith("tokenizer."):
            continue
        main = field.types[0]
        if main == GGUFValueType.ARRAY:
            sub = field.types[-1]
            if sub == GGUFValueType.STRING:
                value: Any = [bytes(field.parts[i]) for i in field.data]
            else:
                value = [field.parts[i].item() for i in field.data]
            out.append((name, value, main, sub))
        elif main == GGUFValueType.STRING:
            out.append((name, bytes(field.parts[field.data[0]]).decode(), main, None))
        else:
            out.append((name, field.parts[field.data[0]].item(), main, None))
    return out


def _write_model(path: Path, vocab: Path) -> None:
    import numpy as np
    from gguf import GGUFWriter, LlamaFileType, PoolingType

    fields = _tokenizer_fields(vocab)
    tokens = next(value for name, value, *_ in fields if name == "tokenizer.ggml.tokens")
    n_vocab = len(tokens)
    head_dim = N_EMBD // N_HEAD
    rng = np.random.default_rng(SEED)

    def weight(*shape: int) -> Any:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    writer = GGUFWriter(str(path), "llama")
    writer.add_name("fabrique-tiny-llama")
    writer.add_file_type(LlamaFileType.ALL_F32)
    writer.add_vocab_size(n_vocab)
    writer.add_context_length(N_CTX_TRAIN)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD_KV)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(1e-5)
    # Pooling only matters when a server runs it with --embedding: one vector per input.
    writer.add_pooling_type(PoolingType.MEAN)
    for name, value, vtype, sub in fields:
        writer.add_key_value(name, value, vtype, sub)

    embeddings = weight(n_vocab, N_EMBD)
    # The output layer is tied to these embeddings. Zero the control tokens' rows (unk,
    # bos, eos): their logit is then 0 while the best of 32000 random logits is > 0, so
    # greedy decoding never stops early and `max_tokens` decides every answer's length.
    embeddings[:3] = 0.0
    writer.add_tensor("token_embd.weight", embeddings)
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    for i in range(N_LAYER):
        layer = f"blk.{i}"
        writer.add_tensor(f"{layer}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(f"{layer}.attn_q.weight", weight(N_HEAD * head_dim, N_EMBD))
        writer.add_tensor(f"{layer}.attn_k.weight", weight(N_HEAD_KV * head_dim, N_EMBD))
        writer.add_tensor(f"{layer}.attn_v.weight", weight(N_HEAD_KV * head_dim, N_EMBD))
        writer.add_tensor(f"{layer}.attn_output.weight", weight(N_EMBD, N_HEAD * head_dim))
        writer.add_tensor(f"{layer}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(f"{layer}.ffn_gate.weight", weight(N_FF, N_EMBD))
        writer.add_tensor(f"{layer}.ffn_up.weight", weight(N_FF, N_EMBD))
        writer.add_tensor(f"{layer}.ffn_down.weight", weight(N_EMBD, N_FF))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    print(model_file(Path(sys.argv[1]) if len(sys.argv) > 1 else CACHE))
