"""Browser sessions, the current workspace, and the security headers every response carries.

Sessions are Flask's signed cookie plus Flask-Login. The id stored in the cookie is
`<user id>:<session_version>`; the loader refuses a cookie whose version is not the user's current
one, so bumping `User.session_version` (logout, password change) ends every session issued before.
"""

import secrets
import uuid
from urllib.parse import urlsplit

from flask import Flask, g, make_response, redirect, request, session, url_for
from flask_login import UserMixin, current_user, login_user
from sqlalchemy.exc import DBAPIError
from werkzeug.wrappers import Response

from webapp.errors import Unauthorized
from webapp.extensions import db, login_manager
from webapp.models import User, Workspace

HTML_POLICY = (
    "default-src 'self'",
    "script-src 'self'{nonce}",
    "style-src 'self'",
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'self'",
    "frame-ancestors 'none'",
    "form-action 'self'",
)
OTHER_POLICY = "default-src 'none'; frame-ancestors 'none'"
HSTS = "max-age=31536000; includeSubDomains"


class SessionUser(UserMixin):
    """The signed-in user as Flask-Login sees it; other attributes are the model's.

    Pass `current_user.user` (the `User` row) to services.
    """

    def __init__(self, user: User):
        self.user = user

    def get_id(self) -> str:
        return f"{self.user.id}:{self.user.session_version}"

    @property
    def is_active(self) -> bool:
        return bool(self.user.is_active)

    def __getattr__(self, name: str):
        if name == "user":
            raise AttributeError(name)
        return getattr(self.user, name)


def load_user(session_id: str) -> SessionUser | None:
    """The user of a session cookie, or None if it is malformed, stale or the user is disabled."""
    user_id, _, version = session_id.partition(":")
    try:
        key, expected_version = uuid.UUID(user_id), int(version)
    except ValueError:
        return None
    try:
        user = db.session.get(User, key)
    except DBAPIError:
        # The error page rendered next asks Flask-Login for the user again: answer "anonymous"
        # instead of querying the failing database a second time inside the error handler.
        g._login_user = login_manager.anonymous_user()
        raise
    if user is None or not user.is_active or user.session_version != expected_version:
        return None
    return SessionUser(user)


def start_session(user: User) -> None:
    """Sign `user` in on a fresh session: nothing from the pre-login session survives (fixation)."""
    session.clear()
    login_user(SessionUser(user))


def current_account() -> User:
    """The signed-in `User` row; raises Unauthorized when nobody is signed in."""
    if not current_user.is_authenticated:
        raise Unauthorized("Sign in to continue.")
    return current_user.user


def current_workspace() -> Workspace:
    """The workspace of the API key or of the signed-in user; raises Unauthorized if neither."""
    workspace = g.get("workspace")
    if workspace is None:
        workspace = db.session.get(Workspace, current_account().workspace_id)
        g.workspace = workspace
    return workspace


def safe_next(target: str | None, default: str = "/") -> str:
    """`target` if it is a path on this site, else `default` (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    # Browsers treat `\` as `/` and ignore tabs and newlines, so `/\evil.test` is `//evil.test`.
    if "\\" in target or any(ord(char) < 32 or ord(char) == 127 for char in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def _login_url() -> str:
    if request.headers.get("HX-Request") == "true":
        # For htmx, come back to the page the fragment belongs to, not to the fragment.
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
        here = current.path + (f"?{current.query}" if current.query else "")
        if current.netloc != request.host:
            here = ""
    elif request.method in ("GET", "HEAD"):
        here = request.path + (f"?{request.query_string.decode('latin-1')}" if request.query_string else "")
    else:
        # Coming back to a POST-only URL with a GET would be a 405: start from the overview.
        here = ""
    next_url = safe_next(here, default="")
    return url_for("auth.login", next=next_url) if next_url and next_url != "/" else url_for("auth.login")


def unauthorized() -> Response:
    """Not signed in: htmx gets 401 + HX-Redirect (a full navigation), browsers a 303 to the login page."""
    if request.headers.get("HX-Request") == "true":
        response = make_response("", 401)
        response.headers["HX-Redirect"] = _login_url()
        response.vary.add("HX-Request")
        return response
    return redirect(_login_url(), 303)


def require_login() -> Response | None:
    """A `before_request` hook for HTML blueprints: `bp.before_request(require_login)`."""
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    return None


def csp_nonce() -> str:
    """The per-request script nonce, created on first use (so the CSP only lists it when used)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(18)
    return g.csp_nonce


def content_security_policy(response: Response) -> str:
    if response.mimetype != "text/html":
        return OTHER_POLICY
    nonce = g.get("csp_nonce")
    return "; ".join(HTML_POLICY).format(nonce=f" 'nonce-{nonce}'" if nonce else "")


def set_security_headers(response: Response) -> Response:
    headers = response.headers
    # A view may set its own policy (e.g. a relaxed one for API docs); the default is strict.
    headers.setdefault("Content-Security-Policy", content_security_policy(response))
    headers.setdefault("X-Content-Type-Options", "nosniff")
    # same-origin, not no-referrer: over HTTPS Flask-WTF rejects a POST without a same-site Referer.
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", HSTS)
    if response.mimetype == "text/html" and "Cache-Control" not in headers:
        # Dashboard pages hold workspace data and CSRF tokens: never store them, nor keep them in
        # the back-forward cache after logout.
        headers["Cache-Control"] = "no-store"
    return response


def init_security(app: Flask) -> None:
    login_manager.user_loader(load_user)
    login_manager.unauthorized_handler(unauthorized)
    login_manager.login_view = "auth.login"
    app.jinja_env.globals.update(csp_nonce=csp_nonce, current_workspace=current_workspace)
    app.after_request(set_security_headers)
