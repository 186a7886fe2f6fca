import pytest
from pydantic import ValidationError

from shared.jobs.models import JOB_TYPE, Job, RecurringJob, normalise_type
from shared.jobs.status import JobStatus, parse_status


def test_jobcore_alias_expands():
    assert normalise_type("JOBCORE:Shell") == "dmss://WorkflowDS/Blueprints/Shell"
    assert normalise_type("jobcore:Job") == JOB_TYPE
    assert normalise_type("WorkflowDS/Blueprints/Job") == JOB_TYPE
    assert normalise_type("dmss://DMT-Internal/DMT/AzureContainerInstanceJobClassic").startswith("dmss://DMT")


def test_unknown_attributes_are_kept_at_every_level():
    job = Job.model_validate(
        {
            "type": "JOBCORE:Job",
            "custom": {"a": 1},
            "status": "not started",
            "runner": {"type": "JOBCORE:Shell", "script": "echo hi", "environmentVariables": ["A=1"], "extra": True},
        }
    )
    dumped = job.dump()
    assert dumped["custom"] == {"a": 1}
    assert dumped["runner"]["script"] == "echo hi"
    assert dumped["runner"]["extra"] is True
    assert dumped["runner"]["type"] == "dmss://WorkflowDS/Blueprints/Shell"


def test_status_strings_are_the_old_ones():
    assert [s.value for s in JobStatus] == [
        "registered",
        "not started",
        "starting",
        "running",
        "failed",
        "completed",
        "removed",
        "unknown",
    ]
    assert parse_status("Running") is JobStatus.RUNNING
    with pytest.raises(ValueError, match="expected one of"):
        parse_status("done")


def test_runner_is_required():
    with pytest.raises(ValidationError):
        Job.model_validate({"type": JOB_TYPE})


def test_null_status_and_env_default():
    job = Job.model_validate({"type": JOB_TYPE, "status": None, "runner": {"type": "x", "environmentVariables": None}})
    assert job.status is JobStatus.NOT_STARTED
    assert job.runner.environmentVariables == []


def test_recurring_job_needs_schedule_with_cron():
    base = {
        "type": "JOBCORE:RecurringJob",
        "runner": {"type": "JOBCORE:RecurringJobHandler"},
        "applicationInput": {"type": JOB_TYPE, "runner": {"type": "JOBCORE:Shell", "script": "true"}},
    }
    with pytest.raises(ValidationError):
        RecurringJob.model_validate(base)
    job = RecurringJob.model_validate(
        {**base, "schedule": {"type": "JOBCORE:CronJob", "cron": "* * * * *", "runs": None, "timezone": "Europe/Oslo"}}
    )
    assert job.is_recurring and job.schedule.runs == []
    assert job.dump()["schedule"]["timezone"] == "Europe/Oslo"
