"""Access: personal API tokens (only a hash of each key is kept) and the audit log of
management changes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import col, select

from journeys.access import Principal, Role, key_matches, new_token_secret, split_token
from journeys.store.base import StoreBase
from journeys.store.records import AuditRecord, TokenRecord, utcnow


def new_token(
    name: str, role: Role, *, created_by: str, expires_at: datetime | None
) -> tuple[TokenRecord, str]:
    """The record of a new token, to be added, and its secret."""
    fresh = new_token_secret()
    record = TokenRecord(
        id=fresh.token_id,
        name=name,
        role=role.value,
        key_hash=fresh.key_hash,
        created_by=created_by,
        expires_at=expires_at,
    )
    return record, fresh.secret


class AccessAggregate(StoreBase):
    """Tokens and the audit log."""

    def create_token(
        self, name: str, role: Role, *, created_by: str, expires_at: datetime | None
    ) -> tuple[TokenRecord, str]:
        """A new token and its secret (the only time the secret exists outside the caller)."""
        record, secret = new_token(name, role, created_by=created_by, expires_at=expires_at)
        with self._write() as session:
            session.add(record)
        return record, secret

    def active_token(self, secret: str, now: datetime) -> TokenRecord | None:
        """The token whose secret this is, unless it is unknown, revoked or expired at `now`."""
        parts = split_token(secret)
        if parts is None:
            return None
        token_id, key = parts
        with self._read() as session:
            record = session.get(TokenRecord, token_id)
        if record is None or not key_matches(key, record.key_hash):
            return None
        if record.revoked_at is not None:
            return None
        if record.expires_at is not None and record.expires_at <= now:
            return None
        return record

    def tokens(self) -> list[TokenRecord]:
        """The tokens not revoked (expired ones included), oldest first."""
        with self._read() as session:
            query = (
                select(TokenRecord)
                .where(col(TokenRecord.revoked_at).is_(None))
                .order_by(col(TokenRecord.created_at), col(TokenRecord.id))
            )
            return list(session.exec(query))

    def revoke_token(self, token_id: str) -> TokenRecord | None:
        """Revoke the token from now on; None when there is no such token not yet revoked."""
        with self._write() as session:
            record = session.get(TokenRecord, token_id, with_for_update=True)
            if record is None or record.revoked_at is not None:
                return None
            record.revoked_at = utcnow()
            session.add(record)
            return record

    def record_audit(
        self, who: Principal, action: str, target: str, detail: dict[str, Any] | None = None
    ) -> AuditRecord:
        """Add an entry to the audit log: `who` made the change."""
        record = AuditRecord(
            actor=who.actor,
            token_id=who.token_id,
            action=action,
            target=target,
            detail=detail or {},
        )
        with self._write() as session:
            session.add(record)
            session.flush()
            return record

    def audit_entries(self, limit: int, before: int | None = None) -> list[AuditRecord]:
        """The newest `limit` entries of the audit log (those older than entry `before`),
        newest first."""
        with self._read() as session:
            query = select(AuditRecord).order_by(col(AuditRecord.id).desc()).limit(limit)
            if before is not None:
                query = query.where(col(AuditRecord.id) < before)
            return list(session.exec(query))
