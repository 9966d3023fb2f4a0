"""performance: vector precision and runtime

An index records how its image vectors were computed: the precision of the
image tower (fp32, or int8 when asked for with --precision) and the runtime
(onnx or torch) that made them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 22:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Indexes made before this revision hold fp32 vectors from open_clip on torch.
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('precision', sa.String(length=16), server_default='fp32', nullable=False))
        batch_op.add_column(sa.Column('runtime', sa.String(length=16), nullable=True))
    op.execute("UPDATE models SET runtime = 'torch' WHERE runtime IS NULL")


def downgrade() -> None:
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.drop_column('runtime')
        batch_op.drop_column('precision')
