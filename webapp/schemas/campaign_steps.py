"""A launched campaign's own steps: the same step bodies as a template's, plus what to do with
the contacts waiting on a step that goes away."""

from typing import Literal

from pydantic import Field, RootModel

from webapp.schemas.common import Input, Output
from webapp.schemas.templates import EmailStepIn, EmailStepUpdate, LinkedInStepIn, LinkedInStepUpdate, StepFields

Waiting = Literal["skip", "stop"]
WAITING = Field(
    default=None,
    description="Required when contacts wait on a step being removed or deactivated: skip (they go on to the next "
    "step at its due time) or stop (their sequence ends). Without it such a change is a 409 giving their number.",
)


class CampaignEmailStepIn(EmailStepIn):
    channel: Literal["email"]


class CampaignLinkedInStepIn(LinkedInStepIn):
    channel: Literal["linkedin"]


class CampaignStepIn(RootModel[CampaignEmailStepIn | CampaignLinkedInStepIn]):
    """A new step for the campaign: an email step or a LinkedIn step, said by `channel`."""


class _Waiting:
    def step_update(self) -> EmailStepUpdate | LinkedInStepUpdate:
        """The step's own changes, for the template step services (without `waiting`)."""
        fields = self.model_dump(exclude_unset=True, exclude={"waiting"})
        return self.__class__.__bases__[1].model_construct(_fields_set=set(fields), **fields)


class CampaignEmailStepUpdate(_Waiting, EmailStepUpdate):
    waiting: Waiting | None = WAITING


class CampaignLinkedInStepUpdate(_Waiting, LinkedInStepUpdate):
    waiting: Waiting | None = WAITING


class CampaignStepUpdate(RootModel[CampaignEmailStepUpdate | CampaignLinkedInStepUpdate]):
    """The fields of the step's own channel (an email step's or a LinkedIn step's). Documents the
    body that api/campaign_steps.py reads by the step's channel."""


class StepRemovalQuery(Input):
    waiting: Waiting | None = WAITING


class CampaignStepOut(StepFields):
    waiting: int = Field(default=0, description="Contacts whose next step this is.")
    not_past: int = Field(default=0, description="Contacts who have not done this step yet (the waiting included).")

    @classmethod
    def of(cls, step, impact) -> "CampaignStepOut":
        return cls.model_validate(step).model_copy(update={"waiting": impact.waiting, "not_past": impact.not_past})


class CampaignStepsOut(Output):
    follows_template: bool = Field(
        description="A draft campaign runs its template's steps until it is launched; then they are its own."
    )
    steps: list[CampaignStepOut]


class StepRemovalOut(Output):
    deleted: bool = Field(description="False when the step was deactivated instead: it was sent to someone already.")
    skipped: int
    stopped: int
