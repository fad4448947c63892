"""`flask demo`: a workspace full of realistic data, for trying Drumbeat and for screenshots.

Everything goes through the same services as the API, so the demo data obeys every rule
(suppression, state machines, deduplication) and the rollups are right.
"""

import random
import uuid
from datetime import timedelta

import sqlalchemy as sa

from webapp.extensions import db
from webapp.models import CampaignEnrollment, SequenceStep, Workspace, utcnow
from webapp.schemas.events import EventIn
from webapp.schemas.instances import InstanceIn
from webapp.schemas.templates import EmailStepIn, LinkedInStepIn, TemplateIn
from webapp.services.enrollments import enroll_contacts
from webapp.services.events import ingest_events
from webapp.services.instances import change_instance_status, create_instance
from webapp.services.sequences import add_email_step, add_linkedin_step
from webapp.services.templates import create_template

FIRST = [
    "Ada",
    "Grace",
    "Alan",
    "Linus",
    "Margaret",
    "Ken",
    "Barbara",
    "Dennis",
    "Frances",
    "Edsger",
    "Radia",
    "Tim",
    "Hedy",
    "John",
    "Katherine",
    "Guido",
    "Sophie",
    "Bjarne",
    "Anita",
    "Donald",
]
LAST = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Torvalds",
    "Hamilton",
    "Thompson",
    "Liskov",
    "Ritchie",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Berners-Lee",
    "Lamarr",
    "McCarthy",
    "Johnson",
    "van Rossum",
    "Wilson",
    "Knuth",
]
COMPANIES = [
    "Initech",
    "Globex",
    "Umbrella",
    "Hooli",
    "Stark Industries",
    "Wayne Enterprises",
    "Acme",
    "Soylent",
    "Tyrell",
    "Wonka",
    "Cyberdyne",
    "Massive Dynamic",
]
TITLES = ["CTO", "VP Engineering", "Head of Sales", "CFO", "Founder", "Director of Operations", "COO"]
ZONES = ["Europe/Paris", "Europe/London", "America/New_York", "America/Los_Angeles", "Europe/Berlin", "Asia/Tokyo"]

SEQUENCES = [
    (
        "Founder outreach",
        "Short, personal sequence for founders.",
        [
            (
                "email",
                "Quick question, {{ first_name | default('there') }}",
                "Hi {{ first_name | default('there') }},\n\nI noticed {{ company }} is hiring engineers. "
                "Teams like yours use Drumbeat to run outreach without the busywork.\n\nWorth a 15-minute call?",
                0,
            ),
            ("linkedin", "connection_request", "Hi {{ first_name }}, great to connect!", 1),
            (
                "email",
                "Re: Quick question",
                "Hi {{ first_name | default('there') }},\n\nJust bumping this up. "
                "Happy to share how others at your stage do it.",
                3,
            ),
            (
                "email",
                "Should I close your file?",
                "Hi {{ first_name | default('there') }},\n\nI'll stop here. If timing is better later, just reply.",
                5,
            ),
        ],
    ),
    (
        "CFO value sequence",
        "ROI-led sequence for finance leaders.",
        [
            (
                "email",
                "Cutting outreach costs at {{ company }}",
                "Hello {{ first_name | default('there') }},\n\n"
                "Finance teams save **30%** on sales tooling with Drumbeat.",
                0,
            ),
            (
                "email",
                "The numbers, in one page",
                "Hi {{ first_name | default('there') }},\n\nHere is the one-pager.",
                4,
            ),
        ],
    ),
    (
        "Event follow-up",
        "After the trade show.",
        [
            (
                "email",
                "Great meeting you, {{ first_name | default('there') }}",
                "Thanks for stopping by our booth. Here are the slides.",
                0,
            ),
            ("linkedin", "message", "Thanks again for the chat at the show!", 2),
        ],
    ),
]


def _contact(rng: random.Random, n: int) -> dict:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    company = rng.choice(COMPANIES)
    slug = company.lower().replace(" ", "")
    return {
        "email": f"{first.lower()}.{last.lower().replace(' ', '')}{n}@{slug}.example",
        "first_name": first,
        "last_name": last,
        "company": company,
        "title": rng.choice(TITLES),
        "timezone": rng.choice(ZONES),
        "custom_fields": {"source": rng.choice(["webinar", "referral", "list"])},
    }


