"""Real-server fixtures: the Samba AD DC (template provisioned once per session) and slapd."""

from adsync.testing.samba_dc import samba_dc, samba_template
from adsync.testing.slapd import slapd

__all__ = ["samba_dc", "samba_template", "slapd"]
