"""The launch check: what stops a launch, what asks for a confirmation, counted in SQL."""

import pytest
import sqlalchemy as sa

from tests import builders
from webapp.errors import Conflict, Unprocessable
from webapp.extensions import db
from webapp.models import CampaignInstance, Mailbox
from webapp.models.enums import ContactStatus, EnrollmentStatus, InstanceStatus, MailboxState
from webapp.services import lifecycle
from webapp.services.enrollments import list_enrollments
from webapp.services.instances import change_instance_status
from webapp.services.readiness import check_readiness, paused_for_missing_data

BODY = (
    "Hi {{ first_name }}, how is {{ custom.industry }} at {{ company | default('your team') }}?"
    "{% if title %} As {{ title }}...{% endif %}"
)


def draft(*, subject="Hello {{ first_name }}", body=BODY, settings=None, template_settings=None, workspace=None):
    instance = builders.campaign(
        steps=0,
        status=InstanceStatus.DRAFT,
        settings=settings,
        template_settings=template_settings,
        workspace=workspace,
    )
    builders.StepFactory(template_id=instance.template_id, position=1, subject=subject, body=body)
    return instance


def enroll(instance, n=1, **contact_fields):
    fields = {"custom_fields": {"industry": "Fintech"}, **contact_fields}
    return [
        builders.EnrollmentFactory(
            instance=instance, contact=builders.ContactFactory(workspace_id=instance.workspace_id, **fields)
        )
        for _ in range(n)
    ]


def codes(problems) -> list[str]:
    return [problem.code for problem in problems]


def by_code(problems, code):
    (found,) = [problem for problem in problems if problem.code == code]
    return found


def test_a_campaign_with_steps_a_sender_and_complete_contacts_is_ready(db):
    instance = draft()
    enroll(instance, 3)

    report = check_readiness(builders.workspace_of(instance), instance.id)

    assert report.ready and report.blocking == [] and report.warnings == []


def test_it_counts_contacts_without_a_value_for_a_field_used_without_default(db):
    instance = draft()
    enroll(instance, 2)
    enroll(instance, 2, first_name=None)
    enroll(instance, 1, first_name="   ")
    enroll(instance, 1, custom_fields={"industry": ""})
    enroll(instance, 1, custom_fields={"industry": {"nested": "no"}})
    enroll(instance, 1, custom_fields={"industry": 42}, company=None, title=None)  # a number is a value
    enroll(instance, 1, first_name=None, custom_fields={})

    report = check_readiness(builders.workspace_of(instance), instance.id)

    assert report.ready and codes(report.warnings) == ["missing_variables"]
    problem = report.warnings[0]
    assert problem.count == 6
    assert problem.details["variables"] == [
        {"name": "first_name", "count": 4, "steps": [1]},
        {"name": "custom.industry", "count": 3, "steps": [1]},
    ]
    assert "first_name (4)" in problem.message and "custom.industry (3)" in problem.message


def test_the_enrollments_list_shows_the_contacts_a_missing_field_counts(db):
    instance = draft()
    complete = enroll(instance, 2)
    without_name = enroll(instance, 2, first_name=None)
    without_industry = enroll(instance, 1, custom_fields={"industry": " "})
    workspace = builders.workspace_of(instance)

    names, names_total = list_enrollments(workspace, instance.id, missing="first_name")
    industries, industries_total = list_enrollments(workspace, instance.id, missing="custom.industry")
    full, _ = list_enrollments(workspace, instance.id, missing="full_name")

    assert names_total == 2 and {e.id for e in names} == {e.id for e in without_name}
    assert industries_total == 1 and {e.id for e in industries} == {e.id for e in without_industry}
    assert {e.id for e in full} == {e.id for e in without_name}  # no first name nor last name
    assert not {e.id for e in complete} & {e.id for e in names + industries + full}


def test_suppressed_contacts_and_contacts_live_elsewhere_are_warnings_with_counts(db):
    instance = draft()
    workspace = builders.workspace_of(instance)
    enroll(instance, 1)
    enroll(instance, 2, status=ContactStatus.UNSUBSCRIBED)
    shared = enroll(instance, 2)
    other = builders.campaign(workspace=workspace, status=InstanceStatus.ACTIVE)
    other.name = "Q3 founders"
    for enrollment in shared:
        builders.EnrollmentFactory(instance=other, contact=builders.contact_of(enrollment))
    finished = builders.campaign(workspace=workspace, status=InstanceStatus.COMPLETED)
    builders.EnrollmentFactory(
        instance=finished, contact=builders.ContactFactory(workspace_id=workspace.id), status=EnrollmentStatus.COMPLETED
    )

    report = check_readiness(workspace, instance.id)

    assert report.ready and codes(report.warnings) == ["suppressed_contacts", "in_other_campaigns"]
    suppressed, elsewhere = report.warnings
    assert suppressed.count == 2 and suppressed.details == {"by_status": {"unsubscribed": 2}}
    assert elsewhere.count == 2 and elsewhere.details == {"campaigns": ["Q3 founders"]}
    assert "“Q3 founders”" in elsewhere.message


def test_no_active_step_blocks(db):
    instance = builders.campaign(steps=0, status=InstanceStatus.DRAFT)

    report = check_readiness(builders.workspace_of(instance), instance.id)

    assert not report.ready and codes(report.blocking) == ["no_steps"]


def test_a_window_that_never_opens_blocks(db):
    # Saved before the settings were validated: start and end the same.
    instance = draft(settings={"send_window": {"days": [1, 2], "start": "09:00", "end": "09:00"}})

    report = check_readiness(builders.workspace_of(instance), instance.id)

    problem = by_code(report.blocking, "window_never_opens")
    assert "start and end must differ" in problem.message


