"""The web app (``muses serve``): see :func:`create_app`."""
from muses.web.app import create_app

__all__ = ["create_app"]
