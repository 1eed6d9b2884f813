"""``adsync demo``: the real daemon on a throw-away config, local fake targets, and a few
changes followed live through the queue. Everything it needs ships in the installed
packages (``adsync.testing`` holds the fakes), so it runs from a plain ``pip install .``."""
