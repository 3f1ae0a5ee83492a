"""An index on items.updated_at: the search and browse indexes check the store's newest change
before every request, which without it reads the whole items table (half a second at a
million records).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_items_updated_at", "items", ["updated_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_items_updated_at", table_name="items")
