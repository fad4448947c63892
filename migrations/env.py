"""Alembic environment, run through Flask-Migrate (`flask db upgrade`)."""

import contextlib
import logging

import sqlalchemy as sa
from alembic import context
from flask import current_app

from webapp.models.base import UTCDateTime

config = context.config
logger = logging.getLogger("alembic.env")

engine = current_app.extensions["migrate"].db.engine
config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
target_metadata = current_app.extensions["migrate"].db.metadata


def render_item(type_, obj, autogen_context):
    """Migrations spell our column types in plain SQLAlchemy, so they never import app code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations_offline():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    def process_revision_directives(context, revision, directives):
        if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
            directives[:] = []
            logger.info("No changes in schema detected.")

    conf_args = dict(current_app.extensions["migrate"].configure_args)
    conf_args.setdefault("process_revision_directives", process_revision_directives)
    conf_args["render_item"] = render_item
    conf_args["render_as_batch"] = True

    connectable = engine
    with connectable.connect() as connection, _sqlite_foreign_keys_off(connection):
        context.configure(connection=connection, target_metadata=target_metadata, **conf_args)
        with context.begin_transaction():
            context.run_migrations()


@contextlib.contextmanager
def _sqlite_foreign_keys_off(connection):
    """SQLite alters a table by copying it and dropping the old one; with foreign keys on (the app
    turns them on for every connection), that drop deletes, cascades to or is refused by the rows
    that point at the table. So migrations run with them off, and are checked before they count."""
    if connection.dialect.name != "sqlite":
        yield
        return
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")  # outside a transaction, or it does nothing
    off = not connection.exec_driver_sql("PRAGMA foreign_keys").scalar()
    connection.commit()  # end SQLAlchemy's implicit transaction: the migrations begin their own
    if not off:
        raise RuntimeError("cannot turn SQLite foreign keys off: refusing to migrate")
    try:
        yield
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
        if broken:
            raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
    finally:
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

__all__ = ["sa"]
