"""HCL Domino: AD password sync requests over the Domino REST API."""

from .backend import DominoBackend
from .config import DominoConfig

__all__ = ["DominoBackend", "DominoConfig"]
