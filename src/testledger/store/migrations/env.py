"""Alembic environment for testledger's own migrations.

testledger runs Alembic programmatically (``testledger db upgrade``): the connection comes in
through ``config.attributes["connection"]``; offline mode (``testledger db sql``) renders DDL
for the dialect named in ``config.attributes["dialect_name"]``.
"""

from __future__ import annotations

from alembic import context

from testledger.store.tables import metadata

config = context.config


def run_offline() -> None:
    dialect_name = config.attributes.get("dialect_name", "postgresql")
    context.configure(
        dialect_name=dialect_name,
        target_metadata=metadata,
        literal_binds=True,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
