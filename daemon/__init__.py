"""voice-daemon: a watch-folder voice converter with a warm spawn pool."""

from importlib import metadata

try:  # the one version string is pyproject.toml's, as installed
    __version__ = metadata.version("voice-daemon")
except metadata.PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"
