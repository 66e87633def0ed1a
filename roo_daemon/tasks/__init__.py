"""Tasks: the REST resource, its manager, and the runner that executes them."""
