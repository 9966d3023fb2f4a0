"""service: auto-tag label sets and jobs

Placeholder reserved so that parallel work can chain its migrations; filled in
by the change that needs it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 22:00:00
"""
from __future__ import annotations

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
