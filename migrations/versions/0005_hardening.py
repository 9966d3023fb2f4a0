"""hardening: tag staleness and run states

Placeholder reserved so that parallel work can chain its migrations; filled in
by the change that needs it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 22:00:00
"""
from __future__ import annotations

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
