"""A simulated Apache Mesos master and its agents, for testing the Mesos backend without Mesos.

`protocol` holds the v1 messages as schema tables and validates calls strictly; `agents` the
agents, their tasks and the offer cycle; `master` the HTTP server; `harness` runs masters on a
thread of their own, for tests that drive a `pacer serve` subprocess; `serve` runs one with many
agents in a process of its own, for the scale benchmark (`bench/mesos_scale.py`).
"""

from .agents import AgentSpec, Cluster, ranges_attribute, scalar_attribute, set_attribute, text_attribute
from .master import SimulatedMaster

__all__ = ["AgentSpec", "Cluster", "SimulatedMaster", "ranges_attribute", "scalar_attribute", "set_attribute",
           "text_attribute"]
