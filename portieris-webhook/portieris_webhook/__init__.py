"""portieris-webhook: admits only container images that policy says are trusted."""

__version__ = "0.1.0"
