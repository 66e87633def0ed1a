"""roo-daemon: the Roo-Code agent engine as a long-running Tornado service."""

__version__ = "0.1.0"
