"""The job: from an entity to a final status. Each concept in one module; imports go downwards only.

- `status`, `models`: the wire status strings and the entity models (after the WorkflowDS blueprints).
- `record`: `JobRecord`, one stored job, and its table row (pure).
- `transitions`: every change of a job's status (pure): start, poll, progress, stop, finish, time limit.
- `store`: the `JobStore` interface and its Table/Blob implementation; the one write path, which fires the
  lifecycle listeners on a status change (at least once: a change carries a marker until they have it).
- `validation`, `access`: what a request must be, and who may touch a job.
- `polling`, `outcomes`, `orchestrator`: the replayed orchestration, its poll backoff and the typed results its
  activities answer.
- `activities`: start, poll, finish: the I/O the orchestrator may not do.
- `operations`: the API's operations on plain jobs (`shared.service` adds recurring jobs).
"""
