"""Shared test configuration: the real-component fixtures live in tests/fixtures/plugin.py."""

pytest_plugins = ["tests.fixtures.plugin"]
