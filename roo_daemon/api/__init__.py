"""HTTP plumbing shared by every resource: the base handler and meta routes."""
