"""The RRULE of a series (RFC 5545, 3.3.10), read part by part and expanded in wall-clock time.

What a series accepts is checked here, before python-dateutil sees the rule: FREQ DAILY, WEEKLY
or MONTHLY; INTERVAL, BYDAY, BYMONTHDAY, BYSETPOS and WKST; exactly one of COUNT or UNTIL (a
DATE, or a DATE-TIME in UTC; inclusive). Names and values are case-insensitive, as RFC 5545
says (3.1), and stored upper-case. Anything else is 422 INVALID_RRULE with the reason.

Expansion runs on naive local times in the series' time zone, so each occurrence starts at the
same local time whatever the DST offset (api.wallclock turns each into a moment), and stops at
52 occurrences or a year after the first, whichever the rule reaches first: beyond either, the
rule is refused rather than cut short.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import cast

from dateutil import rrule as du

from api.errors import Unprocessable
from api.events.models import LATEST
from api.wallclock import moment_of, wall_time

MAX_LENGTH = 500
MAX_OCCURRENCES = 52
# How far past the year's limit the expansion looks for an occurrence that would break it: a
# rule of monthly Feb 29ths has gaps of up to eight years (2096, then 2104).
SEARCH_YEARS = 9
TOO_LATE = "every occurrence must end before the year 9999"

FREQUENCIES = {"DAILY": du.DAILY, "WEEKLY": du.WEEKLY, "MONTHLY": du.MONTHLY}
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
# Parts RFC 5545 defines that a series does not take.
UNSUPPORTED_PARTS = frozenset(
    {"BYSECOND", "BYMINUTE", "BYHOUR", "BYMONTH", "BYYEARDAY", "BYWEEKNO"}
)
UNSUPPORTED_FREQUENCIES = frozenset({"SECONDLY", "MINUTELY", "HOURLY", "YEARLY"})
PARTS = frozenset({"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYSETPOS", "WKST"})

_NAME = re.compile(r"[A-Z][A-Z-]*")
_POSITIVE = re.compile(r"[1-9][0-9]{0,3}")
_SIGNED = re.compile(r"([+-]?)([0-9]{1,3})")
_WEEKDAY = re.compile(r"([+-]?)([0-9]{1,2})?(MO|TU|WE|TH|FR|SA|SU)")
_DATE = re.compile(r"[0-9]{8}")
_UTC_DATE_TIME = re.compile(r"[0-9]{8}T[0-9]{6}Z")


class InvalidRrule(Unprocessable):
    """The rule is not one a series takes; `reason` says why."""

    code = "INVALID_RRULE"
    example_reason = "give exactly one of COUNT and UNTIL"

    def __init__(self, reason: str) -> None:
        super().__init__(reason=reason)


@dataclass(frozen=True)
class Rule:
    """An accepted RRULE, in its parts; `text` is how it is stored (upper-case, as given)."""

    text: str
    frequency: str
    interval: int = 1
    count: int | None = None
    until: date | datetime | None = None  # a date, or an aware UTC datetime
    by_day: tuple[tuple[int, int | None], ...] = ()  # (weekday 0-6, ordinal or None)
    by_month_day: tuple[int, ...] = ()
    by_set_position: tuple[int, ...] = ()
    week_start: int = 0  # MO


# --- reading the rule -------------------------------------------------------------------------


def _split(text: str) -> list[tuple[str, str]]:
    if not text:
        raise InvalidRrule("the rule is empty")
    if len(text) > MAX_LENGTH:
        raise InvalidRrule(f"the rule is longer than {MAX_LENGTH} characters")
    if any(character.isspace() for character in text):
        raise InvalidRrule("the rule must not contain spaces or line breaks")
    if text.startswith("RRULE:"):
        raise InvalidRrule("give the RRULE value alone, without 'RRULE:'")
    parts: list[tuple[str, str]] = []
    for part in text.split(";"):
        name, equals, value = part.partition("=")
        if not part:
            raise InvalidRrule("the rule has an empty part (two ';' in a row, or one at an end)")
        if not equals or not _NAME.fullmatch(name) or not value:
            raise InvalidRrule(f"'{part}' is not of the form NAME=VALUE")
        parts.append((name, value))
    return parts


def _positive(name: str, value: str, limit: int) -> int:
    if not _POSITIVE.fullmatch(value) or int(value) > limit:
        raise InvalidRrule(f"{name} must be a whole number from 1 to {limit}")
    return int(value)


def _signed_list(name: str, value: str, limit: int) -> tuple[int, ...]:
    numbers = []
    for item in value.split(","):
        match = _SIGNED.fullmatch(item)
        number = int(match.group(2)) if match else 0
        if match is None or not 1 <= number <= limit:
            raise InvalidRrule(f"{name} takes numbers from 1 to {limit} or -{limit} to -1")
        numbers.append(-number if match.group(1) == "-" else number)
    return tuple(numbers)


def _weekday(name: str, value: str) -> int:
    if value not in WEEKDAYS:
        raise InvalidRrule(f"{name} must be one of {', '.join(WEEKDAYS)}")
    return WEEKDAYS.index(value)


def _by_day(value: str, frequency: str) -> tuple[tuple[int, int | None], ...]:
    days: list[tuple[int, int | None]] = []
    for item in value.split(","):
        match = _WEEKDAY.fullmatch(item)
        if match is None or (match.group(1) and match.group(2) is None):
            raise InvalidRrule(f"BYDAY takes days such as MO or TU (monthly: 1MO, -1FR): {item}")
        sign, number, day = match.groups()
        ordinal = None
        if number is not None:
            if frequency != "MONTHLY":
                raise InvalidRrule("BYDAY takes a numbered day (such as 1MO) only with MONTHLY")
            if not 1 <= int(number) <= 5:
                raise InvalidRrule("a numbered BYDAY counts from 1 to 5, or from -5 to -1")
            ordinal = -int(number) if sign == "-" else int(number)
        days.append((WEEKDAYS.index(day), ordinal))
    return tuple(days)


def _until(value: str) -> date | datetime:
    try:
        if _DATE.fullmatch(value):
            return datetime.strptime(value, "%Y%m%d").date()
        if _UTC_DATE_TIME.fullmatch(value):
            return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidRrule(f"UNTIL={value} is not a real date or time") from None
    raise InvalidRrule("UNTIL must be a date (20260630) or a UTC date-time (20260630T170000Z)")


def parse_rrule(text: str) -> Rule:
    """The rule's parts, each checked; InvalidRrule says what is wrong with the first bad one."""
    normalised = text.strip().upper()
    parts = _split(normalised)
    values: dict[str, str] = {}
    for name, value in parts:
        if name in values:
            raise InvalidRrule(f"{name} is given twice")
        if name in UNSUPPORTED_PARTS:
            raise InvalidRrule(f"{name} is not supported in a series")
        if name not in PARTS:
            raise InvalidRrule(f"{name} is not a rule part a series takes")
        values[name] = value
    frequency = values.get("FREQ")
    if frequency is None:
        raise InvalidRrule("FREQ is missing")
    if frequency in UNSUPPORTED_FREQUENCIES:
        raise InvalidRrule(f"FREQ={frequency} is not supported: use DAILY, WEEKLY or MONTHLY")
    if frequency not in FREQUENCIES:
        raise InvalidRrule("FREQ must be DAILY, WEEKLY or MONTHLY")
    if ("COUNT" in values) == ("UNTIL" in values):
        raise InvalidRrule("give exactly one of COUNT and UNTIL")
    if "BYMONTHDAY" in values and frequency == "WEEKLY":
        raise InvalidRrule("BYMONTHDAY cannot be used with FREQ=WEEKLY")
    if "BYSETPOS" in values and not {"BYDAY", "BYMONTHDAY"} & values.keys():
        raise InvalidRrule("BYSETPOS needs BYDAY or BYMONTHDAY to choose from")
    count = values.get("COUNT")
    return Rule(
        text=normalised,
        frequency=frequency,
        interval=_positive("INTERVAL", values.get("INTERVAL", "1"), 9999),
        count=None if count is None else _count(count),
        until=_until(values["UNTIL"]) if "UNTIL" in values else None,
        by_day=_by_day(values["BYDAY"], frequency) if "BYDAY" in values else (),
        by_month_day=_signed_list("BYMONTHDAY", values.get("BYMONTHDAY", ""), 31)
        if "BYMONTHDAY" in values
        else (),
        by_set_position=_signed_list("BYSETPOS", values.get("BYSETPOS", ""), 366)
        if "BYSETPOS" in values
        else (),
        week_start=_weekday("WKST", values.get("WKST", "MO")),
    )


