"""Deliveries to report on, and readers of the state provider events change."""

import uuid
from dataclasses import dataclass

from tests import factories
from webapp.extensions import db
from webapp.models import Delivery


@dataclass
class Sent:
    """One delivered step: its enrollment, contact and the ids a provider reports back."""

    enrollment_id: str
    contact_id: str
    email: str
    step_id: str
    delivery_id: str
    message_id: str


def add_deliveries(app, api, workspace_id, *, n: int = 3, domain: str = "example.com") -> tuple[dict, list[Sent]]:
    """An active campaign, `n` enrollments, and a sent Delivery row for step 1 of each."""
    instance = factories.instance(api, status="active")
    factories.enroll(api, instance["id"], n, domain=domain)
    enrollments = api.get(f"/instances/{instance['id']}/enrollments?sort=email").get_json()["data"]
    step_id = api.get(f"/instances/{instance['id']}/steps").get_json()["data"]["steps"][0]["id"]  # the campaign's own
    emails = {e["contact_id"]: api.get(f"/contacts/{e['contact_id']}").get_json()["data"]["email"] for e in enrollments}
    sent = []
    with app.app_context():
        for enrollment in enrollments:
            delivery_id = uuid.uuid4()
            message_id = f"<{delivery_id}@drumbeat.test>"
            db.session.add(
                Delivery(
                    id=delivery_id,
                    workspace_id=workspace_id,
                    enrollment_id=uuid.UUID(enrollment["id"]),
                    step_id=uuid.UUID(step_id),
                    status="sent",
                    message_id=message_id,
                )
            )
            contact_id = enrollment["contact_id"]
            sent.append(Sent(enrollment["id"], contact_id, emails[contact_id], step_id, str(delivery_id), message_id))
        db.session.commit()
    return instance, sent


def status_of(api, sent: Sent) -> tuple[str, str]:
    """(enrollment status, contact status)."""
    enrollment = api.get(f"/enrollments/{sent.enrollment_id}").get_json()["data"]
    contact = api.get(f"/contacts/{sent.contact_id}").get_json()["data"]
    return enrollment["status"], contact["status"]


def totals(api, instance_id: str) -> dict:
    return api.get(f"/instances/{instance_id}/performance").get_json()["data"]["totals"]
