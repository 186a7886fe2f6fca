"""Durable state of the local host's orchestration engine in Azure Table + Blob storage (Azurite locally).

Local/test host only: production runs on the real Functions host and its Durable Task backend.

Layout (one table `<prefix>instances`, one partition per instance, so one episode commits atomically):

* `RowKey = "state"`: the instance row (status, input/output, timers, lease). Every write is ETag-conditional.
* `RowKey = "h<generation>-<episode>"`: the history events one orchestrator episode appended, as JSON.
  An episode is committed in one entity-group transaction together with the ETag-conditional update of the
  state row and the deletion of the inbox rows it consumed, so two writers can never interleave history.
* `RowKey = "q<time>-<seq>-<rand>"`: inbox messages (events raised, activity results, control requests),
  written by anybody with a plain insert and consumed by the engine that holds the instance's lease.

Strings over ~30k characters go to the blob container `<prefix>-payloads` and the row keeps a reference, since a
table property holds at most 64 KiB. A second table `<prefix>locks` holds one row per timer-triggered function
so that only one host fires each occurrence (ETag-conditional claim, as two schedulers would agree in Azure).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import uuid
from typing import Any, Iterable

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableServiceClient, TableTransactionError, UpdateMode
from azure.storage.blob import BlobServiceClient

INLINE_LIMIT = 30_000  # characters kept inline in one table property
CHUNKS_PER_ROW = 14  # history JSON split over d0..d13 before it spills to a blob
STATE_RK = "state"


class Conflict(Exception):
    """Somebody else changed the row (412 on the ETag, or 409 on create): reload and decide again."""


def _names(prefix: str) -> tuple[str, str, str]:
    clean = re.sub(r"[^A-Za-z0-9]", "", prefix or "devhost") or "devhost"
    if not clean[0].isalpha():
        clean = "d" + clean
    table = (clean + "instances")[:63]
    locks = (clean + "locks")[:63]
    container = (re.sub(r"[^a-z0-9-]", "", (prefix or "devhost").lower()).strip("-") or "devhost")[:50] + "-payloads"
    if len(container) < 3:
        container = "devhost-payloads"
    return table, locks, container


def history_rk(generation: int, episode: int) -> str:
    return f"h{generation:08d}-{episode:08d}"


_inbox_counter = itertools.count()


def inbox_rk() -> str:
    return f"q{time.time_ns():020d}-{next(_inbox_counter) % 1_000_000:06d}-{uuid.uuid4().hex[:8]}"


class Store:
    """Thin, thread-safe wrapper over the two tables and the payload container."""

    def __init__(self, connection_string: str, prefix: str = "devhost"):
        if not connection_string:
            raise ValueError("AzureWebJobsStorage is not set: the devhost engine needs a storage connection string")
        self.connection_string = connection_string
        self.prefix = prefix
        self.table_name, self.locks_name, self.container_name = _names(prefix)
        self._service = TableServiceClient.from_connection_string(connection_string)
        self._blobs = BlobServiceClient.from_connection_string(connection_string)
        self.table = self._service.create_table_if_not_exists(self.table_name)
        self.locks = self._service.create_table_if_not_exists(self.locks_name)
        self.container = self._blobs.get_container_client(self.container_name)
        try:
            self.container.create_container()
        except ResourceExistsError:
            pass
        self._lock = threading.Lock()

    @property
    def key(self) -> tuple[str, str]:
        """Identity of the storage this store points at (engines in one process sharing it notify each other)."""
        return (self.connection_string, self.table_name)

    # ---- large values -------------------------------------------------------------------------------------
    def pack(self, entity: dict, field: str, text: str | None, instance_id: str) -> None:
        entity.pop(field, None)
        entity.pop(field + "Blob", None)
        if text is None:
            return
        if len(text) <= INLINE_LIMIT:
            entity[field] = text
            return
        name = f"{instance_id}/{uuid.uuid4().hex}"
        self.container.upload_blob(name, text.encode("utf-8"), overwrite=True)
        entity[field + "Blob"] = name

    def unpack(self, entity: dict, field: str) -> str | None:
        if entity.get(field + "Blob"):
            return self.container.download_blob(entity[field + "Blob"]).readall().decode("utf-8")
        return entity.get(field)

    # ---- instance rows --------------------------------------------------------------------------------------
    def get_state(self, instance_id: str) -> tuple[dict, str] | None:
        try:
            entity = self.table.get_entity(instance_id, STATE_RK)
        except ResourceNotFoundError:
            return None
        return dict(entity), entity.metadata["etag"]

    def create_state(self, entity: dict) -> str:
        try:
            meta = self.table.create_entity(entity)
        except ResourceExistsError as exc:
            raise Conflict(str(exc)) from exc
        return meta["etag"]

    def replace_state(self, entity: dict, etag: str) -> str:
        try:
            meta = self.table.update_entity(
                entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except (HttpResponseError, ResourceNotFoundError) as exc:
            if getattr(exc, "status_code", None) in (404, 409, 412):
                raise Conflict(str(exc)) from exc
            raise
        return meta["etag"]

    def list_states(self, query_filter: str | None = None, parameters: dict | None = None) -> list[dict]:
        flt = f"RowKey eq '{STATE_RK}'" + (f" and ({query_filter})" if query_filter else "")
        return [dict(e) for e in self.table.query_entities(flt, parameters=parameters or {})]

    def commit_episode(
        self, state: dict, etag: str, history_rows: Iterable[dict], consumed_inbox: Iterable[str]
    ) -> str:
        """One atomic, ETag-conditional transaction: state update + new history rows + consumed inbox rows."""
        pk = state["PartitionKey"]
        ops: list = [
            (
                "update",
                state,
                {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified},
            )
        ]
        ops += [("create", row) for row in history_rows]
        ops += [("delete", {"PartitionKey": pk, "RowKey": rk}) for rk in consumed_inbox]
        if len(ops) > 100:
            raise ValueError("episode too large for one transaction")
        try:
            result = self.table.submit_transaction(ops)
        except TableTransactionError as exc:
            raise Conflict(str(exc)) from exc
        except HttpResponseError as exc:
            if getattr(exc, "status_code", None) in (404, 409, 412):
                raise Conflict(str(exc)) from exc
            raise
        return result[0]["etag"]

    # ---- history ----------------------------------------------------------------------------------------------
    def history_row(self, instance_id: str, generation: int, episode: int, events: list[dict]) -> dict:
        text = json.dumps(events, separators=(",", ":"))
        row: dict[str, Any] = {
            "PartitionKey": instance_id,
            "RowKey": history_rk(generation, episode),
            "count": len(events),
        }
        if len(text) > INLINE_LIMIT * CHUNKS_PER_ROW:
            name = f"{instance_id}/h-{uuid.uuid4().hex}"
            self.container.upload_blob(name, text.encode("utf-8"), overwrite=True)
            row["blob"] = name
        else:
            for i in range(0, max(1, len(text)), INLINE_LIMIT):
                row[f"d{i // INLINE_LIMIT}"] = text[i : i + INLINE_LIMIT]
        return row

    def read_history(self, instance_id: str, generation: int) -> list[dict]:
        lo, hi = history_rk(generation, 0), history_rk(generation + 1, 0)
        rows = self.table.query_entities(
            "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
            parameters={"pk": instance_id, "lo": lo, "hi": hi},
        )
        events: list[dict] = []
        for row in sorted(rows, key=lambda r: r["RowKey"]):
            if row.get("blob"):
                text = self.container.download_blob(row["blob"]).readall().decode("utf-8")
            else:
                text = "".join(row[f"d{i}"] for i in range(CHUNKS_PER_ROW) if f"d{i}" in row)
            events.extend(json.loads(text))
        return events

    # ---- inbox ------------------------------------------------------------------------------------------------
    def put_message(self, instance_id: str, message: dict) -> str:
        rk = inbox_rk()
        entity = {"PartitionKey": instance_id, "RowKey": rk}
        self.pack(entity, "body", json.dumps(message), instance_id)
        self.table.create_entity(entity)
        return rk

    def read_inbox(self, instance_id: str) -> list[tuple[str, dict]]:
        rows = self.table.query_entities(
            "PartitionKey eq @pk and RowKey ge 'q' and RowKey lt 'r'", parameters={"pk": instance_id}
        )
        out = []
        for row in sorted(rows, key=lambda r: r["RowKey"]):
            out.append((row["RowKey"], json.loads(self.unpack(dict(row), "body"))))
        return out

    def partitions_with_inbox(self) -> set[str]:
        rows = self.table.query_entities("RowKey ge 'q' and RowKey lt 'r'", select=["PartitionKey"])
        return {r["PartitionKey"] for r in rows}

    def delete_instance(self, instance_id: str) -> None:
        rows = list(
            self.table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": instance_id}, select=["PartitionKey", "RowKey"]
            )
        )
        for i in range(0, len(rows), 100):
            chunk = rows[i : i + 100]
            try:
                self.table.submit_transaction(
                    [("delete", {"PartitionKey": r["PartitionKey"], "RowKey": r["RowKey"]}) for r in chunk]
                )
            except (TableTransactionError, HttpResponseError):
                for r in chunk:
                    try:
                        self.table.delete_entity(r["PartitionKey"], r["RowKey"])
                    except ResourceNotFoundError:
                        pass
        for blob in self.container.list_blobs(name_starts_with=f"{instance_id}/"):
            try:
                self.container.delete_blob(blob.name)
            except ResourceNotFoundError:
                pass

    # ---- timer-trigger claims -------------------------------------------------------------------------------
    def claim_occurrence(self, function_name: str, occurrence: str, owner: str) -> bool:
        """True if this host may fire `function_name` at `occurrence` (ISO time); one host wins per occurrence."""
        pk, rk = "timer", re.sub(r"[/\\#?]", "_", function_name)
        for _ in range(5):
            try:
                entity = self.locks.get_entity(pk, rk)
            except ResourceNotFoundError:
                try:
                    self.locks.create_entity({"PartitionKey": pk, "RowKey": rk, "last": occurrence, "owner": owner})
                    return True
                except ResourceExistsError:
                    continue
            if entity.get("last", "") >= occurrence:
                return False
            try:
                self.locks.update_entity(
                    {"PartitionKey": pk, "RowKey": rk, "last": occurrence, "owner": owner},
                    mode=UpdateMode.REPLACE,
                    etag=entity.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
                return True
            except HttpResponseError:
                continue
        return False

    def last_occurrence(self, function_name: str) -> str | None:
        try:
            return self.locks.get_entity("timer", re.sub(r"[/\\#?]", "_", function_name)).get("last")
        except ResourceNotFoundError:
            return None

    def close(self) -> None:
        for client in (self.table, self.locks, self._service, self.container, self._blobs):
            try:
                client.close()
            except Exception:  # noqa: BLE001 - best effort on shutdown
                pass
