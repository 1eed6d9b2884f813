"""Oracle Identity Manager: SPML v2 (DSML profile search + password capability) over SOAP."""

from .backend import OimSpmlBackend
from .config import OimSpmlConfig

__all__ = ["OimSpmlBackend", "OimSpmlConfig"]
