"""The real slapd fixture (shared with plugin authors through adsync.testing.slapd)."""

from adsync.testing.slapd import slapd

__all__ = ["slapd"]
