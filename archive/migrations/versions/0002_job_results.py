"""job results: summary key, SEG and SR instance UIDs, superseded_by

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("summary_key", sa.String(300), nullable=True))
        batch.add_column(sa.Column("seg_sop_instance_uid", sa.String(64), nullable=True))
        batch.add_column(sa.Column("sr_sop_instance_uid", sa.String(64), nullable=True))
        batch.add_column(sa.Column("superseded_by", sa.String(36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for column in ("superseded_by", "sr_sop_instance_uid", "seg_sop_instance_uid", "summary_key"):
            batch.drop_column(column)
