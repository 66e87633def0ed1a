"""Fixtures for the API tests: the fake provider servers, for routes whose
answers show in what a provider receives."""

from tests.engine.fakes import fake_anthropic, fake_openai  # noqa: F401 (fixtures)
