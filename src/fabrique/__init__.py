"""Fabrique: the software layer of a sovereign AI factory.

An OpenAI-compatible gateway in front of self-hosted open models and European providers.
"""

__version__ = "0.1.0"
