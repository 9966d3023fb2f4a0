"""drop the tags image_id index

The unique (image_id, label_id) constraint's index already serves lookups by
image, so the separate image_id index only made every tag insert slower.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 16:10:00
"""
from __future__ import annotations

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tags_image_id'))


def downgrade() -> None:
    with op.batch_alter_table('tags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tags_image_id'), ['image_id'], unique=False)
