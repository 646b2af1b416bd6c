"""Repository part: the marketplace's ratings and reviews, download counts, update policies."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from plughost.errors import InvalidRecord, RecordNotFound
from plughost.storage._repo_base import RepositoryBase, to_record
from plughost.storage.models import MarketDownloadRow, MarketRatingRow, MarketUpdatePolicyRow
from plughost.storage.records import UPDATE_POLICIES, MarketRating, UpdatePolicy


class MarketRecords(RepositoryBase):
    """Ratings (one per rater per plugin), downloads per version, update policies."""

    # -- ratings ---------------------------------------------------------------------------

    def rate(self, plugin_id: str, rater: str, rating: int, review: str = "") -> MarketRating:
        """Record ``rater``'s rating of ``plugin_id``, replacing their earlier one's stars and
        text. A moderator's decision stands: a rating hidden by an admin stays hidden (with who
        hid it and why) until an admin shows it again (:meth:`moderate_rating`)."""
        if not 1 <= rating <= 5:
            raise InvalidRecord(f"a rating is 1 to 5, not {rating}")
        now = self._now()
        with self._tx() as s:
            row = s.scalar(select(MarketRatingRow).where(
                MarketRatingRow.plugin_id == plugin_id, MarketRatingRow.rater == rater)
                .with_for_update())
            if row is None:
                row = MarketRatingRow(plugin_id=plugin_id, rater=rater, created_at=now)
                s.add(row)
            row.rating, row.review, row.updated_at = rating, review, now
            s.flush()
            return to_record(MarketRating, row)

    def list_ratings(self, plugin_id: str, *, limit: int = 50, before_id: int | None = None,
                     include_hidden: bool = False) -> list[MarketRating]:
        """Ratings of a plugin, newest first (page with ``before_id``)."""
        stmt = (select(MarketRatingRow).where(MarketRatingRow.plugin_id == plugin_id)
                .order_by(MarketRatingRow.id.desc()).limit(limit))
        if not include_hidden:
            stmt = stmt.where(MarketRatingRow.hidden.is_(False))
        if before_id is not None:
            stmt = stmt.where(MarketRatingRow.id < before_id)
        with self._tx(write=False) as s:
            return [to_record(MarketRating, r) for r in s.scalars(stmt)]

    def rating_summary(self, plugin_ids: Iterable[str] | None = None
                       ) -> dict[str, tuple[float, int]]:
        """``{plugin id: (average rating, count)}`` over visible ratings."""
        stmt: Any = (select(MarketRatingRow.plugin_id, func.avg(MarketRatingRow.rating),
                            func.count()).where(MarketRatingRow.hidden.is_(False))
                     .group_by(MarketRatingRow.plugin_id))
        if plugin_ids is not None:
            stmt = stmt.where(MarketRatingRow.plugin_id.in_(list(plugin_ids)))
        with self._tx(write=False) as s:
            return {pid: (round(float(avg), 2), int(n)) for pid, avg, n in s.execute(stmt)}

    def moderate_rating(self, rating_id: int, *, hidden: bool, by: str,
                        reason: str = "") -> MarketRating:
        """Hide (or show again) a rating; who and why are kept."""
        with self._tx() as s:
            row = s.get(MarketRatingRow, rating_id)
            if row is None:
                raise RecordNotFound(f"no rating {rating_id}", code="storage.not_found")
            row.hidden, row.moderated_by, row.moderation_reason = hidden, by, reason
            s.flush()
            return to_record(MarketRating, row)

    # -- downloads -------------------------------------------------------------------------

    def count_download(self, plugin_id: str, version: str) -> None:
        """Add one download of ``plugin_id`` ``version``."""
        with self._tx() as s:
            result: Any = s.execute(update(MarketDownloadRow).where(
                MarketDownloadRow.plugin_id == plugin_id,
                MarketDownloadRow.version == version).values(count=MarketDownloadRow.count + 1))
            if not result.rowcount:
                s.add(MarketDownloadRow(plugin_id=plugin_id, version=version, count=1))

    def download_counts(self, plugin_ids: Iterable[str] | None = None) -> dict[str, int]:
        """``{plugin id: downloads of every version}``."""
        stmt: Any = select(MarketDownloadRow.plugin_id, func.sum(MarketDownloadRow.count)) \
            .group_by(MarketDownloadRow.plugin_id)
        if plugin_ids is not None:
            stmt = stmt.where(MarketDownloadRow.plugin_id.in_(list(plugin_ids)))
        with self._tx(write=False) as s:
            return {pid: int(n or 0) for pid, n in s.execute(stmt)}

    # -- update policies -------------------------------------------------------------------

    def get_update_policy(self, plugin_id: str) -> UpdatePolicy | None:
        with self._tx(write=False) as s:
            row = s.get(MarketUpdatePolicyRow, plugin_id)
            return None if row is None else to_record(UpdatePolicy, row)

    def list_update_policies(self) -> list[UpdatePolicy]:
        with self._tx(write=False) as s:
            return [to_record(UpdatePolicy, r) for r in
                    s.scalars(select(MarketUpdatePolicyRow).order_by(
                        MarketUpdatePolicyRow.plugin_id))]

    def set_update_policy(self, plugin_id: str, *, policy: str | None = None,
                          cooldown_seconds: int | None = None,
                          maintenance_window: str | None = None,
                          notified_version: str | None = None,
                          last_checked_at: datetime | None = None,
                          last_update_at: datetime | None = None) -> UpdatePolicy:
        """Create or change a plugin's policy (fields left ``None`` keep their value)."""
        if policy is not None and policy not in UPDATE_POLICIES:
            raise InvalidRecord(f"{policy!r} is not an update policy; use one of "
                                + ", ".join(UPDATE_POLICIES))
        with self._tx() as s:
            row = s.get(MarketUpdatePolicyRow, plugin_id, with_for_update=True)
            if row is None:
                row = MarketUpdatePolicyRow(plugin_id=plugin_id, policy="notify",
                                            cooldown_seconds=0, maintenance_window="",
                                            notified_version="")
                s.add(row)
            for name, value in (("policy", policy), ("cooldown_seconds", cooldown_seconds),
                                ("maintenance_window", maintenance_window),
                                ("notified_version", notified_version),
                                ("last_checked_at", last_checked_at),
                                ("last_update_at", last_update_at)):
                if value is not None:
                    setattr(row, name, value)
            s.flush()
            return to_record(UpdatePolicy, row)
