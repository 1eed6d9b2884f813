"""Fakes and a contract kit for plugin authors and for adsync's own tests.

Every module here imports in a production install; what needs pytest or lxml (the
contract kit's run, the slapd and Samba fixtures, the OIM fake) names the ``testing``
extra when it is used.
"""
