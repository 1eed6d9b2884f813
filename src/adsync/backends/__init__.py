"""Reference backend plugins, registered in the ``adsync.backends`` entry-point group."""
