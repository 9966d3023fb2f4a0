"""scale: store generation and vector index kinds

Placeholder reserved so that parallel work can chain its migrations; filled in
by the change that needs it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 22:00:00
"""
from __future__ import annotations

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
