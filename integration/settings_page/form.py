"""The settings form as data: what it shows, what a submission becomes, and what is stored.

Layering (integration.textback.settings): built-in defaults < the agency's defaults < the sub-account's
own document. A sub-account's save stores only the fields that differ from what it inherits, so a field
it never changed keeps following the agency's defaults; the agency's save stores only what differs from
the built-in defaults. Fields outside this form (the CRM options, anything set by other means) are kept.

A submission is parsed field by field (every bad field gets its message, the typed text is shown back,
nothing is stored), then the whole merged document is validated by the settings schema as the last word.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from marshmallow import ValidationError

from integration.settings_page.fields import FIELDS, FieldError, SettingField, field_by_path, get_path
from integration.textback.settings import DEFAULT_SETTINGS, TextBackSettingsSchema, merge_documents

__all__ = ["SettingsForm", "apply_submission", "fields_for", "form_for", "without_fields"]


@dataclass
class SettingsForm:
    """What the template needs for one form."""

    scope: str  # "location" or "agency"
    values: dict[str, Any]
    enabled: bool = True
    errors: dict[str, str] = field(default_factory=dict)
    # Fields the sub-account set itself (shown as "your own"; the others follow the agency).
    own: frozenset[str] = frozenset()
    saved: bool = False

    @property
    def fields(self) -> tuple[SettingField, ...]:
        return fields_for(self.scope)

    def groups(self) -> list[tuple[str, list[SettingField]]]:
        grouped: dict[str, list[SettingField]] = {}
        for item in self.fields:
            grouped.setdefault(item.group, []).append(item)
        return list(grouped.items())

    def field(self, name: str) -> SettingField:
        return next(f for f in self.fields if f.name == name)


def fields_for(scope: str) -> tuple[SettingField, ...]:
    return tuple(f for f in FIELDS if scope == "agency" or not f.agency_only)


def _shown(document: Mapping, scope: str) -> dict[str, Any]:
    return {f.name: f.show(get_path(document, f.path)) for f in fields_for(scope)}


def form_for(*, scope: str, inherited: Mapping, own: Mapping, enabled: bool = True, saved: bool = False
             ) -> SettingsForm:
    """The form showing the effective values (inherited < own)."""
    effective = merge_documents(inherited, own)
    own_fields = frozenset(f.name for f in fields_for(scope) if get_path(own, f.path) is not None)
    return SettingsForm(scope=scope, values=_shown(effective, scope), enabled=enabled, own=own_fields, saved=saved)


def _set_path(document: dict, path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        document = document.setdefault(key, {})
    document[path[-1]] = value


def _drop_path(document: dict, path: tuple[str, ...]) -> None:
    """Remove a leaf and any section it leaves empty."""
    parents = [document]
    for key in path[:-1]:
        child = parents[-1].get(key)
        if not isinstance(child, dict):
            return
        parents.append(child)
    parents[-1].pop(path[-1], None)
    for depth in range(len(path) - 1, 0, -1):
        if parents[depth] == {}:
            parents[depth - 1].pop(path[depth - 1], None)


def without_fields(document: Mapping, scope: str) -> dict:
    """`document` with this form's fields removed (an agency's push: the sub-account inherits them again)."""
    result = copy.deepcopy(dict(document or {}))
    for item in fields_for(scope):
        _drop_path(result, item.path)
    return result


def _all(form: Mapping, name: str) -> list[str]:
    if hasattr(form, "getlist"):
        return list(form.getlist(name))
    value = form.get(name)
    return list(value) if isinstance(value, list | tuple) else ([] if value is None else [value])


def _submitted_text(form: Mapping, item: SettingField) -> str | list[str]:
    if item.widget == "checks":
        return _all(form, item.name)
    if item.widget == "checkbox":
        # A hidden "off" precedes the checkbox, so an unticked box still says so; the last value wins.
        return (_all(form, item.name) or ["off"])[-1]
    return form.get(item.name, "") or ""


def submitted_enabled(form: Mapping) -> bool:
    return (_all(form, "enabled") or ["off"])[-1] in ("on", "true", "1")


def apply_submission(*, scope: str, form: Mapping, inherited: Mapping, own: Mapping
                     ) -> tuple[dict | None, SettingsForm]:
    """(the new own document to store, or None when nothing may be stored; the form to show back)."""
    errors: dict[str, str] = {}
    parsed: dict[str, Any] = {}
    for item in fields_for(scope):
        try:
            parsed[item.name] = item.parse(_submitted_text(form, item))
        except FieldError as exc:
            errors[item.name] = str(exc)
    typed = {item.name: _submitted_text(form, item) for item in fields_for(scope)}
    enabled = submitted_enabled(form)
    if errors:
        return None, SettingsForm(scope=scope, values=typed, enabled=enabled, errors=errors,
                                  own=frozenset(n for n in typed if get_path(own, _path(scope, n)) is not None))

    new_own = copy.deepcopy(dict(own or {}))
    for item in fields_for(scope):
        value = parsed[item.name]
        if get_path(inherited, item.path) == value:
            _drop_path(new_own, item.path)  # the same as inherited: keep following it
        else:
            _set_path(new_own, item.path, value)
    problems = _schema_problems(merge_documents(inherited, new_own), scope)
    if problems:
        return None, SettingsForm(scope=scope, values=typed, enabled=enabled, errors=problems)
    return new_own, form_for(scope=scope, inherited=inherited, own=new_own, enabled=enabled, saved=True)


def _path(scope: str, name: str) -> tuple[str, ...]:
    return next(f.path for f in fields_for(scope) if f.name == name)


def _schema_problems(document: Mapping, scope: str) -> dict[str, str]:
    """The settings schema's verdict on the merged document, each message put on its field."""
    try:
        TextBackSettingsSchema().load(merge_documents(DEFAULT_SETTINGS, document))
    except ValidationError as exc:
        problems: dict[str, str] = {}
        for path, message in _leaves(exc.messages, ()):
            item = field_by_path(path)
            name = item.name if item is not None and item in fields_for(scope) else "_form"
            problems.setdefault(name, message)
        return problems
    return {}


def _leaves(messages: Any, path: tuple[str, ...]):
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            yield from _leaves(value, (*path, str(key)) if not isinstance(key, int) else path)
    elif isinstance(messages, list | tuple):
        for value in messages:
            yield from _leaves(value, path)
    else:
        yield path, str(messages)
