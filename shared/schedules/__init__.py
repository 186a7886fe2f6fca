"""Recurring jobs, one module per concept, each depending only on those above it:

- `cron`: cron expressions in a time zone, with the DST rule (pure).
- `policy`: a schedule's settings and what a tick must do at a given time (pure).
- `due_index`: the `ScheduleDue` table, which schedule is due in which minute.
- `state`: the schedule state on the RecurringJob's record, as a typed record.
- `history`: what became of the runs (the lifecycle listener and the tick's refresh).
- `tick`: the minute tick, claim / start / finalize, exactly once.
- `operations`: register, suspend, resume, unregister, preview, view (the job service's entry points).
- `runs`: the glue that starts and stops runs through the job service (the only one that imports it).
"""
