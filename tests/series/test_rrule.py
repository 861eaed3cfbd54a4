"""api/series/rrule.py: reading a rule part by part, and expanding it in wall-clock time across
the DST changes of Europe/Berlin and America/New_York (2026: Berlin springs forward on
29 March and falls back on 25 October; New York on 8 March and 1 November)."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from api.series.rrule import InvalidRrule, Rule, expand, parse_rrule

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
TWO_HOURS = timedelta(hours=2)

EMPTY_PART = "the rule has an empty part (two ';' in a row, or one at an end)"
OVER_A_YEAR = "the last occurrence would be more than a year after the first"
UNTIL_FORM = "UNTIL must be a date (20260630) or a UTC date-time (20260630T170000Z)"
BYDAY_FORM = "BYDAY takes days such as MO or TU (monthly: 1MO, -1FR): XX"
BYDAY_NUMBERED = "BYDAY takes a numbered day (such as 1MO) only with MONTHLY"
BYDAY_ORDINAL = "a numbered BYDAY counts from 1 to 5, or from -5 to -1"
BYMONTHDAY_RANGE = "BYMONTHDAY takes numbers from 1 to 31 or -31 to -1"
BYSETPOS_ALONE = "BYSETPOS needs BYDAY or BYMONTHDAY to choose from"
YEARLY = "FREQ=YEARLY is not supported: use DAILY, WEEKLY or MONTHLY"
HOURLY = "FREQ=HOURLY is not supported: use DAILY, WEEKLY or MONTHLY"
FIRST_INSTANCE = "starts_at must be the rule's first instance: that is "


def local(zone: str, *parts: int) -> datetime:
    return datetime(*parts).replace(tzinfo=ZoneInfo(zone))  # type: ignore[arg-type]


def utc(*parts: int) -> datetime:
    return datetime(*parts).replace(tzinfo=UTC)  # type: ignore[arg-type]


def walls(starts: list[datetime], zone: str) -> list[str]:
    """Each start as its local clock reads it, with its offset."""
    return [start.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %z") for start in starts]


def expanded(text: str, starts_at: datetime, zone: str) -> list[datetime]:
    return expand(parse_rrule(text), starts_at, zone, TWO_HOURS)


class TestParse:
    def test_parts(self):
        assert parse_rrule("FREQ=MONTHLY;INTERVAL=2;BYDAY=-1FR,2MO;BYSETPOS=1;WKST=SU;COUNT=5") == (
            Rule(
                text="FREQ=MONTHLY;INTERVAL=2;BYDAY=-1FR,2MO;BYSETPOS=1;WKST=SU;COUNT=5",
                frequency="MONTHLY",
                interval=2,
                count=5,
                by_day=((4, -1), (0, 2)),
                by_set_position=(1,),
                week_start=6,
            )
        )

    def test_names_and_values_are_case_insensitive_and_stored_upper_case(self):
        rule = parse_rrule(" freq=weekly;byday=tu,Th;until=20260630t170000z ")

        assert rule == Rule(
            text="FREQ=WEEKLY;BYDAY=TU,TH;UNTIL=20260630T170000Z",
            frequency="WEEKLY",
            until=utc(2026, 6, 30, 17),
            by_day=((1, None), (3, None)),
        )

    def test_until_as_a_date(self):
        assert parse_rrule("FREQ=DAILY;UNTIL=20260630;BYMONTHDAY=1,-1").until == date(2026, 6, 30)


class TestWallClockAcrossDst:
    def test_berlin_spring_keeps_the_local_time(self):
        starts = expanded("FREQ=WEEKLY;BYDAY=TU;COUNT=7", local(BERLIN, 2026, 3, 3, 19), BERLIN)

        assert starts == [
            utc(2026, 3, 3, 18),
            utc(2026, 3, 10, 18),
            utc(2026, 3, 17, 18),
            utc(2026, 3, 24, 18),
            utc(2026, 3, 31, 17),
            utc(2026, 4, 7, 17),
            utc(2026, 4, 14, 17),
        ]
        assert walls(starts, BERLIN) == [
            "2026-03-03 19:00 +0100",
            "2026-03-10 19:00 +0100",
            "2026-03-17 19:00 +0100",
            "2026-03-24 19:00 +0100",
            "2026-03-31 19:00 +0200",
            "2026-04-07 19:00 +0200",
            "2026-04-14 19:00 +0200",
        ]

    def test_berlin_autumn_keeps_the_local_time(self):
        starts = expanded("FREQ=WEEKLY;COUNT=6", local(BERLIN, 2026, 10, 1, 19), BERLIN)

        assert starts == [
            utc(2026, 10, 1, 17),
            utc(2026, 10, 8, 17),
            utc(2026, 10, 15, 17),
            utc(2026, 10, 22, 17),
            utc(2026, 10, 29, 18),
            utc(2026, 11, 5, 18),
        ]
        assert {wall[11:16] for wall in walls(starts, BERLIN)} == {"19:00"}

    def test_new_york_spring_keeps_the_local_time(self):
        starts = expanded(
            "FREQ=WEEKLY;BYDAY=TU;COUNT=4", local(NEW_YORK, 2026, 2, 24, 19), NEW_YORK
        )

        assert starts == [
            utc(2026, 2, 25, 0),
            utc(2026, 3, 4, 0),
            utc(2026, 3, 10, 23),
            utc(2026, 3, 17, 23),
        ]
        assert walls(starts, NEW_YORK) == [
            "2026-02-24 19:00 -0500",
            "2026-03-03 19:00 -0500",
            "2026-03-10 19:00 -0400",
            "2026-03-17 19:00 -0400",
        ]

    def test_new_york_autumn_keeps_the_local_time(self):
        starts = expanded("FREQ=WEEKLY;COUNT=3", local(NEW_YORK, 2026, 10, 20, 19), NEW_YORK)

        assert starts == [utc(2026, 10, 20, 23), utc(2026, 10, 27, 23), utc(2026, 11, 4, 0)]
        assert walls(starts, NEW_YORK) == [
            "2026-10-20 19:00 -0400",
            "2026-10-27 19:00 -0400",
            "2026-11-03 19:00 -0500",
        ]

    def test_nonexistent_time_moves_forward_by_the_gap_in_berlin(self):
        starts = expanded("FREQ=DAILY;COUNT=4", local(BERLIN, 2026, 3, 27, 2, 30), BERLIN)

        assert walls(starts, BERLIN) == [
            "2026-03-27 02:30 +0100",
            "2026-03-28 02:30 +0100",
            "2026-03-29 03:30 +0200",
            "2026-03-30 02:30 +0200",
        ]
        assert starts[2] == utc(2026, 3, 29, 1, 30)

    def test_nonexistent_time_moves_forward_by_the_gap_in_new_york(self):
        starts = expanded("FREQ=DAILY;COUNT=3", local(NEW_YORK, 2026, 3, 7, 2, 30), NEW_YORK)

        assert walls(starts, NEW_YORK) == [
            "2026-03-07 02:30 -0500",
            "2026-03-08 03:30 -0400",
            "2026-03-09 02:30 -0400",
        ]

    def test_ambiguous_time_takes_the_earlier_in_berlin(self):
        starts = expanded("FREQ=DAILY;COUNT=3", local(BERLIN, 2026, 10, 24, 2, 30), BERLIN)

        assert walls(starts, BERLIN) == [
            "2026-10-24 02:30 +0200",
            "2026-10-25 02:30 +0200",
            "2026-10-26 02:30 +0100",
        ]
        assert starts[1] == utc(2026, 10, 25, 0, 30)

    def test_ambiguous_time_takes_the_earlier_in_new_york(self):
        starts = expanded("FREQ=DAILY;COUNT=2", local(NEW_YORK, 2026, 10, 31, 1, 30), NEW_YORK)

        assert walls(starts, NEW_YORK) == ["2026-10-31 01:30 -0400", "2026-11-01 01:30 -0400"]

    def test_first_is_starts_at_as_given_with_its_seconds(self):
        first = local(BERLIN, 2026, 5, 4, 9, 15, 30, 250_000)

        starts = expanded("FREQ=WEEKLY;COUNT=2", first, BERLIN)

        assert starts == [first, utc(2026, 5, 11, 7, 15, 30, 250_000)]


class TestUntil:
    START = local(BERLIN, 2026, 3, 3, 19)

    @pytest.mark.parametrize(
        ("until", "count"),
        [
            ("20260317", 3),  # a date: its occurrence included
            ("20260316", 2),
            ("20260317T180000Z", 3),  # 19:00 in Berlin: included
            ("20260317T175959Z", 2),
        ],
    )
    def test_inclusive(self, until, count):
        starts = expanded(f"FREQ=WEEKLY;UNTIL={until}", self.START, BERLIN)

        assert starts[-1] == utc(2026, 3, 3 + 7 * (count - 1), 18)
        assert len(starts) == count

    def test_a_year_of_weeks_is_52(self):
        starts = expanded("FREQ=WEEKLY;UNTIL=20270301", self.START, BERLIN)

        assert len(starts) == 52

    def test_monthly_last_friday(self):
        starts = expanded("FREQ=MONTHLY;BYDAY=-1FR;COUNT=3", local(BERLIN, 2026, 1, 30, 18), BERLIN)

        assert walls(starts, BERLIN) == [
            "2026-01-30 18:00 +0100",
            "2026-02-27 18:00 +0100",
            "2026-03-27 18:00 +0100",
        ]

    def test_a_year_to_the_day_is_allowed(self):
        starts = expanded("FREQ=MONTHLY;INTERVAL=6;COUNT=3", self.START, BERLIN)

        assert walls(starts, BERLIN)[-1] == "2027-03-03 19:00 +0100"


class TestRefused:
    START = local(BERLIN, 2026, 3, 3, 19)  # a Tuesday

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("", "the rule is empty"),
            ("FREQ=DAILY;COUNT=2;" + "X" * 500, "the rule is longer than 500 characters"),
            ("FREQ=DAILY; COUNT=2", "the rule must not contain spaces or line breaks"),
            ("RRULE:FREQ=DAILY;COUNT=2", "give the RRULE value alone, without 'RRULE:'"),
            ("FREQ=DAILY;;COUNT=2", EMPTY_PART),
            ("FREQ=DAILY;COUNT=2;", EMPTY_PART),
            ("FREQ=DAILY;COUNT", "'COUNT' is not of the form NAME=VALUE"),
            ("FREQ=;COUNT=2", "'FREQ=' is not of the form NAME=VALUE"),
            ("not a rule", "the rule must not contain spaces or line breaks"),
            ("garbage", "'GARBAGE' is not of the form NAME=VALUE"),
            ("FREQ=DAILY;FREQ=WEEKLY;COUNT=2", "FREQ is given twice"),
            ("FREQ=YEARLY;COUNT=2", YEARLY),
            ("FREQ=HOURLY;COUNT=2", HOURLY),
            ("FREQ=FORTNIGHTLY;COUNT=2", "FREQ must be DAILY, WEEKLY or MONTHLY"),
            ("COUNT=2", "FREQ is missing"),
            ("FREQ=DAILY;BYHOUR=19;COUNT=2", "BYHOUR is not supported in a series"),
            ("FREQ=DAILY;BYMONTH=3;COUNT=2", "BYMONTH is not supported in a series"),
            ("FREQ=DAILY;DTSTART=20260303;COUNT=2", "DTSTART is not a rule part a series takes"),
            ("FREQ=DAILY;X-NAME=1;COUNT=2", "X-NAME is not a rule part a series takes"),
            ("FREQ=DAILY;COUNT=2;UNTIL=20260310", "give exactly one of COUNT and UNTIL"),
            ("FREQ=DAILY", "give exactly one of COUNT and UNTIL"),
            ("FREQ=DAILY;COUNT=53", "a series has at most 52 occurrences"),
            ("FREQ=DAILY;COUNT=0", "COUNT must be a whole number from 1"),
            ("FREQ=DAILY;COUNT=-1", "COUNT must be a whole number from 1"),
            ("FREQ=DAILY;INTERVAL=0;COUNT=2", "INTERVAL must be a whole number from 1 to 9999"),
            ("FREQ=DAILY;INTERVAL=1.5;COUNT=2", "INTERVAL must be a whole number from 1 to 9999"),
            ("FREQ=WEEKLY;BYDAY=XX;COUNT=2", BYDAY_FORM),
            ("FREQ=WEEKLY;BYDAY=1TU;COUNT=2", BYDAY_NUMBERED),
            ("FREQ=MONTHLY;BYDAY=6TU;COUNT=2", BYDAY_ORDINAL),
            ("FREQ=WEEKLY;BYMONTHDAY=3;COUNT=2", "BYMONTHDAY cannot be used with FREQ=WEEKLY"),
            ("FREQ=MONTHLY;BYMONTHDAY=32;COUNT=2", BYMONTHDAY_RANGE),
            ("FREQ=MONTHLY;BYMONTHDAY=0;COUNT=2", BYMONTHDAY_RANGE),
            ("FREQ=MONTHLY;BYSETPOS=1;COUNT=2", BYSETPOS_ALONE),
            ("FREQ=WEEKLY;WKST=XX;COUNT=2", "WKST must be one of MO, TU, WE, TH, FR, SA, SU"),
            ("FREQ=DAILY;UNTIL=2026-03-10", UNTIL_FORM),
            ("FREQ=DAILY;UNTIL=20260310T190000", UNTIL_FORM),
            ("FREQ=DAILY;UNTIL=20260230", "UNTIL=20260230 is not a real date or time"),
        ],
    )  # fmt: skip
    def test_unreadable(self, text, reason):
        with pytest.raises(InvalidRrule) as refused:
            expanded(text, self.START, BERLIN)

        assert (refused.value.code, refused.value.reason) == ("INVALID_RRULE", reason)

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("FREQ=DAILY;UNTIL=20260501", "the rule gives more than 52 occurrences"),
            ("FREQ=WEEKLY;UNTIL=20270303", "the rule gives more than 52 occurrences"),
            ("FREQ=MONTHLY;COUNT=14", OVER_A_YEAR),
            ("FREQ=MONTHLY;INTERVAL=13;COUNT=2", OVER_A_YEAR),
            ("FREQ=MONTHLY;INTERVAL=13;UNTIL=20300101", OVER_A_YEAR),
            ("FREQ=DAILY;INTERVAL=366;COUNT=2", OVER_A_YEAR),
            ("FREQ=WEEKLY;BYDAY=WE;COUNT=2", FIRST_INSTANCE + "2026-03-04 19:00 in " + BERLIN),
            ("FREQ=MONTHLY;BYMONTHDAY=1;COUNT=2", FIRST_INSTANCE + "2026-04-01 19:00 in " + BERLIN),
            ("FREQ=DAILY;UNTIL=20260302", "UNTIL is before starts_at"),
            ("FREQ=DAILY;UNTIL=20260303T175959Z", "UNTIL is before starts_at"),
        ],
    )  # fmt: skip
    def test_out_of_bounds(self, text, reason):
        with pytest.raises(InvalidRrule) as refused:
            expanded(text, self.START, BERLIN)

        assert refused.value.reason == reason

    def test_leap_day_rule_with_no_second_date_within_a_year(self):
        with pytest.raises(InvalidRrule) as refused:
            expanded(
                "FREQ=MONTHLY;INTERVAL=12;BYMONTHDAY=29;UNTIL=20400101",
                local(BERLIN, 2028, 2, 29, 19),
                BERLIN,
            )

        assert refused.value.reason == OVER_A_YEAR

    def test_occurrences_must_end_before_9999(self):
        with pytest.raises(InvalidRrule) as refused:
            expanded("FREQ=MONTHLY;COUNT=2", local(BERLIN, 9998, 12, 1, 19), BERLIN)

        assert refused.value.reason == "every occurrence must end before the year 9999"
