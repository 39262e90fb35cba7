"""The gateway's sovereignty settings, built once: scanner, policies, session vaults."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from fabrique.config import PolicyConfig, SovereigntyConfig
from fabrique.errors import ConfigError
from fabrique.keys import Principal
from fabrique.policy.ner import NerUnavailable
from fabrique.policy.recognizers import Entity, RecognizerSpec, Scanner
from fabrique.policy.residency import BUILTIN_DEFAULT
from fabrique.policy.vault import Vault, VaultStore

log = logging.getLogger("fabrique.policy")

# Text scanned on the event loop at most; more (or any NER) goes to a worker thread, so
# that one 8 MB prompt does not stall every other request for seconds.
_INLINE_CHARS = 64 * 1024


def scanner_for(config: SovereigntyConfig, *, ner: bool | None = None,
                min_score: float | None = None, cache_size: int = 4096) -> Scanner:
    """The scanner a config describes (its recognizers, NER, threshold); ConfigError if it
    cannot be built."""
    specs = [RecognizerSpec(name=r.name, entity_type=r.type, patterns=tuple(r.patterns),
                            deny_list=tuple(r.deny_list), score=r.score, context=tuple(r.context))
             for r in config.recognizers]
    try:
        return Scanner(specs, ner=config.ner if ner is None else ner,
                       ner_models=tuple(config.ner_models),
                       min_score=config.min_score if min_score is None else min_score,
                       cache_size=cache_size)
    except NerUnavailable as exc:
        raise ConfigError(f"sovereignty.ner: {exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"sovereignty.recognizers: {exc}") from exc


class Sovereignty:
    """What the classify, decide and protect stages share."""

    def __init__(self, config: SovereigntyConfig) -> None:
        self.config = config
        self.scanner = scanner_for(config)
        # Every built-in type is personal; custom recognizers say their class.
        self.entity_class: dict[str, str] = {r.type: r.data_class for r in config.recognizers}
        self.entity_class.update(config.entity_classes)
        self.policies: dict[str, PolicyConfig] = {"default": BUILTIN_DEFAULT}
        self.policies.update({p.name: p for p in config.policies})
        self._warned: set[str] = set()
        self.vaults = (VaultStore(config.session_vaults, config.session_ttl_s)
                       if config.session_vaults else None)
        # One worker: spaCy pipelines are not meant to be called from threads at once.
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="fabrique-scan")

    async def scan_all(self, texts: list[str]) -> list[list[Entity]]:
        """The entities of each text; long texts and NER run off the event loop."""
        scan = self.scanner.scan
        if not self.config.ner and sum(map(len, texts)) <= _INLINE_CHARS:
            return [scan(text) for text in texts]
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, lambda: [scan(t) for t in texts])

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)

    def class_of(self, entity_type: str) -> str:
        return self.entity_class.get(entity_type, "personal")

    def counts(self, entity_type: str) -> bool:
        """Whether findings of this type matter: not turned public or internal in config."""
        return self.class_of(entity_type) in ("personal", "sensitive")

    def policy_for(self, principal: Principal) -> PolicyConfig:
        """The key's policy, else its tenant's (admin API), else config's for the tenant,
        else the default."""
        name = principal.policy
        if name is not None and name not in self.policies:
            # Given through the admin API, then removed from the config: the tenant's
            # policy in the config, else the default, and say so.
            if name not in self._warned:
                self._warned.add(name)
                log.warning("policy %r (given to tenant %s or one of its keys) is not in the "
                            "config; using the config's policy for the tenant instead",
                            name, principal.tenant)
            name = None
        name = name or self.config.tenants.get(principal.tenant) or self.config.default_policy
        return self.policies[name]

    def vault(self, principal: Principal, session: str | None) -> Vault:
        """The request's vault: a new one, or its session's. Sessions belong to one key: a
        session id guessed by another key of the tenant must not restore someone else's
        values."""
        if session and self.vaults is not None:
            return self.vaults.get(f"{principal.tenant}\0{principal.key_id}", session)
        return Vault()
