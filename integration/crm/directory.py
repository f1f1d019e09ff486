"""Which pipeline, stages and user a location's CRM options pick, from what HighLevel lists.

The pipelines and their stages come from the follow-up's pipeline directory (integration.crm.pipelines),
the users and admins from the location's profile (integration.textback.profiles); both are cached in Redis.
An option left empty picks:

- pipeline: the one named "Missed Call", else the location's first pipeline;
- new-lead stage: the pipeline's first stage;
- replied / booked stage: the pipeline's stage of that name, else none (the opportunity stays put);
- user: the location's first admin, else its first user, else nobody.

A picked id that HighLevel no longer lists is reported as a problem, never silently replaced.
"""

from __future__ import annotations

from dataclasses import dataclass

from integration.crm.pipelines import PipelineDirectory
from integration.crm.settings import CrmSettings
from integration.textback.profiles import LocationProfile

__all__ = ["DEFAULT_PIPELINE_NAME", "Choice", "pick_pipeline", "pick_stage", "pick_user", "stage_position"]

DEFAULT_PIPELINE_NAME = "missed call"
# The settings key of each stage and the stage name that stands in until one is picked.
_STAGE_OPTIONS = {"new": ("new_stage_id", None), "replied": ("replied_stage_id", "replied"),
                  "booked": ("booked_stage_id", "booked")}


@dataclass(frozen=True)
class Choice:
    """An id and its name, or a problem a contractor can read (then `id` is None)."""

    id: str | None
    name: str = ""
    problem: str | None = None


def pick_pipeline(settings: CrmSettings, pipelines: PipelineDirectory) -> Choice:
    """The pipeline opportunities are opened in."""
    if settings.pipeline_id:
        if settings.pipeline_id in pipelines.names:
            return Choice(settings.pipeline_id, pipelines.names[settings.pipeline_id])
        return Choice(None, problem=f"the chosen pipeline {settings.pipeline_id} no longer exists in HighLevel")
    for pipeline_id, name in pipelines.names.items():
        if name.strip().lower() == DEFAULT_PIPELINE_NAME:
            return Choice(pipeline_id, name)
    if pipelines.names:
        pipeline_id, name = next(iter(pipelines.names.items()))
        return Choice(pipeline_id, name)
    return Choice(None, problem="the sub-account has no pipeline in HighLevel")


def pick_stage(settings: CrmSettings, pipelines: PipelineDirectory, *, pipeline_id: str, step: str) -> Choice:
    """The stage for `step` ("new", "replied" or "booked") in that pipeline; id None when there is none."""
    option, default_name = _STAGE_OPTIONS[step]
    stages = [(str(s[0]), str(s[1])) for s in pipelines.stages.get(pipeline_id, ())]
    chosen = getattr(settings, option)
    if chosen:
        for stage_id, name in stages:
            if stage_id == chosen:
                return Choice(stage_id, name)
        return Choice(None, problem=f"the chosen {step} stage {chosen} is not a stage of the pipeline")
    if default_name is None:
        return Choice(*stages[0]) if stages else Choice(None, problem="the pipeline has no stage")
    for stage_id, name in stages:
        if name.strip().lower() == default_name:
            return Choice(stage_id, name)
    return Choice(None, problem=f"no {step} stage is chosen and the pipeline has none named {default_name.title()!r}")


def stage_position(pipelines: PipelineDirectory, *, pipeline_id: str, stage_id: str | None) -> int | None:
    """Where a stage sits in its pipeline (0 first), or None when unknown."""
    for index, stage in enumerate(pipelines.stages.get(pipeline_id, ())):
        if str(stage[0]) == stage_id:
            return index
    return None


def pick_user(settings: CrmSettings, profile: LocationProfile) -> Choice:
    """Who the opportunity and the task are assigned to."""
    if settings.assigned_user_id:
        if settings.assigned_user_id in profile.user_names:
            return Choice(settings.assigned_user_id, profile.user_names[settings.assigned_user_id])
        return Choice(None, problem=f"the chosen user {settings.assigned_user_id} is not a user of the sub-account")
    for user_id in (*profile.admin_user_ids, *profile.user_names):
        if user_id in profile.user_names:
            return Choice(user_id, profile.user_names[user_id])
    return Choice(None, problem="the sub-account has no users")
