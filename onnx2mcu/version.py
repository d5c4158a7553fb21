"""The package version, one place (the core: stages may read it)."""
__version__ = "0.1.0"
