"""Registers into helpers_registry.REGISTRY, slowly: another thread asks while this import runs."""

from __future__ import annotations

import time

from helpers_registry import REGISTRY

REGISTRY.register("first", "early")
time.sleep(0.3)  # like a module importing a solver library
REGISTRY.register("late", "registered after a slow import")
