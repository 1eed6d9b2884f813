"""SCIM 2.0 (RFC 7644): the worked example of a backend plugin."""

from .backend import ScimBackend
from .config import ScimConfig

__all__ = ["ScimBackend", "ScimConfig"]
