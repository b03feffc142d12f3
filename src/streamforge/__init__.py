"""StreamForge: a sentence in, a live dashboard out."""

from streamforge.config import VERSION, Settings

__all__ = ["VERSION", "Settings", "__version__"]
__version__ = VERSION
