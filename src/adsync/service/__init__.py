"""The Linux service: the systemd unit ``adsync service install`` writes, and its layout."""
