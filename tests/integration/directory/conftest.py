"""A real Samba AD DC with an OU, nested groups and users, for the directory-aware tests."""

from adsync.testing.samba_dc import samba_dc, samba_template

__all__ = ["samba_dc", "samba_template"]
