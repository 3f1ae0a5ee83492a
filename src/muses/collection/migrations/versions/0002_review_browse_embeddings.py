"""Review decisions, the browse index and photo embeddings.

A store opened by a muses between the two revisions may already hold these tables (models
without a migration were created on open): each is created only where it is missing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _exists(table: str) -> bool:
    return sa.inspect(op.get_bind()).has_table(table)


def upgrade() -> None:
    if not _exists('browse_index'):
        op.create_table('browse_index',
        sa.Column('item_id', sa.String(length=255), nullable=False),
        sa.Column('stamp', sa.Text(), nullable=False),
        sa.Column('predicted_class', sa.String(length=255), nullable=True),
        sa.Column('predicted_probability', sa.Float(), nullable=True),
        sa.Column('naive_class', sa.String(length=255), nullable=True),
        sa.Column('naive_status', sa.String(length=16), nullable=False),
        sa.Column('disagree', sa.Boolean(), nullable=False),
        sa.Column('disagreement', sa.Float(), nullable=True),
        sa.Column('thumbnail_image', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('item_id')
        )
        with op.batch_alter_table('browse_index', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_browse_index_disagree'), ['disagree'], unique=False)
            batch_op.create_index(batch_op.f('ix_browse_index_disagreement'), ['disagreement'], unique=False)
            batch_op.create_index(batch_op.f('ix_browse_index_naive_class'), ['naive_class'], unique=False)
            batch_op.create_index(batch_op.f('ix_browse_index_predicted_class'), ['predicted_class'], unique=False)
            batch_op.create_index(batch_op.f('ix_browse_index_predicted_probability'), ['predicted_probability'], unique=False)

    if not _exists('browse_meta'):
        op.create_table('browse_meta',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('key')
        )

    if not _exists('review_decisions'):
        op.create_table('review_decisions',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('item_id', sa.String(length=255), nullable=False),
        sa.Column('field', sa.String(length=64), nullable=False),
        sa.Column('catalog_value', sa.Text(), nullable=False),
        sa.Column('suggested_value', sa.Text(), nullable=False),
        sa.Column('action', sa.String(length=32), nullable=False),
        sa.Column('value', sa.Text(), nullable=True),
        sa.Column('reviewer', sa.Text(), nullable=False),
        sa.Column('decided_at', sa.DateTime(), nullable=False),
        sa.Column('undone', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('id')
        )
        with op.batch_alter_table('review_decisions', schema=None) as batch_op:
            batch_op.create_index(batch_op.f('ix_review_decisions_decided_at'), ['decided_at'], unique=False)
            batch_op.create_index(batch_op.f('ix_review_decisions_item_id'), ['item_id'], unique=False)

    if not _exists('image_embeddings'):
        op.create_table('image_embeddings',
        sa.Column('image_id', sa.Integer(), nullable=False),
        sa.Column('slot', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['image_id'], ['images.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('image_id'),
        sa.UniqueConstraint('slot')
        )


def downgrade() -> None:
    op.drop_table('image_embeddings')
    with op.batch_alter_table('review_decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_review_decisions_item_id'))
        batch_op.drop_index(batch_op.f('ix_review_decisions_decided_at'))

    op.drop_table('review_decisions')
    op.drop_table('browse_meta')
    with op.batch_alter_table('browse_index', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_browse_index_predicted_probability'))
        batch_op.drop_index(batch_op.f('ix_browse_index_predicted_class'))
        batch_op.drop_index(batch_op.f('ix_browse_index_naive_class'))
        batch_op.drop_index(batch_op.f('ix_browse_index_disagreement'))
        batch_op.drop_index(batch_op.f('ix_browse_index_disagree'))

    op.drop_table('browse_index')
