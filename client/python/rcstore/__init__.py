"""rcstore: the Python client of rcstore, a networked object store with
reference-count semantics (SPEC section 11).

``rcstore.connect(address, ttl=..., auth=..., user=..., tls=...)`` gives a
``Client`` with one method per protocol method; ``Client.new`` and
``Client.ref`` give ``Ref`` objects, each owning one hold that Python's own
collector gives back. ``rcstore.aio`` (imported on demand, not here) is the
same for asyncio. See docs/python.md.
"""

__version__ = "0.1.0"

from ._client import Client, Pipeline, Ref, connect
from .errors import *  # noqa: F401,F403 (Error and one subclass per code)
from .errors import __all__ as _errors_all

__all__ = ["connect", "Client", "Ref", "Pipeline", "__version__", *_errors_all]
