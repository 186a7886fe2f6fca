"""Jobs whose entity lives in DMSS (the old clients' way of starting a job).

- `address`: DMSS addresses, parsed and resolved (pure).
- `client`: the DMSS endpoints the service calls, errors mapped to API errors, no token ever logged.
- `jobs`: credentials, fetching the job entity, its environment, write-back, result delivery, token renewal.
- `start`: `POST /api/jobs/{address}`: start from an address, undoing the first write-back if the start fails.
- `writeback`: the lifecycle listener that keeps the entity's `uid`, `status`, `started`, `ended` current.
"""
