"""Soffid IAM: the AD password back channel (policy check and propagation)."""

from .backend import SoffidBackend
from .config import SoffidConfig

__all__ = ["SoffidBackend", "SoffidConfig"]
