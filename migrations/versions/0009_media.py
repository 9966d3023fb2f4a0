"""media: RAW, video frames and ignored files

Images learn their media kind (raw, video, motion photo) and a video's
duration; video frames get a table of their own (each frame has a vector, and
its FAISS id is an offset of its row id); files that are not images are
listed so that status and errors can say what was left out.

Revision ID: 0009
Revises: 0007
Create Date: 2026-11-26 22:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import zsindex.schema

revision = '0009'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('media_kind', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('duration', sa.Float(), nullable=True))
    with op.batch_alter_table('ingest_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ignored', sa.Text(), nullable=True))
    op.create_table(
        'frames',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('image_id', sa.Integer(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('seconds', sa.Float(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_frames_image_id_images'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_frames')),
        sa.UniqueConstraint('image_id', 'position', name='uq_frames_image_position'),
    )
    op.create_table(
        'ignored_files',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('path', zsindex.schema.FsPath(), nullable=False),
        sa.Column('kind', sa.String(length=64), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_ignored_files')),
        sa.UniqueConstraint('path', name=op.f('uq_ignored_files_path')),
    )


def downgrade() -> None:
    op.drop_table('ignored_files')
    op.drop_table('frames')
    with op.batch_alter_table('ingest_runs', schema=None) as batch_op:
        batch_op.drop_column('ignored')
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_column('duration')
        batch_op.drop_column('media_kind')
