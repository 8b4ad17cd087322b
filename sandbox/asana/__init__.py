"""A stateful Asana that speaks the real REST contract, split by resource (see simulator.py)."""

from .demo import DEMO, DEMO_DISABLED_OPTIONS, build_demo
from .helpers import HELP
from .simulator import AsanaSimulator

__all__ = ["DEMO", "DEMO_DISABLED_OPTIONS", "HELP", "AsanaSimulator", "build_demo"]
