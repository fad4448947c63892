"""Drumbeat: sales-outreach campaigns. create_app() is the only entry point."""

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

import sqlalchemy as sa
from flask import Flask, jsonify

from webapp.config import ROOT, Config


def create_app(config: type[Config] | dict | None = None) -> Flask:
    app = Flask(
        __name__, template_folder="../templates", static_folder="../static", instance_path=str(ROOT / "instance")
    )
    app.config.from_object(Config)
    if isinstance(config, dict):
        app.config.update(config)
    elif config is not None:
        app.config.from_object(config)
    _ensure_instance_secrets(app)

    from webapp.logging import configure_logging

    configure_logging(app)
    _init_extensions(app)
    from webapp.security import init_security

    init_security(app)
    _register_blueprints(app)

    from webapp.errors import register_error_handlers

    register_error_handlers(app)

    from webapp.cli import register_commands

    register_commands(app)
    _register_health(app)
    return app


def generated_once(path: Path, generate) -> str:
    """The value kept in `path` (mode 0600), made by `generate` by the first process to get there.
    It is written to a temporary file and hard-linked into place, so processes starting together
    (gunicorn's workers, several `flask worker`s) all read the same, complete value."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(generate())
            with contextlib.suppress(FileExistsError):  # another process was first: its value holds
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    return path.read_text().strip()


def _ensure_instance_secrets(app: Flask) -> None:
    """Without SECRET_KEY or ENCRYPTION_KEY, use one generated once and kept in instance/ (mode 0600)."""
    from cryptography.fernet import Fernet

    for name, filename, generate in (
        ("SECRET_KEY", "secret_key", lambda: secrets.token_hex(32)),
        ("ENCRYPTION_KEY", "encryption_key", lambda: Fernet.generate_key().decode()),
    ):
        if app.config.get(name):
            continue
        app.config[name] = generated_once(Path(app.instance_path) / filename, generate)
    from webapp.crypto import check_keys

    check_keys(app.config["ENCRYPTION_KEY"])  # a wrong key stops the start, not the first send


def _init_extensions(app: Flask) -> None:
    from webapp.extensions import csrf, db, limiter, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=str(app.root_path + "/../migrations"), compare_type=True)
    csrf.init_app(app)
    hops = int(app.config["TRUSTED_PROXY_HOPS"])
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # The client address the rate limiter keys on, as seen by the outermost trusted proxy.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)
    limiter.init_app(app)
    login_manager.init_app(app)
    with app.app_context():
        _configure_engine(app, db.engine)


def _configure_engine(app: Flask, engine: sa.Engine) -> None:
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

    elif engine.dialect.name == "postgresql":
        timeout = int(app.config["STATEMENT_TIMEOUT_MS"])
        connect_timeout = int(app.config["DATABASE_CONNECT_TIMEOUT"])

        @sa.event.listens_for(engine, "do_connect")
        def _pg_connect_timeout(_dialect, _record, _cargs, cparams):
            # Without it an unreachable server holds each request for the OS TCP timeout (minutes).
            cparams.setdefault("connect_timeout", connect_timeout)

        @sa.event.listens_for(engine, "connect")
        def _pg_settings(dbapi_conn, _record):
            with dbapi_conn.cursor() as cursor:
                cursor.execute(f"SET statement_timeout = {timeout}")
            dbapi_conn.commit()


def _register_blueprints(app: Flask) -> None:
    from webapp.api import bp as api_bp
    from webapp.tracking.routes import bp as tracking_bp
    from webapp.web import register_web
    from webapp.webhooks.routes import bp as webhooks_bp

    app.register_blueprint(api_bp)
    app.register_blueprint(tracking_bp)
    app.register_blueprint(webhooks_bp)
    register_web(app)


def _register_health(app: Flask) -> None:
    from webapp.extensions import db, limiter

    @app.get("/healthz")
    @limiter.exempt
    def healthz():
        """The process is up; says nothing about the database."""
        return jsonify({"success": True, "data": {"status": "ok"}})

    @app.get("/readyz")
    @limiter.exempt
    def readyz():
        """Ready to serve: the database answers."""
        db.session.execute(sa.text("SELECT 1"))
        db.session.rollback()
        return jsonify({"success": True, "data": {"status": "ready"}})
