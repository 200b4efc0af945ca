"""coursecorrect: teach language-model agents to recover from their own mistakes.

Implements Agent-R (arXiv 2501.11425) and RISE (arXiv 2407.18219).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("coursecorrect")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
