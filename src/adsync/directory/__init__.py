"""The local DC's own directory: per-backend account scope, the stale-password guard, the audit.

``scope`` (pure rules), ``metadata`` (pure parsing of replication metadata), ``client``
(bonsai, lazily imported), ``gate`` (what the dispatcher asks before a delivery),
``captures`` (the capture history), ``audit`` (changes no filter captured).
"""
