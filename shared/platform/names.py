"""The names the app's Durable functions and orchestration events are known by, in one cheap module.

`function_app.py` declares its functions with these at every cold start, and the code that starts, raises to or
calls them uses the same constants; keeping them here (and not in the modules that implement them) lets the
declarations load without the implementations (shared.platform.lazy).
"""

# the job orchestration (shared.jobs.orchestrator) and its activities (shared.jobs.activities)
ORCHESTRATOR = "job_orchestrator"
START_ACTIVITY = "start_job_activity"
POLL_ACTIVITY = "poll_job_activity"
FINISH_ACTIVITY = "finish_job_activity"
STOP_EVENT = "stop"
WAKE_EVENT = "wake"  # someone is watching, or the job said it ended: poll now (shared.jobs.freshness)
ENDED = "ended"  # payload of a wake that says the job ended (its own final report, its process exited)

# a recurring job's backfill (shared.schedules.runs)
BACKFILL_DRIVER = "schedule_backfill_driver"  # the orchestration that moves a backfill on
BACKFILL_STEP_ACTIVITY = "schedule_backfill_step"

# webhook deliveries (shared.webhooks.delivery, shared.webhooks.dispatch)
WEBHOOK_ORCHESTRATOR = "webhook_delivery_orchestrator"
WEBHOOK_NEXT_ACTIVITY = "webhook_delivery_next"
WEBHOOK_ATTEMPT_ACTIVITY = "webhook_delivery_attempt"
