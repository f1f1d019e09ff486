"""Activity, "why didn't it text?": every call of the signed-in sub-account with what became of it, in plain words.

- filters   the query string (outcome, dates, search, page size, keyset cursor), checked with clear messages
- wording   one row as the contractor reads it (badge, sentence, reply, lead stage)
- query     one keyset page, merged from missed calls and ignored (answered) calls
- export    the CSV, streamed in keyset batches
- page      the blueprint: GET /app/activity and GET /app/activity.csv
"""
