"""Sessions: a workspace plus defaults for its tasks."""
