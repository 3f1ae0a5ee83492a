"""The browse index gets the natural order of object numbers and the facets material, century
and maker. Its rows are recomputed on the next refresh (the index's own schema stamp changes),
so the new columns need no backfill here.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

FACETS = (("material", sa.String(length=255)), ("century", sa.Integer()), ("maker", sa.String(length=255)))


def upgrade() -> None:
    with op.batch_alter_table("browse_index", schema=None) as batch_op:
        batch_op.add_column(sa.Column("number_key", sa.String(length=255), nullable=False, server_default=""))
        for name, kind in FACETS:
            batch_op.add_column(sa.Column(name, kind, nullable=True))
        for name in ("number_key", *(name for name, _ in FACETS)):
            batch_op.create_index(batch_op.f(f"ix_browse_index_{name}"), [name], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("browse_index", schema=None) as batch_op:
        for name in ("number_key", *(name for name, _ in FACETS)):
            batch_op.drop_index(batch_op.f(f"ix_browse_index_{name}"))
            batch_op.drop_column(name)