def _count(value: str) -> int:
    if not _POSITIVE.fullmatch(value):
        raise InvalidRrule("COUNT must be a whole number from 1")
    if int(value) > MAX_OCCURRENCES:
        raise InvalidRrule(f"a series has at most {MAX_OCCURRENCES} occurrences")
    return int(value)


# --- expanding it -----------------------------------------------------------------------------


def _a_year_after(local: datetime) -> datetime:
    """The same wall-clock time a year later (Feb 29: Feb 28)."""
    try:
        return local.replace(year=local.year + 1)
    except ValueError:
        if local.year == datetime.max.year:
            return datetime.max
        return local.replace(year=local.year + 1, day=28)


def _years_after(local: datetime, years: int) -> datetime:
    if local.year + years > datetime.max.year:
        return datetime.max.replace(microsecond=0)
    return local.replace(year=local.year + years, day=min(local.day, 28))


def _instances(rule: Rule, first: datetime, bound: datetime) -> Iterator[datetime]:
    """The rule's instances from `first` (naive local, whole seconds) up to `bound`, lazily,
    as python-dateutil computes them (without COUNT or UNTIL: the caller applies those)."""
    by_day = [du.weekday(day, ordinal) for day, ordinal in rule.by_day]
    return cast(
        Iterator[datetime],
        iter(
            du.rrule(
                FREQUENCIES[rule.frequency],
                dtstart=first,
                interval=rule.interval,
                wkst=rule.week_start,
                until=bound,
                byweekday=by_day or None,
                bymonthday=rule.by_month_day or None,
                bysetpos=rule.by_set_position or None,
                cache=False,
            )
        ),
    )


