"""Replies into the CRM: what HighLevel should show after a missed call was texted back.

One concept per module:

- settings     the "crm" section of the settings document (pipeline, stages, user, tags, windows)
- models       CrmLead, CrmAction (the outbox of HighLevel changes), CrmContact, CrmAppointment rows
- actions      planning, claiming and finishing CrmActions, as conditional writes
- pipelines    the location's pipelines and stages, cached apart from the send's profile
- directory    which pipeline, stages and user the settings pick from what HighLevel lists
- execution    the contract between the runner and the executors: CrmContext, Done, Skipped, Failed, Waiting
- runner       runs one action: location check, executor, retries with backoff, failure with the reason
- followup     after our text: the lead, the tag, the note and the opportunity (an open one reused)
- stages       moving the opportunity forward (replied, booked), never backwards
- replies      a caller's text within the window: replied tag, stage, the team's task, on-call alert
- takeover     a person texting in the conversation: automation stays quiet there
- opt_outs     STOP and START: SMS DND at HighLevel, and our mirror of ContactDndUpdate
- outcomes     AppointmentCreate (booked) and OpportunityStatus/StageUpdate (won, lost, stage)
- wording      how contacts are named and replies quoted in what we write to HighLevel
- page         the CRM options form on the app page

For later capabilities: `takeover.human_handling(session, location_id, contact_id, since=...)` says
whether a person is handling the conversation (the AI agent stays quiet then), and CrmLead rows
(stage, replied_at, booked_at, outcome, outcome_value) are what the missed-call report counts.

The worker side (jobs, the sweep, the webhook handlers) is in workers/crm.py and workers/handlers/crm.py.
"""
