"""The catalog fields a museum's records carry: object number, makers, date (with its earliest and
latest year), dimensions, credit line and department. Items already in the store get them from
the record kept in ``raw``, where a key has the field's name or a preset's name for it; the
object number falls back to the id, as an import without one does.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TEXTS = ("object_number", "maker", "date", "dimensions", "credit_line", "department")
BATCH = 1000


def upgrade() -> None:
    for name in TEXTS:
        op.add_column("items", sa.Column(name, sa.Text(), nullable=False, server_default=""))
    op.add_column("items", sa.Column("makers", sa.JSON(), nullable=False, server_default="[]"))
    op.add_column("items", sa.Column("date_earliest", sa.Integer(), nullable=True))
    op.add_column("items", sa.Column("date_latest", sa.Integer(), nullable=True))
    _backfill(op.get_bind())
    op.create_index("ix_items_object_number", "items", ["object_number"], unique=False)


def _backfill(conn) -> None:
    # imported here: the module is only needed while upgrading, and its functions read the presets
    from muses.collection.importers import RecordError, catalog_fields, known_mapping

    items = sa.table("items", sa.column("id", sa.String), sa.column("raw", sa.JSON),
                     *(sa.column(name, sa.Text) for name in TEXTS), sa.column("makers", sa.JSON),
                     sa.column("date_earliest", sa.Integer), sa.column("date_latest", sa.Integer))
    last = None
    while True:
        q = sa.select(items.c.id, items.c.raw).order_by(items.c.id).limit(BATCH)
        rows = conn.execute(q if last is None else q.where(items.c.id > last)).all()
        if not rows:
            return
        updates = []
        for item_id, raw in rows:
            raw = raw if isinstance(raw, dict) else {}
            try:
                fields = catalog_fields(raw, known_mapping(raw), item_id, {})
            except RecordError:  # a key holding an object where text belongs: the id, nothing else
                fields = catalog_fields({}, known_mapping({}), item_id, {})
            updates.append({"key": item_id, **fields})
        conn.execute(items.update().where(items.c.id == sa.bindparam("key")), updates)
        last = rows[-1][0]


def downgrade() -> None:
    op.drop_index("ix_items_object_number", table_name="items")
    with op.batch_alter_table("items") as batch:
        for name in (*TEXTS, "makers", "date_earliest", "date_latest"):
            batch.drop_column(name)
