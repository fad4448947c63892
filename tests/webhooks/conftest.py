"""A campaign whose first step went out to three contacts: the deliveries provider events are about."""

import pytest
import sqlalchemy as sa

from tests.webhooks.helpers import add_deliveries
from webapp.extensions import db
from webapp.models import CampaignEvent
from webapp.services.providers import set_provider_settings


@pytest.fixture
def campaign(app, api, owner):
    instance, sent = add_deliveries(app, api, owner.workspace_id)
    return {"instance": instance, "sent": sent}


@pytest.fixture
def configure(app, owner):
    """`configure("sendgrid", {...})`: store provider credentials for the owner's workspace."""

    def configure(provider: str, values: dict, persona=owner) -> None:
        with app.app_context():
            set_provider_settings(persona.workspace, provider, values)

    return configure


@pytest.fixture
def stored(app):
    """`stored()`: every stored provider event as (provider, type, provider_event_id), oldest first."""

    def stored(provider: str | None = None) -> list[tuple]:
        with app.app_context():
            query = sa.select(CampaignEvent.provider, CampaignEvent.type, CampaignEvent.provider_event_id)
            if provider:
                query = query.where(CampaignEvent.provider == provider)
            rows = db.session.execute(query.order_by(CampaignEvent.created_at, CampaignEvent.provider_event_id))
            return [tuple(row) for row in rows]

    return stored
