"""Plan allocations are on by default (`app_settings.monthly_allocations` defaults to true).

Apps whose settings row already exists keep the value they have: for them the old default was
an explicit "off", and tokens appearing by themselves would surprise an app that counted on it.
Apps created from now on (and apps billing has no settings row for) get their plan's monthly
tokens unless they turn it off.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column("app_settings", "monthly_allocations", server_default=sa.true())


def downgrade() -> None:
    op.alter_column("app_settings", "monthly_allocations", server_default=sa.false())
