"""The Samba AD DC hooks: pure logic and fast start (no pydantic, asyncio, click or YAML library).

Samba starts one hook process per event, so the hook path (``adsync.hooks.main``)
imports only the standard library's lightest modules and ``adsync.ingest.wire``;
``tests/unit/hooks/test_hook_imports.py`` pins the set. ``install``, ``smbconf``
are for ``adsync samba setup`` and may import more.
"""
