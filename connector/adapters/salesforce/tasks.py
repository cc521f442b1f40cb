"""Tasks in a Salesforce org: coaching tasks for managers, training tasks for reps.

A ``Task`` is assigned through ``OwnerId``; ``ActivityDate`` is its due date,
``Description`` its comments, and ``IsClosed`` follows its status (Completed,
or any status an admin marked closed). The Description cannot be filtered in
SOQL, so a task whose create may have gone through unrecorded is found again by
its owner and subject.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from connector.adapters.salesforce.api import SalesforceApi, json_body
from connector.core.models import CrmTask, TaskDraft

_READ_CHUNK = 200  # ids per query: well inside SOQL's 100,000 characters


def soql_text(text: str) -> str:
    """A SOQL string literal's inside: backslashes and quotes escaped."""
    return text.replace("\\", "\\\\").replace("'", "\\'")


class SalesforceTasks:
    # SOQL reads what was just written: a task created is found at once.
    settle_s = 0.0

    def __init__(self, api: SalesforceApi) -> None:
        self.api = api

    def create(self, task: TaskDraft) -> str:
        body = {
            "OwnerId": task.owner_id,
            "Subject": task.subject,
            "Description": task.body,
            "ActivityDate": task.due.isoformat(),
            "Status": "Not Started",
        }
        answer = self.api.rest("sobjects/Task/", "POST", json_body(body))
        return str(answer["id"])

    def find(self, task: TaskDraft) -> str | None:
        soql = (
            f"SELECT Id FROM Task WHERE OwnerId = '{soql_text(task.owner_id)}' "
            f"AND Subject = '{soql_text(task.subject)}' ORDER BY CreatedDate LIMIT 1"
        )
        rows = list(self.api.query(soql))
        return str(rows[0]["Id"]) if rows else None

    def read(self, task_ids: Collection[str]) -> list[CrmTask]:
        ids = sorted(task_ids)
        found: list[CrmTask] = []
        for start in range(0, len(ids), _READ_CHUNK):
            quoted = ", ".join(f"'{soql_text(i)}'" for i in ids[start : start + _READ_CHUNK])
            soql = (
                "SELECT Id, Status, IsClosed, Description, LastModifiedDate FROM Task "
                f"WHERE Id IN ({quoted})"
            )
            for row in self.api.query(soql):
                stamp = row.get("LastModifiedDate")
                found.append(
                    CrmTask(
                        id=str(row["Id"]),
                        done=bool(row.get("IsClosed")),
                        status=str(row.get("Status") or ""),
                        body=str(row.get("Description") or ""),
                        modified_at=_stamp(stamp) if stamp else None,
                    )
                )
        return found

    def update_body(self, task_id: str, body: str) -> None:
        self.api.rest(f"sobjects/Task/{task_id}", "PATCH", json_body({"Description": body}))


def _stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")
