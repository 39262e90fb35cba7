"""Model names → deployments: strategies, circuit breakers, the routing table."""

from fabrique.routing.breaker import CircuitBreaker
from fabrique.routing.table import Deployment, ModelGroup, RoutingTable

__all__ = ["CircuitBreaker", "Deployment", "ModelGroup", "RoutingTable"]
