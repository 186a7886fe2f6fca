"""The backfill driver is replayed by the Durable SDK: driven here as the SDK drives it (send results, throw
failures into the generator) to show that a failed step activity does not end the driver."""

from __future__ import annotations

from datetime import datetime, timezone

from shared.schedules import runs

NOW = datetime(2026, 3, 2, 12, 0, 0, tzinfo=timezone.utc)


class Context:
    current_utc_datetime = NOW

    def __init__(self, data):
        self.data = data
        self.tasks: list[tuple] = []
        self.continued = None

    def get_input(self):
        return self.data

    def call_activity(self, name, argument):
        self.tasks.append(("activity", name, argument))
        return self.tasks[-1]

    def create_timer(self, fire_at):
        self.tasks.append(("timer", fire_at))
        return self.tasks[-1]

    def continue_as_new(self, data):
        self.continued = data


def test_a_step_that_failed_as_an_activity_waits_and_steps_again():
    context = Context({"uid": "s1"})
    driver = runs.drive(context)
    assert next(driver)[0] == "activity"
    # the SDK throws TaskFailed into the orchestrator when the activity raised or ran past functionTimeout
    assert driver.throw(Exception("TaskFailed: timed out"))[0] == "timer"
    assert driver.send(None)[0] == "activity"  # it steps again after the wait
    try:
        driver.send({"active": False})
    except StopIteration as done:
        assert done.value == {"uid": "s1", "done": True}
    else:
        raise AssertionError("the driver should end once the backfill is no longer active")
