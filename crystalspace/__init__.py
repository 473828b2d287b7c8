"""crystalspace: maps of inorganic crystal chemical space and the ML models that explore it."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("crystalspace")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+source"
