"""Write-once retention periods from the TT 05/2025 maintenance code ("thời hạn bảo quản").

Codes: 01 permanent, 02 70 years, 03 50 years, 04 30 years, 05 20 years, 06 10 years,
07 other (the deployment's default period in days). S3 object lock needs a date, so
"permanent" becomes 100 years; an archive extends it long before it runs out.

Every retain-until date is capped at ``LATEST_RETAIN_UNTIL`` (2106-01-01): Ceph RGW keeps it
as 32-bit unsigned seconds, and a later date wraps into the past (2126 became 1990 in a
test), which silently leaves the object unlocked.

``ObjectStore.put`` has no maintenance parameter: the S3 backend reads the code from the
object metadata (``metadata["maintenance"]``) and falls back to the default period in days
when it is absent or is 07. With ``metadata["closed"]`` (the ISO day the dossier closed: its
paper file's last date, else the day its last document came in) the period counts as an
archive counts it, from the 1st of January after that day's year, so that the lock ends the
day the dossier may be disposed of: counted from the day each object was stored, a renewal
written years later, or a backlog digitised long after its file closed, stayed locked for
years past that day, and its disposal was refused (the ops review). An object of a dossier
already due when stored is still locked for ``DUE_ALREADY_DAYS`` (its period, if shorter):
time for its checks, copies and an archivist's decision.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from .errors import StorageConfigError

PERMANENT_YEARS = 100
MAINTENANCE_YEARS = {"01": PERMANENT_YEARS, "02": 70, "03": 50, "04": 30, "05": 20, "06": 10}
OTHER = "07"
DEFAULT_RETENTION_DAYS = 3650
LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
LATEST_RETAIN_UNTIL = datetime(2106, 1, 1, tzinfo=timezone.utc)
DUE_ALREADY_DAYS = 365
ARCHIVE_DAY = timezone(timedelta(hours=7), "ICT")  # a due day begins at midnight in Vietnam


def lock_mode(value: str | None) -> str:
    mode = (value or "GOVERNANCE").strip().upper()
    if mode not in LOCK_MODES:
        raise StorageConfigError(f"Chế độ khóa S3 không hợp lệ: '{value}' (GOVERNANCE hoặc COMPLIANCE)",
                                 "lock mode: GOVERNANCE or COMPLIANCE")
    return mode


def default_days(value: str | int | None) -> int:
    try:
        days = int(value) if value not in (None, "") else DEFAULT_RETENTION_DAYS
    except ValueError:
        days = 0
    if days <= 0:
        raise StorageConfigError(f"Thời hạn lưu giữ không hợp lệ: '{value}' (số ngày, lớn hơn 0)",
                                 "retention days: a positive integer")
    return days


def _add_years(day: datetime, years: int) -> datetime:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a year that has none
        return day.replace(year=day.year + years, day=28)


def period_end(closed: date, maintenance: str | None, fallback_days: int) -> date:
    """The day a dossier that closed on ``closed`` may be disposed of: its maintenance period
    (permanent: PERMANENT_YEARS; 07, none or unknown: ``fallback_days``) counted from the 1st of
    January after that day's year, as archives count it."""
    start = date(closed.year + 1, 1, 1)
    years = MAINTENANCE_YEARS.get((maintenance or "").strip())
    return start.replace(year=start.year + years) if years else start + timedelta(days=fallback_days)


def retain_until(now: datetime, maintenance: str | None, fallback_days: int, closed: str | None = None) -> datetime:
    """The retain-until instant for an object stored at ``now`` (timezone-aware, UTC): the
    maintenance period counted from ``now``, or, given the day the dossier ``closed`` (ISO), from
    the 1st of January after it (module docstring)."""
    now = now.astimezone(timezone.utc)
    code = (maintenance or "").strip()
    if code not in MAINTENANCE_YEARS and code not in ("", OTHER):
        raise StorageConfigError(f"Mã thời hạn bảo quản không hợp lệ: '{maintenance}' (01..07, TT 05/2025)",
                                 "maintenance code: 01..07")
    years = MAINTENANCE_YEARS.get(code)
    until = _add_years(now, years) if years else now + timedelta(days=fallback_days)
    if closed:
        try:
            day = date.fromisoformat(str(closed)[:10])
        except ValueError:
            raise StorageConfigError(f"Ngày kết thúc hồ sơ không hợp lệ: '{closed}'", "closed: an ISO date") from None
        try:
            due = period_end(day, code, fallback_days)
            due_at = datetime(due.year, due.month, due.day, tzinfo=ARCHIVE_DAY).astimezone(timezone.utc)
        except (ValueError, OverflowError):  # past the calendar's end: as far as a lock goes
            due_at = LATEST_RETAIN_UNTIL
        # due: that day; already due: a year (its period, if shorter); never a year past a due day
        # still to come (a renewal a month before it was locked ten months past it: the review)
        until = due_at if due_at > now else min(until, now + timedelta(days=DUE_ALREADY_DAYS))
    return min(until, LATEST_RETAIN_UNTIL)


def parse_retain_until(value: str | None) -> datetime | None:
    """RGW writes nanoseconds ('2036-11-28T10:10:30.480000000Z'), which minio-py cannot parse."""
    if not value:
        return None
    text = value.strip().rstrip("Z")
    whole, _, fraction = text.partition(".")
    parsed = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    if fraction:
        parsed += timedelta(microseconds=int(fraction[:6].ljust(6, "0")))
    return parsed

