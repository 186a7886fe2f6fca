"""shared/schedules/cron.py: parsing with clear errors, dialects, the DST rule, iteration.

Pure: no storage, no clock."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from shared.schedules.cron import CronError, parse_cron, parse_datetime, resolve_wall_time, translate_dmjob_weekdays

UTC = timezone.utc
OSLO = ZoneInfo("Europe/Oslo")
NY = ZoneInfo("America/New_York")


def u(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(zone, *args, fold=0) -> datetime:
    return datetime(*args, tzinfo=zone, fold=fold)


def fires(expr, after, until, tz="UTC", dialect="unix"):
    return list(parse_cron(expr, tz, dialect).fire_times(after, until))


def hm(times, zone):
    return [t.astimezone(zone).strftime("%d %H:%M%z") for t in times]


# ---- parsing and validation -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "expr, message",
    [
        ("", "empty"),
        ("* * * *", "has 4 field(s); expected 5"),
        ("0 * * * * *", "has 6 field(s)"),
        ("61 * * * *", "minute: 61 is out of range 0-59"),
        ("0 24 * * *", "hour: 24 is out of range 0-23"),
        ("0 0 0 * *", "day-of-month: 0 is out of range 1-31"),
        ("0 0 32 * *", "day-of-month: 32 is out of range 1-31"),
        ("0 0 1 13 *", "month: 13 is out of range 1-12"),
        ("0 0 * * 8", "day-of-week: 8 is out of range 0-7"),
        ("0 0 * foo *", "month: 'foo' is not a number or name"),
        ("x * * * *", "minute: 'x' is not a number"),
        ("*/0 * * * *", "minute: step '0'"),
        ("*/x * * * *", "minute: step 'x'"),
        ("1,,2 * * * *", "minute: empty item"),
        ("30-10 * * * *", "minute: range '30-10' runs backwards"),
        ("0 0 L * *", "day-of-month: 'L'"),
        ("0 0 15W * *", "day-of-month: '15W'"),
        ("0 0 * * 1#2", "day-of-week: # (nth weekday)"),
        ("0 0 ? * *", "day-of-month: ?"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("@every5m", "unknown nickname"),
    ],
)
def test_invalid_cron_names_the_field(expr, message):
    with pytest.raises(CronError) as info:
        parse_cron(expr)
    assert message in str(info.value)


def test_invalid_zone_and_dialect():
    with pytest.raises(CronError, match="timezone: 'Mars/Olympus' is not an IANA"):
        parse_cron("* * * * *", "Mars/Olympus")
    with pytest.raises(CronError, match="timezone"):
        parse_cron("* * * * *", "../../etc/passwd")
    with pytest.raises(CronError, match="weekdayDialect: 'quartz'"):
        parse_cron("* * * * *", "UTC", "quartz")
    with pytest.raises(CronError, match="day-of-week: 7 is out of range 0-6 \\(dmjob"):
        parse_cron("0 0 * * 7", "UTC", "dmjob")


@pytest.mark.parametrize(
    "expr",
    [
        "*/5 * * * *",
        "0 9 * * mon-fri",
        "0 0 1 jan *",
        "@hourly",
        "@weekly",
        "5/10 1-5/2 1,15 * *",
        "0 0 * * 7",
        "0 0 * * MON",
        "0 0 29 2 *",
    ],
)
def test_valid_cron(expr):
    assert parse_cron(expr).unix_expression


# ---- step, range, list syntax ---------------------------------------------------------------------------
def test_step_range_and_list_syntax():
    day = u(2026, 5, 4)  # a Monday
    assert len(fires("*/5 * * * *", day, day + timedelta(days=1))) == 288
    assert [t.minute for t in fires("5/20 0 * * *", day, day + timedelta(hours=1))] == [5, 25, 45]
    assert [t.hour for t in fires("0 1-10/3 * * *", day, day + timedelta(days=1))] == [1, 4, 7, 10]
    assert [t.hour for t in fires("0 1,2,20-22 * * *", day, day + timedelta(days=1))] == [1, 2, 20, 21, 22]
    week = fires("0 12 * * mon-fri", day, day + timedelta(days=7))
    assert [t.strftime("%a") for t in week] == ["Mon", "Tue", "Wed", "Thu", "Fri"]
    assert fires("0 12 * * 1-5", day, day + timedelta(days=7)) == week


def test_day_of_month_or_day_of_week_like_vixie_cron():
    start = u(2026, 1, 1)
    # both restricted: either matches (1st and 15th, plus every Monday)
    either = fires("0 0 1,15 * mon", start, u(2026, 2, 1) - timedelta(seconds=1))
    assert [t.day for t in either] == [5, 12, 15, 19, 26]
    # day-of-week starts with *: both must match (Vixie's DOW_STAR rule), so "*/2" keeps only even days
    both = fires("0 0 1 * */2", start, u(2026, 12, 31))
    assert all(t.day == 1 and t.isoweekday() % 7 in (0, 2, 4, 6) for t in both) and both


def test_sunday_as_7_and_in_ranges():
    start = u(2026, 5, 4)
    sundays = fires("0 0 * * 7", start, start + timedelta(days=14))
    assert [t.strftime("%a %d") for t in sundays] == ["Sun 10", "Sun 17"]
    assert fires("0 0 * * 0", start, start + timedelta(days=14)) == sundays
    assert len(fires("0 0 * * mon-sun", start, start + timedelta(days=7))) == 7
    assert len(fires("0 0 * * 1-7", start, start + timedelta(days=7))) == 7


# ---- weekday dialects -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "dmjob, unix",
    [
        ("6", "0"),
        ("0", "1"),
        ("0-4", "1-5"),
        ("5,6", "0,6"),
        ("*/2", "0-1,3,5"),
        ("*", "*"),
        ("mon-fri", "1-5"),
        ("sun", "0"),
    ],
)
def test_translate_dmjob_weekdays(dmjob, unix):
    assert translate_dmjob_weekdays(dmjob) == unix


def test_dmjob_dialect_six_is_sunday_like_the_old_ui():
    start = u(2026, 5, 4)  # Monday
    old_ui = fires("30 8 * * 6", start, start + timedelta(days=7), dialect="dmjob")
    assert [t.strftime("%a %H:%M") for t in old_ui] == ["Sun 08:30"]
    unix = fires("30 8 * * 6", start, start + timedelta(days=7), dialect="unix")
    assert [t.strftime("%a %H:%M") for t in unix] == ["Sat 08:30"]
    assert fires("0 0 * * 0-4", start, start + timedelta(days=7), dialect="dmjob") == fires(
        "0 0 * * 1-5", start, start + timedelta(days=7)
    )


def test_dmjob_dialect_days_must_all_match_like_apscheduler():
    start = u(2026, 1, 1)
    # APScheduler ANDs day and day_of_week: the first Monday of each month
    first_mondays = fires("0 0 1-7 * 0", start, u(2026, 4, 1), dialect="dmjob")
    assert [t.strftime("%a %m-%d") for t in first_mondays] == ["Mon 01-05", "Mon 02-02", "Mon 03-02"]


def test_weekly_nickname_is_sunday_in_both_dialects():
    start = u(2026, 5, 4)
    for dialect in ("unix", "dmjob"):
        assert [t.strftime("%a") for t in fires("@weekly", start, start + timedelta(days=7), dialect=dialect)] == [
            "Sun"
        ]


# ---- 29 February ------------------------------------------------------------------------------------------
def test_29_february_fires_in_leap_years_only():
    c = parse_cron("0 0 29 2 *")
    assert c.next_fire(u(2025, 1, 1)) == u(2028, 2, 29)
    assert list(c.fire_times(u(2024, 1, 1), u(2033, 1, 1))) == [u(2024, 2, 29), u(2028, 2, 29), u(2032, 2, 29)]
    assert c.prev_fire(u(2027, 1, 1)) == u(2024, 2, 29)
    oslo = parse_cron("0 0 29 2 *", "Europe/Oslo")
    assert oslo.next_fire(u(2025, 1, 1)) == local(OSLO, 2028, 2, 29).astimezone(UTC)


# ---- DST: the documented rule, and croniter's own behaviour ---------------------------------------------
def test_croniter_itself_moves_gap_times_and_repeats_overlap_times():
    """Characterises croniter on aware datetimes (the reason cron.py maps wall times itself). If croniter
    changes, this test says so; cron.py does not depend on it."""
    it = croniter("30 2 * * *", local(OSLO, 2026, 3, 28, 12))
    spring = it.get_next(datetime)
    assert spring.astimezone(UTC) == u(2026, 3, 29, 1, 0)  # 03:00 CEST: moved, not skipped
    it = croniter("30 2 * * *", local(OSLO, 2026, 10, 24, 12))
    autumn = [it.get_next(datetime).astimezone(UTC) for _ in range(2)]
    assert autumn == [u(2026, 10, 25, 0, 30), u(2026, 10, 25, 1, 30)]  # twice in the overlap


def test_oslo_spring_gap_is_skipped():
    # 2026-03-29: 02:00 CET -> 03:00 CEST; 02:30 does not exist that day
    c = parse_cron("30 2 * * *", "Europe/Oslo")
    times = list(c.fire_times(u(2026, 3, 27), u(2026, 3, 31)))
    assert hm(times, OSLO) == ["27 02:30+0100", "28 02:30+0100", "30 02:30+0200"]
    hourly = list(
        parse_cron("0 * * * *", "Europe/Oslo").fire_times(
            local(OSLO, 2026, 3, 29, 0, 30), local(OSLO, 2026, 3, 29, 4, 0)
        )
    )
    assert hm(hourly, OSLO) == ["29 01:00+0100", "29 03:00+0200", "29 04:00+0200"]
    half = list(
        parse_cron("*/30 * * * *", "Europe/Oslo").fire_times(
            local(OSLO, 2026, 3, 29, 1, 10), local(OSLO, 2026, 3, 29, 3, 30)
        )
    )
    assert hm(half, OSLO) == ["29 01:30+0100", "29 03:00+0200", "29 03:30+0200"]


def test_oslo_autumn_overlap_runs_once():
    # 2026-10-25: 03:00 CEST -> 02:00 CET; 02:xx happens twice, fires on the first pass only
    c = parse_cron("30 2 * * *", "Europe/Oslo")
    times = list(c.fire_times(u(2026, 10, 24), u(2026, 10, 27)))
    assert hm(times, OSLO) == ["24 02:30+0200", "25 02:30+0200", "26 02:30+0100"]
    hourly = list(
        parse_cron("0 * * * *", "Europe/Oslo").fire_times(
            local(OSLO, 2026, 10, 25, 0, 30), local(OSLO, 2026, 10, 25, 4, 0)
        )
    )
    assert hm(hourly, OSLO) == ["25 01:00+0200", "25 02:00+0200", "25 03:00+0100", "25 04:00+0100"]
    # a day of hourly fires is 23 runs in spring, 24 on a normal day, 24 (not 25) in autumn
    daily = parse_cron("0 * * * *", "Europe/Oslo")
    count = lambda y, m, d: len(
        list(
            daily.fire_times(
                local(OSLO, y, m, d) - timedelta(microseconds=1),  # noqa
                local(OSLO, y, m, d) + timedelta(hours=23, minutes=59),
            )
        )
    )
    assert (count(2026, 3, 29), count(2026, 6, 1), count(2026, 10, 25)) == (23, 24, 24)


def test_new_york_spring_and_autumn():
    # 2026-03-08: 02:00 EST -> 03:00 EDT; 2026-11-01: 02:00 EDT -> 01:00 EST
    c = parse_cron("30 2 * * *", "America/New_York")
    assert hm(list(c.fire_times(u(2026, 3, 7), u(2026, 3, 10))), NY) == ["07 02:30-0500", "09 02:30-0400"]
    one_thirty = parse_cron("30 1 * * *", "America/New_York")
    autumn = list(one_thirty.fire_times(u(2026, 10, 31), u(2026, 11, 3)))
    assert hm(autumn, NY) == ["31 01:30-0400", "01 01:30-0400", "02 01:30-0500"]
    every15 = list(parse_cron("*/15 1 * * *", "America/New_York").fire_times(u(2026, 11, 1, 4), u(2026, 11, 1, 8)))
    assert hm(every15, NY) == ["01 01:00-0400", "01 01:15-0400", "01 01:30-0400", "01 01:45-0400"]


def test_next_fire_from_inside_the_overlap_second_pass():
    c = parse_cron("*/30 * * * *", "Europe/Oslo")
    second_pass = local(OSLO, 2026, 10, 25, 2, 10, fold=1)  # 01:10 UTC
    assert c.next_fire(second_pass) == local(OSLO, 2026, 10, 25, 3, 0).astimezone(UTC)
    assert c.prev_fire(second_pass) == local(OSLO, 2026, 10, 25, 2, 30, fold=0).astimezone(UTC)
    first_pass = local(OSLO, 2026, 10, 25, 2, 10, fold=0)
    assert c.next_fire(first_pass) == local(OSLO, 2026, 10, 25, 2, 30, fold=0).astimezone(UTC)
    assert c.prev_fire(first_pass) == local(OSLO, 2026, 10, 25, 2, 0, fold=0).astimezone(UTC)


@pytest.mark.parametrize(
    "expr, tz, start",
    [
        ("*/30 * * * *", "Europe/Oslo", u(2026, 3, 28, 20)),
        ("*/30 * * * *", "Europe/Oslo", u(2026, 10, 24, 20)),
        ("0,17,45 1-3 * * *", "America/New_York", u(2026, 10, 31, 20)),
        ("0,17,45 1-3 * * *", "America/New_York", u(2026, 3, 7, 20)),
        ("*/7 * * * *", "Australia/Lord_Howe", u(2026, 4, 4, 10)),  # 30-minute DST shift
    ],
)
def test_forward_backward_and_window_agree(expr, tz, start):
    """next_fire, prev_fire, fire_times and fire_times_backwards describe the same ordered set of instants,
    each fire's wall time is unique and none falls in a gap."""
    c = parse_cron(expr, tz)
    forward = list(c.fire_times(start, start + timedelta(hours=30)))
    assert forward == sorted(set(forward))
    walls = [t.astimezone(c.zone).replace(tzinfo=None) for t in forward]
    assert len(walls) == len(set(walls))
    backward = list(c.fire_times_backwards(start + timedelta(hours=30, seconds=1), start))
    assert backward == forward[::-1]
    rnd = random.Random(7)
    for _ in range(200):
        probe = start + timedelta(seconds=rnd.randrange(0, 30 * 3600))
        nxt = c.next_fire(probe)
        prv = c.prev_fire(probe)
        assert nxt > probe and (prv is None or prv < probe)
        inside = [t for t in forward if prv < t < nxt] if prv else []
        assert inside == [] or inside == [probe]


