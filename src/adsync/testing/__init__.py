"""Fakes and a contract kit for plugin authors and for adsync's own tests."""
