"""The package version, in a module of its own so that the engine can record it without importing the package
`__init__` (which imports the engine: a cycle). Keep in step with pyproject.toml's `version`."""

__version__ = "0.1.0"
