"""Reference plugin ``webhook``: a signed JSON POST per change to an in-house endpoint."""

from .backend import WebhookBackend, ssl_context
from .config import WebhookConfig

__all__ = ["WebhookBackend", "WebhookConfig", "ssl_context"]