def test_resolve_wall_time():
    assert resolve_wall_time(datetime(2026, 3, 29, 2, 30), OSLO) is None
    assert resolve_wall_time(datetime(2026, 10, 25, 2, 30), OSLO) == u(2026, 10, 25, 0, 30)
    assert resolve_wall_time(datetime(2026, 6, 1, 12, 0), OSLO) == u(2026, 6, 1, 10, 0)


# ---- dates, preview -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-03-01T08:00", u(2026, 3, 1, 7)),  # the old UI: naive, the schedule's zone
        ("2026-03-01T08:00:00", u(2026, 3, 1, 7)),
        ("2026-03-01", u(2026, 2, 28, 23)),
        ("2026-03-01T08:00:00Z", u(2026, 3, 1, 8)),
        ("2026-03-01T08:00:00+02:00", u(2026, 3, 1, 6)),
        ("2026-07-01T08:00", u(2026, 7, 1, 6)),  # summer time
    ],
)
def test_parse_datetime(text, expected):
    assert parse_datetime(text, OSLO) == expected


def test_parse_datetime_rejects_garbage():
    with pytest.raises(CronError, match="startDate: '2026-13-01' is not an ISO 8601"):
        parse_datetime("2026-13-01", OSLO, what="startDate")
    with pytest.raises(CronError, match="not an ISO 8601"):
        parse_datetime("tomorrow", OSLO)
    assert parse_datetime("", OSLO) is None and parse_datetime(None, OSLO) is None


def test_preview_in_utc_and_local():
    c = parse_cron("0 9 * * *", "Europe/Oslo")
    out = c.preview(3, u(2026, 3, 27, 12))
    assert out == [
        {"utc": "2026-03-28T08:00:00Z", "local": "2026-03-28T09:00:00+01:00"},
        {"utc": "2026-03-29T07:00:00Z", "local": "2026-03-29T09:00:00+02:00"},
        {"utc": "2026-03-30T07:00:00Z", "local": "2026-03-30T09:00:00+02:00"},
    ]


def test_next_fire_requires_aware_and_is_strict():
    c = parse_cron("*/5 * * * *")
    with pytest.raises(ValueError):
        c.next_fire(datetime(2026, 1, 1))
    assert c.next_fire(u(2026, 1, 1, 0, 5)) == u(2026, 1, 1, 0, 10)
    assert c.next_fire(u(2026, 1, 1, 0, 4, 59, 999999)) == u(2026, 1, 1, 0, 5)
    assert c.last_fire_at_or_before(u(2026, 1, 1, 0, 5)) == u(2026, 1, 1, 0, 5)
    assert c.last_fire_at_or_before(u(2026, 1, 1, 0, 9, 59)) == u(2026, 1, 1, 0, 5)