def fill_demo_workspace(name: str, *, contacts: int = 3000, seed: int = 7) -> str:
    """Create templates, campaigns in every status, contacts, enrollments and 30 days of events."""
    rng = random.Random(seed)
    workspace = db.session.scalar(sa.select(Workspace).where(Workspace.name == name).limit(1))
    if workspace is None:
        workspace = Workspace(name=name, settings={})
        db.session.add(workspace)
        db.session.commit()
    templates = []
    for title, description, steps in SEQUENCES:
        template = create_template(
            workspace,
            TemplateIn(
                name=title,
                description=description,
                settings={"send_window": {"days": [1, 2, 3, 4, 5], "start": "09:00", "end": "17:00"}, "daily_cap": 200},
            ),
        )
        for channel, first, second, delay in steps:
            if channel == "email":
                add_email_step(workspace, template.id, EmailStepIn(subject=first, body=second, delay_days=delay))
            else:
                add_linkedin_step(
                    workspace, template.id, LinkedInStepIn(action_type=first, message=second, delay_days=delay)
                )
        templates.append(template)
    plan = [
        ("Q4 founders — EU", templates[0], "active", 0.35),
        ("CFO push", templates[1], "active", 0.25),
        ("Web Summit follow-up", templates[2], "paused", 0.15),
        ("Q3 founders", templates[0], "completed", 0.15),
        ("Q1 planning (draft)", templates[1], "draft", 0.10),
    ]
    people = [_contact(rng, n) for n in range(contacts)]
    rng.shuffle(people)
    start, event_count = 0, 0
    for campaign_name, template, status, share in plan:
        instance = create_instance(workspace, InstanceIn(template_id=template.id, name=campaign_name))
        chunk = people[start : start + int(contacts * share)]
        start += len(chunk)
        if status != "draft":
            change_instance_status(workspace, instance.id, "active")
        for offset in range(0, len(chunk), 5000):
            enroll_contacts(workspace, instance.id, [{"contact": c} for c in chunk[offset : offset + 5000]])
        if status != "draft":
            event_count += _events(workspace, instance, template, rng)
        if status in ("paused", "completed"):
            change_instance_status(workspace, instance.id, "paused" if status == "paused" else "completed")
    return (
        f"Workspace '{name}': {len(templates)} templates, {len(plan)} campaigns, {start} enrollments, "
        f"{event_count} events over the last 30 days."
    )


def _events(workspace: Workspace, instance, template, rng: random.Random) -> int:
    """Sends and engagement for each enrollment, spread over the last 30 days."""
    steps = list(
        db.session.scalars(
            sa.select(SequenceStep)
            .where(SequenceStep.template_id == template.id, SequenceStep.channel == "email")
            .order_by(SequenceStep.position)
        )
    )
    enrollment_ids = list(
        db.session.scalars(sa.select(CampaignEnrollment.id).where(CampaignEnrollment.instance_id == instance.id))
    )
    now = utcnow()
    batch: list[EventIn] = []
    total = 0
    for enrollment_id in enrollment_ids:
        when = now - timedelta(days=rng.uniform(1, 30))
        for step in steps:
            if when > now:
                break
            outcome = rng.random()
            made = [("sent", when, {})]
            if outcome < 0.03:
                made.append(("bounced", when + timedelta(minutes=2), {"bounce_type": "hard"}))
            else:
                made.append(("delivered", when + timedelta(seconds=30), {}))
                if outcome < 0.55:
                    made.append(("opened", when + timedelta(hours=rng.uniform(0.2, 20)), {}))
                if outcome < 0.15:
                    made.append(("clicked", when + timedelta(hours=rng.uniform(0.5, 22)), {}))
                if outcome < 0.08:
                    made.append(("replied", when + timedelta(hours=rng.uniform(1, 30)), {}))
                elif outcome > 0.995:
                    made.append(("unsubscribed", when + timedelta(hours=2), {}))
            batch.extend(
                EventIn(
                    provider_event_id=str(uuid.uuid4()),
                    type=kind,
                    enrollment_id=enrollment_id,
                    step_id=step.id,
                    occurred_at=min(at, now),
                    metadata=metadata or None,
                )
                for kind, at, metadata in made
            )
            if made[-1][0] in ("bounced", "replied", "unsubscribed"):
                break
            when += timedelta(days=step.delay_days or 2, hours=rng.uniform(0, 6))
        if len(batch) >= 1000:
            total += ingest_events(workspace, batch).stored
            batch = []
    if batch:
        total += ingest_events(workspace, batch).stored
    return total
