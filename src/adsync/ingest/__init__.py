"""Ingest: the frame codec, the Unix and TCP servers, and the client sources use."""
