"""The encrypted durable queue: one change row, one delivery row per backend."""
