"""A registry whose built-in module is slow to import (the registration race of issue 15 item 7)."""

from __future__ import annotations

from moebench.registry import Registry

REGISTRY: Registry[str] = Registry("thing", ("helpers_slow_registrant",))
