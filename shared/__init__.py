"""Core of the DM job service: models, storage, orchestration logic and the API operations.

`function_app.py` only parses requests and delegates here; nothing in this package depends on the
Functions host, so the same code runs under `func start`, the local host in `devhost/`, and tests.
"""
