"""Write-once retention periods from the TT 05/2025 maintenance code ("thời hạn bảo quản").

Codes: 01 permanent, 02 70 years, 03 50 years, 04 30 years, 05 20 years, 06 10 years,
07 other (the deployment's default period in days). S3 object lock needs a date, so
"permanent" becomes 100 years; an archive extends it long before it runs out.

Every retain-until date is capped at ``LATEST_RETAIN_UNTIL`` (2106-01-01): Ceph RGW keeps it
as 32-bit unsigned seconds, and a later date wraps into the past (2126 became 1990 in a
test), which silently leaves the object unlocked.

``ObjectStore.put`` has no maintenance parameter: the S3 backend reads the code from the
object metadata (``metadata["maintenance"]``) and falls back to the default period in days
when it is absent or is 07.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from .errors import StorageConfigError

PERMANENT_YEARS = 100
MAINTENANCE_YEARS = {"01": PERMANENT_YEARS, "02": 70, "03": 50, "04": 30, "05": 20, "06": 10}
OTHER = "07"
DEFAULT_RETENTION_DAYS = 3650
LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")
LATEST_RETAIN_UNTIL = datetime(2106, 1, 1, tzinfo=timezone.utc)


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


def retain_until(now: datetime, maintenance: str | None, fallback_days: int) -> datetime:
    """The retain-until instant for an object stored at ``now`` (timezone-aware, UTC)."""
    now = now.astimezone(timezone.utc)
    code = (maintenance or "").strip()
    if code in MAINTENANCE_YEARS:
        until = _add_years(now, MAINTENANCE_YEARS[code])
    elif code in ("", OTHER):
        until = now + timedelta(days=fallback_days)
    else:
        raise StorageConfigError(f"Mã thời hạn bảo quản không hợp lệ: '{maintenance}' (01..07, TT 05/2025)",
                                 "maintenance code: 01..07")
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

