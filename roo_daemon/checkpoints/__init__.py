"""Checkpoints: what the agent changed in its workspace, step by step, and undo."""
