"""service: auto-tag label sets and jobs

Label sets get an ``auto`` flag: when set, the service tags new images with
the set after each ingest (``zsindex serve --watch``, ``POST /api/ingest``).
Jobs themselves live in the server's memory; ingest runs stay recorded in
``ingest_runs`` as before.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 22:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('label_sets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('auto', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('label_sets', schema=None) as batch_op:
        batch_op.drop_column('auto')
