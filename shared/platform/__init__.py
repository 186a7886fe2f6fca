"""What every part of the service stands on, and nothing job-specific about the job's lifecycle.

- `settings`: the one list of app settings (README, local settings and Bicep are checked against it).
- `clock`: the one source of "now" (tests and the local host replace it).
- `identity`: who is calling, from the request headers.
- `errors`: API errors with the old service's JSON body; unexpected ones (storage down) mapped to 503.
- `storage`: table and blob clients, named from JOB_STORE_PREFIX.
- `durable`: the async Durable client adapted for the synchronous service.
- `hooks`: lifecycle listeners (DMSS write-back, schedule history) fired by the job store.
- `environment`: the environment a job gets, and scrubbing its values out of what is shown.
- `parsing`: strict JSON bodies and uids, what every route checks first.
- `replies`, `static`: HTTP replies (the one JSON error path), the static pages' answers.
- `names`: the Durable functions' and events' names; `lazy`: code loaded at first use (the cold start).
"""
