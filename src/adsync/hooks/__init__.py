"""The Samba AD DC hooks: pure logic and fast start (no pydantic, asyncio or YAML library).

Samba starts one hook process per event, so everything here imports only the
standard library, ``adsync.secret`` and the blocking ingest client.
"""
