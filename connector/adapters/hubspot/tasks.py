"""Tasks in a HubSpot portal: coaching tasks for managers, training tasks for reps.

A task is assigned through ``hubspot_owner_id``; ``hs_timestamp`` (required) is
its due date, ``hs_task_body`` its notes and ``hs_task_status`` its status
(COMPLETED when done). Tasks need the ``crm.objects.contacts.write`` scope.
HubSpot keeps a task's notes as HTML: our text goes in with its lines as
``<br>`` and comes back as text, whatever markup an edit in HubSpot added.
HubSpot's search indexes a new task a moment after the create answers, so a
task whose create may have gone through unrecorded is looked for only once
that moment has passed (:attr:`settle_s`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection
from datetime import UTC, datetime, time
from typing import Any

from connector.adapters.hubspot.api import HubSpotApi
from connector.core.models import CrmTask, TaskDraft

_PATH = "/crm/v3/objects/tasks"
_READ_CHUNK = 100  # HubSpot's batch read limit
_PROPERTIES = ["hs_task_status", "hs_task_body", "hs_lastmodifieddate"]
_BREAK = re.compile(r"<br\s*/?>|</?p(?:\s[^>]*)?>|</div>|</li>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")


class HubSpotTasks:
    # How long a new task may stay out of search results.
    settle_s = 30.0

    def __init__(self, api: HubSpotApi) -> None:
        self.api = api

    def create(self, task: TaskDraft) -> str:
        due = datetime.combine(task.due, time(), UTC)
        body = {
            "properties": {
                "hubspot_owner_id": task.owner_id,
                "hs_task_subject": task.subject,
                "hs_task_body": as_html(task.body),
                "hs_task_status": "NOT_STARTED",
                "hs_task_type": "TODO",
                "hs_timestamp": due.isoformat().replace("+00:00", "Z"),
            }
        }
        _, answer = self.api.request("objects", _PATH, "POST", body=body)
        return str(answer["id"])

    def find(self, task: TaskDraft) -> str | None:
        body = {
            "filterGroups": [
                {
                    "filters": [
                        {"propertyName": "hubspot_owner_id", "operator": "EQ",
                         "value": task.owner_id},
                        {"propertyName": "hs_task_subject", "operator": "EQ",
                         "value": task.subject},
                    ]
                }
            ],
            "sorts": [{"propertyName": "hs_createdate", "direction": "ASCENDING"}],
            "properties": ["hs_task_subject"],
            "limit": 1,
        }  # fmt: skip
        _, answer = self.api.request("objects", f"{_PATH}/search", "POST", body=body, search=True)
        results: list[dict[str, Any]] = (answer or {}).get("results", [])
        return str(results[0]["id"]) if results else None

    def read(self, task_ids: Collection[str]) -> list[CrmTask]:
        """The tasks still in the portal (a deleted one is simply not among them)."""
        ids = sorted(task_ids)
        found: list[CrmTask] = []
        for start in range(0, len(ids), _READ_CHUNK):
            _, answer = self.api.request(
                "objects",
                f"{_PATH}/batch/read",
                "POST",
                body={"inputs": [{"id": i} for i in ids[start : start + _READ_CHUNK]],
                      "properties": _PROPERTIES},
            )  # fmt: skip
            for result in (answer or {}).get("results", []):
                props = result.get("properties") or {}
                status = str(props.get("hs_task_status") or "")
                stamp = props.get("hs_lastmodifieddate")
                found.append(
                    CrmTask(
                        id=str(result["id"]),
                        done=status == "COMPLETED",
                        status=status,
                        body=as_text(str(props.get("hs_task_body") or "")),
                        modified_at=datetime.fromisoformat(stamp.replace("Z", "+00:00"))
                        if stamp
                        else None,
                    )
                )
        return found

    def update_body(self, task_id: str, body: str) -> None:
        self.api.request(
            "objects",
            f"{_PATH}/{task_id}",
            "PATCH",
            body={"properties": {"hs_task_body": as_html(body)}},
        )


def as_html(text: str) -> str:
    """Text as HubSpot's notes hold it: escaped, each line break a ``<br>``."""
    return html.escape(text, quote=False).replace("\n", "<br>")


def as_text(markup: str) -> str:
    """HubSpot's notes as text: line and paragraph breaks as new lines, no tags."""
    broken = _BREAK.sub("\n", markup)
    return html.unescape(_TAG.sub("", broken)).strip("\n")
