"""adsync as a Windows service (pywin32): install/remove/start/stop, the service class,
and logging to the Windows Event Log.

Nothing here imports pywin32 at module import time: the modules are looked up
when first used (``api.load``), so the code loads, type-checks and is tested on
Linux with fake modules put into ``sys.modules``.
"""
