"""tracemark: mark, record and verify what AI models produce; detect model theft; secure the chain.

The names most users need are re-exported here; each capability lives in its own
subpackage (``tracemark.text``, ``tracemark.keys``, ...).
"""

from tracemark.errors import TracemarkError

__version__ = "0.1.0"

__all__ = ["TracemarkError", "__version__"]
