"""The Lead Leak report: what missed calls cost and what the text back recovered, for the signed-in sub-account.

- funnel     missed -> eligible -> texted -> replied -> booked -> won, per location or per week (also used by
             the agency page: `funnel_for_locations`)
- timing     response times: call -> text, call -> first human reply
- lead_leak  the period, the leak formula and the recovered value
- rollup     the weeks from the per-day rollup (models: report_daily_funnels, kept right by triggers, 0015)
- chart      the weekly trend as server-side SVG
- page       GET /app/report and GET /app/report.csv
"""

from integration.report.funnel import Funnel, funnel_for_locations

__all__ = ["Funnel", "funnel_for_locations"]
