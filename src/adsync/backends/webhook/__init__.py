"""Reference plugin ``webhook``: a signed JSON POST per change to an in-house endpoint."""

from .backend import WebhookBackend
from .config import WebhookConfig

__all__ = ["WebhookBackend", "WebhookConfig"]
