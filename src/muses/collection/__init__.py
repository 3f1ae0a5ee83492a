"""The collection: the store, importers and image generation."""
from muses.collection.store import Image, Item, Store

__all__ = ["Image", "Item", "Store"]
