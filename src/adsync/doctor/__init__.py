"""``adsync doctor``: read-only checks of an installation, one result per check.

Nothing here writes: files are stat'ed and read, the queue is opened read-only, ports are
probed by connecting (never by binding), targets get a TLS handshake and, where the
product has one, a request that changes nothing.
"""

from adsync.doctor.model import Context, Result, Status, render_json, render_lines
from adsync.doctor.run import run_all

__all__ = ["Context", "Result", "Status", "render_json", "render_lines", "run_all"]
