"""moebench: how close to optimal are MoE expert-placement algorithms on edge servers?

The public entry points are re-exported here; see the README for the command line.
"""

from moebench.errors import InputError, MoebenchError
from moebench.evaluate import Evaluation, evaluate, gain, latency
from moebench.instance import Instance, LayerSpec, build_instance

__version__ = "0.1.0"

__all__ = [
    "Evaluation",
    "InputError",
    "Instance",
    "LayerSpec",
    "MoebenchError",
    "__version__",
    "build_instance",
    "evaluate",
    "gain",
    "latency",
]
