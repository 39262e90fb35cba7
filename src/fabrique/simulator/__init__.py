"""A simulated OpenAI-compatible inference engine, for demos, tests and benchmarks.

Its answers are deterministic text that says it is simulated; its timing follows a small
hardware/model profile; it injects faults on request. It runs in process (the
``simulated`` provider) or alone over HTTP (``fabrique simulate``).
"""

from fabrique.simulator.engine import SimDisconnect, SimEngine, SimResponse

__all__ = ["SimDisconnect", "SimEngine", "SimResponse"]
