"""Example moebench plugin: the ``ring`` family and the ``cheapest-first`` method."""

__version__ = "0.1.0"
