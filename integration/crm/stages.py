"""Moving the lead's opportunity to the "replied" or "booked" stage: forward only, once it exists.

Webhooks and retries can finish in any order, so a move is judged when it runs, not when it was
planned: a reply's move does nothing once the lead is booked, no move happens on a closed (won or
lost) opportunity, and an opportunity a person already moved further along is left where it is.
"""

from __future__ import annotations

from sqlalchemy import update

from integration.crm.directory import pick_stage, stage_position
from integration.crm.execution import CrmContext, Done, Skipped, Waiting
from integration.crm.models import CrmAction, CrmLead

__all__ = ["STAGE", "move_stage", "stage_key"]

STAGE = "stage"
# Until the opportunity exists; its executor wakes this action as soon as it does.
_WAIT_FOR_OPPORTUNITY_SECONDS = 30


def stage_key(lead_id: int, step: str) -> str:
    return f"lead:{lead_id}:stage:{step}"


def move_stage(ctx: CrmContext, action: CrmAction) -> Done:
    """Move the opportunity to the stage configured for params["to"] ("replied" or "booked")."""
    step = str(action.params.get("to"))
    lead = ctx.lead(action.lead_id)
    if lead.outcome:
        raise Skipped(f"the opportunity is already {lead.outcome}")
    if step == "replied" and lead.booked_at is not None:
        raise Skipped("the lead is already booked")
    if lead.opportunity_id is None:
        opening = ctx.action_of(lead.id, "opportunity")
        if opening is not None and opening.status in CrmAction.FINAL:
            raise Skipped(f"there is no opportunity to move ({opening.outcome})")
        # Woken as soon as it opens; until then, look again when its own next attempt is due.
        delay = _WAIT_FOR_OPPORTUNITY_SECONDS
        if opening is not None and opening.next_attempt_at is not None:
            delay = max(delay, (opening.next_attempt_at - ctx.clock()).total_seconds() + 5)
        raise Waiting("the opportunity is not open yet", delay_seconds=delay)

    settings, pipelines = ctx.settings(lead.location_id).crm, ctx.pipelines(lead.location_id)
    pipeline_id = lead.pipeline_id or ""
    target = pick_stage(settings, pipelines, pipeline_id=pipeline_id, step=step)
    if target.id is None:
        raise Skipped(f"not moved: {target.problem}")
    here = stage_position(pipelines, pipeline_id=pipeline_id, stage_id=lead.stage_id)
    there = stage_position(pipelines, pipeline_id=pipeline_id, stage_id=target.id)
    if lead.stage_id == target.id:
        raise Skipped(f"already in {target.name}")
    if here is not None and there is not None and here > there:
        raise Skipped(f"left where it is: already past {target.name}")
    ctx.client.update_opportunity(lead.location_id, lead.opportunity_id, pipeline_stage_id=target.id)
    now = ctx.clock()
    with ctx.database.transaction() as session:
        session.execute(update(CrmLead).where(CrmLead.id == lead.id)
                        .values(stage_id=target.id, stage_seen_at=now, updated_at=now))
    return Done(f"moved the opportunity to {target.name}", lead.opportunity_id)
