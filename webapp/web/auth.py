"""Sign in and sign out."""

import hashlib
import logging

from flask import Blueprint, current_app, flash, redirect, request, session, url_for
from flask_login import current_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import InputRequired, Length

from webapp.extensions import limiter
from webapp.htmx import hx_redirect, render
from webapp.logging import EMAIL_RE, mask_email
from webapp.security import safe_next, start_session
from webapp.services.users import MAX_PASSWORD_LENGTH, authenticate_user, end_sessions

bp = Blueprint("auth", __name__)
log = logging.getLogger("drumbeat.auth")

INVALID_CREDENTIALS = "Incorrect email or password."


class LoginForm(FlaskForm):
    email = EmailField(
        "Email",
        validators=[InputRequired(message="Enter your email address."), Length(max=320)],
        render_kw={"autocomplete": "username", "spellcheck": "false", "autocapitalize": "none"},
    )
    password = PasswordField(
        "Password",
        validators=[InputRequired(message="Enter your password."), Length(max=MAX_PASSWORD_LENGTH)],
        render_kw={"autocomplete": "current-password"},
    )


def _client_ip() -> str:
    return "login-ip:" + (request.remote_addr or "unknown")


def _login_account() -> str:
    """Attempts on one account from many addresses share a budget too (credential stuffing)."""
    email = (request.form.get("email") or "").strip().lower()
    return "login-account:" + hashlib.sha256(email.encode()).hexdigest()[:32]


def _email_for_log(raw: str) -> str:
    # People type passwords into the email field: log only what looks like an address, masked.
    raw = raw.strip()[:320]
    return mask_email(raw) if EMAIL_RE.fullmatch(raw) else "(not an email address)"


def _login_limit() -> str:
    return current_app.config["RATELIMIT_LOGIN"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, key_func=_client_ip, methods=["POST"])
@limiter.limit(_login_limit, key_func=_login_account, methods=["POST"])
def login():
    """Show the sign-in form; check the credentials and start a fresh session."""
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET" and current_user.is_authenticated:
        return redirect(next_url, 303)
    form = LoginForm()
    form_error = None
    if form.validate_on_submit():
        user = authenticate_user(form.email.data, form.password.data)
        if user is not None:
            start_session(user)
            log.info("login succeeded", extra={"user_id": str(user.id), "ip": request.remote_addr})
            return hx_redirect(next_url)
        log.info("login failed", extra={"email": _email_for_log(form.email.data), "ip": request.remote_addr})
        form_error = INVALID_CREDENTIALS
    status = 422 if form.is_submitted() else 200
    return render(
        "auth/login.html", block="login_form", status=status, form=form, form_error=form_error, next_url=next_url
    )


@bp.post("/logout")
def logout():
    """End every session of this user (replayed cookies stop working) and go to the sign-in page."""
    if current_user.is_authenticated:
        user = current_user.user
        end_sessions(user)
        log.info("logout", extra={"user_id": str(user.id)})
        logout_user()
    session.clear()
    flash("You are signed out.", "success")
    return hx_redirect(url_for("auth.login"))
