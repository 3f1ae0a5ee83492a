"""The browse index keeps each item's stored answer (sure, uncertain or none), so a collection
card says it in the object page's words. Its rows are recomputed on the next refresh (the
index's own schema stamp changes), so the column needs no backfill here.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("browse_index", schema=None) as batch_op:
        batch_op.add_column(sa.Column("answer", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("browse_index", schema=None) as batch_op:
        batch_op.drop_column("answer")
