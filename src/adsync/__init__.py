"""adsync: password synchronization from AD domain controllers."""

__version__ = "0.1.0"
