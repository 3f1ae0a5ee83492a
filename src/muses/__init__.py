"""muses: turn a museum catalog into an image classifier."""

__version__ = "0.1.0"
