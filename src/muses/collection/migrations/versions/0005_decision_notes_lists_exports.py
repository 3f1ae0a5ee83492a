"""Review decisions get a note and the review list they were made in; exports are remembered
("only since the last export").

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"

down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("review_decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("list_name", sa.String(length=64), nullable=True))
    # a store opened by a muses between the revisions may have made it on open already
    if not sa.inspect(op.get_bind()).has_table("decision_exports"):
        op.create_table("decision_exports",
                        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
                        sa.Column("exported_at", sa.DateTime(), nullable=False),
                        sa.Column("rows", sa.Integer(), nullable=False),
                        sa.PrimaryKeyConstraint("id"))


def downgrade() -> None:
    op.drop_table("decision_exports")
    with op.batch_alter_table("review_decisions", schema=None) as batch_op:
        batch_op.drop_column("list_name")
        batch_op.drop_column("note")
