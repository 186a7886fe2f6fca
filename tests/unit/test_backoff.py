import pytest

from shared.jobs.polling import PollPolicy


def test_doubles_to_cap_and_resets_on_change():
    policy = PollPolicy(1, 60, 2)
    intervals, current = [], 1.0
    for _ in range(9):
        current = policy.next(current, changed=False)
        intervals.append(current)
    assert intervals == [2, 4, 8, 16, 32, 60, 60, 60, 60]
    assert policy.next(60, changed=True) == 1


def test_a_quiet_day_costs_about_1440_polls():
    policy, current, elapsed, polls = PollPolicy(), 1.0, 0.0, 0
    while elapsed < 86400:
        elapsed += current
        polls += 1
        current = policy.next(current, changed=False)
    assert 1440 <= polls < 1450


@pytest.mark.parametrize("args", [(0, 1, 2), (5, 1, 2), (1, 2, 0.5)])
def test_rejects_nonsense(args):
    with pytest.raises(ValueError):
        PollPolicy(*args)


def test_round_trips_through_orchestration_input():
    policy = PollPolicy(0.5, 30, 3)
    assert PollPolicy.from_dict(policy.as_dict()) == policy
