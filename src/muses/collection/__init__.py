"""The collection: the store, importers and image generation."""
from muses.collection.images import generate_images
from muses.collection.importers import import_records
from muses.collection.store import Image, Item, Store

__all__ = ["Image", "Item", "Store", "generate_images", "import_records"]
