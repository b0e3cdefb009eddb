"""Submitting an admin change form as a person would: what the page shows, with edits."""

from datetime import datetime
from typing import Any

from django.test import Client


def admin_form_data(client: Client, url: str, **edits: Any) -> dict[str, Any]:
    """The change page's form and inline forms as the browser would post them, with `edits`."""
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    data: dict[str, Any] = {}
    for form in forms:
        for name in form.fields:
            _put(data, form.add_prefix(name), form[name].value())
    for name, value in edits.items():
        _put(data, name, value)
    return data


def _put(data: dict[str, Any], key: str, value: Any) -> None:
    if value is None or value is False:
        data.pop(key, None)
    elif value is True:
        data[key] = "on"
    elif isinstance(value, datetime):  # the admin's split date and time widget
        data[f"{key}_0"], data[f"{key}_1"] = value.date().isoformat(), value.strftime("%H:%M:%S")
    elif isinstance(value, list | tuple):
        data[key] = [str(item) for item in value]
    else:
        data[key] = value