def _within_until(rule: Rule, local: datetime, zone: str) -> bool:
    if isinstance(rule.until, datetime):
        return moment_of(local, zone) <= rule.until
    assert rule.until is not None
    return local.date() <= rule.until


def expand(rule: Rule, starts_at: datetime, zone: str, duration: timedelta) -> list[datetime]:
    """The start of each occurrence (aware, UTC), the first being `starts_at`: the rule's
    instances at its local time in `zone`. InvalidRrule when `starts_at` is not the rule's first
    instance, or the rule gives more than 52 occurrences or one more than a year after the
    first. `duration` is each one's length: the last must end before 9999."""
    local = wall_time(starts_at, zone)
    first = local.replace(microsecond=0)
    year_later = _a_year_after(first)
    wanted = rule.count if rule.count is not None else MAX_OCCURRENCES + 1
    bound = _years_after(first, SEARCH_YEARS)
    found: list[datetime] = []
    for instance in _instances(rule, first, bound):
        if instance.year >= LATEST.year:
            raise InvalidRrule(TOO_LATE)
        if rule.until is not None and not _within_until(rule, instance, zone):
            break
        found.append(instance)
        if len(found) == wanted or instance > year_later:
            break
    if rule.until is not None and not _within_until(rule, first, zone):
        raise InvalidRrule("UNTIL is before starts_at")
    if not found or found[0] != first:
        raise InvalidRrule(
            "starts_at must be the rule's first instance: "
            + (f"that is {found[0]:%Y-%m-%d %H:%M} in {zone}" if found else "the rule has none")
        )
    if len(found) > MAX_OCCURRENCES:
        raise InvalidRrule(f"the rule gives more than {MAX_OCCURRENCES} occurrences")
    if found[-1] > year_later or (rule.count is not None and len(found) < rule.count):
        raise InvalidRrule("the last occurrence would be more than a year after the first")
    starts = [starts_at] + [
        moment_of(instance.replace(microsecond=local.microsecond), zone) for instance in found[1:]
    ]
    if starts[-1] + duration >= LATEST:
        raise InvalidRrule(TOO_LATE)
    return starts
