"""Upstream adapters behind one ``Provider`` interface.

``OpenAICompatible`` speaks HTTP to any engine or vendor with the OpenAI API (vLLM,
SGLang, Ollama, llama.cpp, Mistral, Scaleway, OVHcloud …); ``Simulated`` answers in
process from the simulated engine. Both return an ``UpstreamResponse``.
"""

from fabrique.providers.base import Provider, UpstreamRequest, UpstreamResponse, build_provider

__all__ = ["Provider", "UpstreamRequest", "UpstreamResponse", "build_provider"]