def test_a_campaign_whose_mailboxes_are_all_paused_has_no_sender(db):
    instance = draft()
    paused = mailbox(instance, "Ada", MailboxState.PAUSED)
    instance.settings = {"mailbox_ids": [str(paused.id)]}
    db.session.commit()

    report = check_readiness(builders.workspace_of(instance), instance.id)

    problem = by_code(report.blocking, "no_sender")
    assert problem.details == {"mailboxes": [{"id": str(paused.id), "name": "Ada", "state": "paused"}]}


def test_a_campaign_with_one_of_two_mailboxes_failing_warns(db):
    instance = draft()
    ada, bob = mailbox(instance, "Ada", MailboxState.ACTIVE), mailbox(instance, "Bob", MailboxState.FAILING)
    instance.settings = {"mailbox_ids": [str(ada.id), str(bob.id)]}
    db.session.commit()

    report = check_readiness(builders.workspace_of(instance), instance.id)

    assert report.ready
    problem = by_code(report.warnings, "mailboxes_unavailable")
    assert problem.count == 1 and "Bob" in problem.message


def test_without_mailboxes_the_default_sender_must_have_an_address(app, db):
    instance = draft()
    app.config["MAIL_FROM"] = ""

    report = check_readiness(builders.workspace_of(instance), instance.id)

    assert codes(report.blocking) == ["no_sender"]
    assert "MAIL_FROM" in report.blocking[0].message


def test_an_unsubscribe_link_some_contacts_would_not_get_blocks(db):
    instance = draft(body="Hi {{ first_name }}.{% if company %} [Unsubscribe]({{ unsubscribe_url }}){% endif %}")
    enroll(instance, 2)
    enroll(instance, 3, company=None)

    report = check_readiness(builders.workspace_of(instance), instance.id)

    problem = by_code(report.blocking, "unsubscribe_missing")
    assert problem.count == 3 and problem.details == {"steps": [1]}


def test_the_standard_footer_or_a_link_everyone_gets_is_enough(db):
    first = draft(body="Hi {{ first_name }}.")  # the footer is added
    second = draft(body="Hi.{% if company %} {{ company }}.{% endif %} [Stop]({{ unsubscribe_url }})")
    for instance in (first, second):
        enroll(instance, 1, company=None)

        assert check_readiness(builders.workspace_of(instance), instance.id).blocking == []


def test_a_first_email_without_subject_blocks(db):
    instance = draft(subject="")

    report = check_readiness(builders.workspace_of(instance), instance.id)

    assert codes(report.blocking) == ["no_subject"]


def test_the_check_costs_the_same_queries_for_3_or_90_contacts(app, db):
    small, big = draft(), draft()
    enroll(small, 3)
    enroll(big, 30)
    enroll(big, 30, first_name=None)
    enroll(big, 30, status=ContactStatus.BOUNCED, custom_fields={})
    statements = []

    def count(*args):
        statements.append(args[2])

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        check_readiness(builders.workspace_of(small), small.id)
        few = len(statements)
        check_readiness(builders.workspace_of(big), big.id)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)

    assert len(statements) - few == few <= 10


def test_a_launch_refuses_blocking_problems_even_confirmed(db):
    instance = draft(subject="")
    workspace = builders.workspace_of(instance)

    with pytest.raises(Conflict) as refused:
        change_instance_status(workspace, instance.id, "active", confirm=True)

    assert "cannot launch" in refused.value.message and "no subject" in refused.value.message
    assert [d["code"] for d in refused.value.details] == ["no_subject"]
    assert refused.value.details[0]["severity"] == "blocking"
    assert builders.fresh(CampaignInstance, instance.id).status == "draft"


def test_a_launch_with_warnings_needs_a_confirmation(db):
    instance = draft()
    workspace = builders.workspace_of(instance)
    (waiting,) = enroll(instance, 1, first_name=None)

    with pytest.raises(Unprocessable) as refused:
        change_instance_status(workspace, instance.id, "active")
    assert [(d["code"], d["severity"], d["count"]) for d in refused.value.details] == [
        ("missing_variables", "warning", 1)
    ]
    assert builders.fresh(CampaignInstance, instance.id).status == "draft"

    change_instance_status(workspace, instance.id, "active", confirm=True)

    assert builders.fresh(CampaignInstance, instance.id).status == "active"
    assert builders.fresh(type(waiting), waiting.id).status == "active"


def test_paused_for_missing_data_is_counted_by_reason(db):
    instance = draft()
    instance.status = InstanceStatus.ACTIVE
    first, second, third, manual = enroll(instance, 4)
    for enrollment, detail in ((first, "first_name"), (second, "first_name"), (third, "custom.industry")):
        lifecycle.change(
            "pause",
            actor=lifecycle.Actor.WORKER,
            ids=[enrollment.id],
            reason=lifecycle.reason_text(lifecycle.Reason.MISSING_DATA, f"no value for {detail}"),
        )
    lifecycle.change("pause", actor=lifecycle.Actor.PERSON, ids=[manual.id], reason=lifecycle.Reason.PAUSED)
    db.session.commit()

    found = paused_for_missing_data(instance)

    assert found.count == 3
    assert found.reasons == [
        ("paused for missing data: no value for first_name", 2),
        ("paused for missing data: no value for custom.industry", 1),
    ]


def mailbox(instance, name: str, state: str) -> Mailbox:
    row = Mailbox(
        workspace_id=instance.workspace_id,
        name=name,
        from_name=f"{name} at Acme",
        from_email=f"{name.lower()}@acme.test",
        smtp_host="127.0.0.1",
        smtp_port=25,
        smtp_security="none",
        imap_folder="INBOX",
        imap_last_uid=0,
        state=state,
    )
    db.session.add(row)
    db.session.commit()
    return row
