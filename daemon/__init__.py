"""voice-daemon: a watch-folder voice converter with a warm spawn pool."""

__version__ = "0.1.0"
