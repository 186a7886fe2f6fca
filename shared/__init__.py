"""Core of the DM job service, one package per concept.

`function_app.py` only parses requests and delegates here; nothing in this package depends on the Functions
host, so the same code runs under `func start`, the local host in `devhost/`, and tests.

- `platform/`: settings, clock, identity, errors, storage clients, the Durable bridge, lifecycle hooks, job
  environment.
- `jobs/`: a job from entity to final status: models, record, transitions, store, orchestration, activities,
  API operations.
- `schedules/`: recurring jobs: cron and policy (pure), due index, state, tick, operations, run history.
- `dmss/`: jobs whose entity lives in DMSS: addresses, client, start from an address, write-back.
- `service`: the API as `function_app` sees it, putting plain and recurring jobs together.

Imports go one way: platform <- jobs <- schedules <- service <- dmss.start; `schedules.runs` (the glue that
starts runs as jobs) is the one module of schedules that uses `service`.
"""
