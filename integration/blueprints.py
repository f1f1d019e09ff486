"""The web surfaces of the app, one blueprint each. Add a new surface here.

The webhook receiver is not among them: it is mounted in front of Flask (integration.webhooks).
"""

from __future__ import annotations

from flask import Blueprint

__all__ = ["all_blueprints"]


def all_blueprints() -> list[Blueprint]:
    from integration.activity.page import bp as activity_bp
    from integration.app_page import bp as app_page_bp
    from integration.crm.page import bp as crm_settings_bp
    from integration.report.page import bp as report_bp
    from integration.settings_page.agency import bp as agency_page_bp
    from integration.settings_page.agent import bp as agent_settings_bp
    from integration.settings_page.views import bp as settings_page_bp
    from oauth.views import bp as oauth_bp

    blueprints: list[Blueprint] = [app_page_bp, crm_settings_bp, settings_page_bp, agency_page_bp, oauth_bp,
                                   activity_bp, report_bp, agent_settings_bp]
    return blueprints
