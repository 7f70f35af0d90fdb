"""The version of syncws, in a module of its own so that the build can read it."""

__all__ = ["__version__"]

__version__ = "0.1.0"
