"""Webhooks: signed, retried, auditable notifications of job and schedule events (README "Webhooks").

- `models`: event types, subscriptions and their validation (pure);
- `safety`: which receiver URLs may be called (no server-side request forgery into the VNet);
- `signing`: secrets and Standard Webhooks signatures (the `standardwebhooks` package);
- `store`: the tables (subscriptions, events, deliveries, the dispatch outbox);
- `events`: the job store's lifecycle listener: turns a status change into events and deliveries (enqueue only);
- `notify`: a job's one-off `notify` targets: their check at the start, their subscriptions for the listener;
- `dispatch`: starts the delivery orchestrations (at once when it can, else from the minute timer);
- `delivery`: one delivery orchestration per (subscription, job): attempts, backoff, 2xx/410/failed;
- `operations`: the API (subscriptions, a job's delivery log, redelivery);
- `functions`: the Blueprint of the HTTP functions, the orchestrator, its activities and the timer.
"""
