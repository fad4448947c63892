"""A campaign's effective settings: the workspace's sender defaults, overridden by the
template's settings, overridden by the campaign's. The one place they are merged."""

import dataclasses
import functools
import uuid
from dataclasses import dataclass
from email.utils import parseaddr

import sqlalchemy as sa
from flask import current_app

from webapp.engine import policy
from webapp.extensions import db
from webapp.models import CampaignInstance, CampaignTemplate, Workspace

# The settings a workspace may give defaults for (Settings, sender defaults).
SENDER_DEFAULT_KEYS = ("send_window", "timezone", "daily_cap", "from_name", "from_email")
DEFAULT_STOP_ON = ("reply", "bounce", "unsubscribe")


class InvalidSettings(ValueError):
    """Stored settings the policy cannot use (saved before a validation existed)."""


@dataclass(frozen=True)
class Sender:
    name: str
    address: str  # lower case
    mailbox_id: uuid.UUID | None = None  # None: the default sender

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2] or "drumbeat.invalid"


@dataclass(frozen=True)
class Effective:
    """Merged settings (`values`, as stored) with what the pipeline reads of them."""

    values: dict
    rules: policy.Rules
    sender: Sender
    signature: str | None = None  # the sending mailbox's, added under each email

    @property
    def track_opens(self) -> bool:
        return bool(self.values.get("track_opens"))

    @property
    def track_clicks(self) -> bool:
        return bool(self.values.get("track_clicks"))

    @property
    def stop_on(self) -> frozenset[str]:
        return stop_on(self.values)

    @property
    def task_auto_skip_hours(self) -> int | None:
        return self.values.get("task_auto_skip_hours")

    @property
    def mailbox_ids(self) -> tuple[uuid.UUID, ...]:
        """The mailboxes the campaign sends from; none: the default sender (SMTP_* and MAIL_FROM)."""
        return tuple(uuid.UUID(str(value)) for value in self.values.get("mailbox_ids") or ())

    def from_mailbox(self, mailbox) -> "Effective":
        """These settings for a send from `mailbox`: its address, and its cap, ramp-up and gap in
        place of the campaign's (a mailbox's limits hold across every campaign using it)."""
        ramp = None
        if mailbox.ramp_start and mailbox.ramp_increase and mailbox.ramp_started_on:
            ramp = (mailbox.ramp_start, mailbox.ramp_increase, mailbox.ramp_started_on)
        rules = dataclasses.replace(
            self.rules, daily_cap=mailbox.daily_cap, min_gap_seconds=mailbox.min_gap_seconds or None, ramp=ramp
        )
        sender = Sender(mailbox.from_name or self.sender.name, mailbox.from_email.lower(), mailbox.id)
        return dataclasses.replace(self, rules=rules, sender=sender, signature=mailbox.signature)


def merged_values(
    workspace_settings: dict | None, template_settings: dict | None, instance_settings: dict | None
) -> dict:
    """The stored settings of the three levels, merged: the campaign's over the template's over
    the workspace's sender defaults."""
    defaults = {k: v for k, v in (workspace_settings or {}).items() if k in SENDER_DEFAULT_KEYS and v is not None}
    return {**defaults, **(template_settings or {}), **(instance_settings or {})}


def stop_on(values: dict) -> frozenset[str]:
    """What ends an enrollment early ("reply", "bounce", "unsubscribe"): all three unless the settings say otherwise."""
    chosen = values.get("stop_on")
    return frozenset(DEFAULT_STOP_ON if chosen is None else chosen)


def campaign_stop_on(template_settings: dict | None, instance_settings: dict | None) -> frozenset[str]:
    """What ends a campaign's enrollments early: its own stop rules over its template's (the
    workspace has none). Event intake and the reach of a reply both ask this."""
    return stop_on(merged_values(None, template_settings, instance_settings))


def merge(workspace_settings: dict | None, template_settings: dict | None, instance_settings: dict | None) -> Effective:
    """The effective settings from the three levels. The sender's day is counted in the
    workspace's time zone (see engine/policy.py). Raises InvalidSettings for stored values the
    policy refuses."""
    workspace_settings = workspace_settings or {}
    values = merged_values(workspace_settings, template_settings, instance_settings)
    try:
        rules = policy.Rules.from_settings(values, sender_timezone=workspace_settings.get("timezone"))
    except ValueError as exc:
        raise InvalidSettings(str(exc)) from exc
    return Effective(values, rules, _sender(values.get("from_name"), values.get("from_email")))


def for_instance(instance: CampaignInstance, workspace: Workspace) -> Effective:
    template_settings = db.session.scalar(
        sa.select(CampaignTemplate.settings).where(CampaignTemplate.id == instance.template_id)
    )
    return merge(workspace.settings, template_settings, instance.settings)


def for_template(template: CampaignTemplate, workspace: Workspace) -> Effective:
    """What a campaign made from `template` gets before any setting of its own."""
    return merge(workspace.settings, template.settings, None)


def _sender(name: str | None, address: str | None) -> Sender:
    default_name, default_address = _mail_from(current_app.config["MAIL_FROM"])
    return Sender(name or default_name or "", (address or default_address).lower())


@functools.lru_cache(maxsize=8)
def _mail_from(value: str) -> tuple[str, str]:
    return parseaddr(value)


class SettingsCache:
    """Effective settings by campaign, loaded once per batch (one query per campaign).
    A campaign whose stored settings are invalid maps to the InvalidSettings it raised."""

    def __init__(self):
        self._workspaces: dict[uuid.UUID, dict] = {}
        self._cache: dict[uuid.UUID, Effective | InvalidSettings] = {}

    def __call__(self, instance_id: uuid.UUID) -> Effective:
        if instance_id not in self._cache:
            workspace_id, template_settings, instance_settings = db.session.execute(
                sa.select(CampaignInstance.workspace_id, CampaignTemplate.settings, CampaignInstance.settings)
                .join(CampaignTemplate, CampaignTemplate.id == CampaignInstance.template_id)
                .where(CampaignInstance.id == instance_id)
            ).one()
            if workspace_id not in self._workspaces:
                self._workspaces[workspace_id] = (
                    db.session.scalar(sa.select(Workspace.settings).where(Workspace.id == workspace_id)) or {}
                )
            try:
                self._cache[instance_id] = merge(self._workspaces[workspace_id], template_settings, instance_settings)
            except InvalidSettings as exc:
                self._cache[instance_id] = exc
        found = self._cache[instance_id]
        if isinstance(found, InvalidSettings):
            raise found
        return found
