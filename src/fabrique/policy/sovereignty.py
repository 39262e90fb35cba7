"""The gateway's sovereignty settings, built once: scanner, policies, session vaults."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from fabrique.config import PolicyConfig, SovereigntyConfig
from fabrique.errors import ConfigError
from fabrique.keys import Principal
from fabrique.policy.recognizers import Entity, RecognizerSpec, Scanner
from fabrique.policy.residency import BUILTIN_DEFAULT
from fabrique.policy.vault import Vault, VaultStore

# Text scanned on the event loop at most; more (or any NER) goes to a worker thread, so
# that one 8 MB prompt does not stall every other request for seconds.
_INLINE_CHARS = 64 * 1024


class Sovereignty:
    """What the classify, decide and protect stages share."""

    def __init__(self, config: SovereigntyConfig) -> None:
        self.config = config
        specs = [RecognizerSpec(name=r.name, entity_type=r.type, patterns=tuple(r.patterns),
                                deny_list=tuple(r.deny_list), score=r.score,
                                context=tuple(r.context)) for r in config.recognizers]
        try:
            self.scanner = Scanner(specs, ner=config.ner, ner_models=tuple(config.ner_models),
                                   min_score=config.min_score)
        except (ValueError, ImportError, OSError) as exc:
            raise ConfigError(f"sovereignty: {exc}") from exc
        # Every built-in type is personal; custom recognizers say their class.
        self.entity_class: dict[str, str] = {r.type: r.data_class for r in config.recognizers}
        self.entity_class.update(config.entity_classes)
        self.policies: dict[str, PolicyConfig] = {"default": BUILTIN_DEFAULT}
        self.policies.update({p.name: p for p in config.policies})
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
        else the default. A name no longer in the config falls back to the default
        policy's strictness rather than to nothing: see ``policy_named``."""
        name = (principal.policy or self.config.tenants.get(principal.tenant)
                or self.config.default_policy)
        return self.policy_named(name)

    def policy_named(self, name: str) -> PolicyConfig:
        policy = self.policies.get(name)
        if policy is None:
            # Assigned through the admin API, then removed from the config: keep data in
            # by the built-in default rather than fail every request of the tenant.
            return BUILTIN_DEFAULT
        return policy

    def vault(self, tenant: str, session: str | None) -> Vault:
        if session and self.vaults is not None:
            return self.vaults.get(tenant, session)
        return Vault()
