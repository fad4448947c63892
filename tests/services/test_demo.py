import sqlalchemy as sa

from webapp.models import CampaignEvent, CampaignInstance, Workspace
from webapp.services.analytics import instance_performance
from webapp.services.demo import fill_demo_workspace


def test_the_demo_fills_a_workspace_with_campaigns_in_every_status_and_events(db):
    summary = fill_demo_workspace("Demo", contacts=120, seed=1)
    assert "120 enrollments" in summary
    workspace = db.session.scalar(sa.select(Workspace).where(Workspace.name == "Demo"))
    instances = list(
        db.session.scalars(sa.select(CampaignInstance).where(CampaignInstance.workspace_id == workspace.id))
    )
    assert {i.status for i in instances} == {"draft", "active", "paused", "completed"}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(CampaignEvent)) > 100
    active = next(i for i in instances if i.status == "active")
    performance = instance_performance(workspace, active.id)
    assert performance.totals.sent > 0 and len(performance.daily) > 5
