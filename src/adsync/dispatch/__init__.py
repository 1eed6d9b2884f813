"""The dispatcher: one lane per backend, per-account order, retry and expiry."""
