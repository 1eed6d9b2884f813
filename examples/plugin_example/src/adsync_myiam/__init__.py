# file: src/adsync_myiam/__init__.py
"""adsync backend for MyIAM: PUT the new password to its REST API."""

from adsync_myiam.backend import MyIamBackend
from adsync_myiam.config import MyIamConfig

__all__ = ["MyIamBackend", "MyIamConfig"]
