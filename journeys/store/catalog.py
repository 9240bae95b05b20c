"""The catalog: segments, templates and the global settings."""

from __future__ import annotations

import copy
from typing import Any, TypeVar

from sqlmodel import col, select

from journeys.store.base import StoreBase, once_more_on_conflict
from journeys.store.records import SegmentRecord, SettingRecord, TemplateRecord, utcnow

_Catalog = TypeVar("_Catalog", SegmentRecord, TemplateRecord)


class CatalogAggregate(StoreBase):
    """Segments, templates and settings: replaced whole, keyed by id."""

    def put_segment(self, segment_id: str, name: str, condition: dict[str, Any]) -> SegmentRecord:
        """Create or replace a segment."""
        record = SegmentRecord(
            id=segment_id, name=name, condition=copy.deepcopy(condition), updated_at=utcnow()
        )
        return once_more_on_conflict(lambda: self._merge(record))

    def get_segment(self, segment_id: str) -> SegmentRecord | None:
        """The segment, or None."""
        with self._read() as session:
            return session.get(SegmentRecord, segment_id)

    def delete_segment(self, segment_id: str) -> bool:
        """Delete the segment; whether it existed."""
        return self._delete(SegmentRecord, segment_id)

    def list_segments(self) -> list[SegmentRecord]:
        """Every segment, by id."""
        with self._read() as session:
            return list(session.exec(select(SegmentRecord).order_by(col(SegmentRecord.id))))

    def put_template(
        self, template_id: str, channel: str, content: dict[str, Any]
    ) -> TemplateRecord:
        """Create or replace a template."""
        record = TemplateRecord(
            id=template_id, channel=channel, content=copy.deepcopy(content), updated_at=utcnow()
        )
        return once_more_on_conflict(lambda: self._merge(record))

    def _merge(self, record: _Catalog) -> _Catalog:
        with self._write() as session:
            return session.merge(record)

    def get_template(self, template_id: str) -> TemplateRecord | None:
        """The template, or None."""
        with self._read() as session:
            return session.get(TemplateRecord, template_id)

    def delete_template(self, template_id: str) -> bool:
        """Delete the template; whether it existed."""
        return self._delete(TemplateRecord, template_id)

    def list_templates(self) -> list[TemplateRecord]:
        """Every template, by id."""
        with self._read() as session:
            return list(session.exec(select(TemplateRecord).order_by(col(TemplateRecord.id))))

    def _delete(self, model: type[SegmentRecord] | type[TemplateRecord], key: str) -> bool:
        with self._write() as session:
            record = session.get(model, key)
            if record is None:
                return False
            session.delete(record)
            return True

    def get_settings(self) -> dict[str, Any]:
        """Every global setting by key."""
        with self._read() as session:
            return {record.key: record.value for record in session.exec(select(SettingRecord))}

    def put_settings(self, values: dict[str, Any]) -> dict[str, Any]:
        """Create or replace the given settings (others are kept); every setting by key."""
        return once_more_on_conflict(lambda: self._put_settings(values))

    def _put_settings(self, values: dict[str, Any]) -> dict[str, Any]:
        with self._write() as session:
            for key, value in values.items():
                session.merge(SettingRecord(key=key, value=copy.deepcopy(value)))
            session.flush()
            return {record.key: record.value for record in session.exec(select(SettingRecord))}
