"""fashion-search: fashion image search by text and by example image."""

__version__ = "0.1.0"
