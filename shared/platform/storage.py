"""Clients for the app's Azure Storage: tables and one blob container, all named from JOB_STORE_PREFIX.

Connection: the `AzureWebJobsStorage` connection string (Azurite locally), or in Azure the identity-based
`AzureWebJobsStorage__accountName` (+ `__clientId`) settings with a managed identity. Clients are cached per
(name, connection) so a process keeps one HTTP pipeline per table.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING
import re

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient, TableServiceClient

from shared.platform import settings

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient, ContainerClient

_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")


def prefix() -> str:
    return settings.get("JOB_STORE_PREFIX")


def table_name(suffix: str) -> str:
    name = prefix() + suffix
    if not _TABLE_NAME.match(name):
        raise ValueError(f"invalid table name {name!r}: JOB_STORE_PREFIX must be letters and digits")
    return name


def _connection() -> tuple[str, str, str]:
    """(kind, value, client_id): kind is 'connection' or 'account'."""
    conn = settings.get("AzureWebJobsStorage")
    if conn:
        return "connection", conn, ""
    account = settings.get("AzureWebJobsStorage__accountName")
    if account:
        return "account", account, settings.get("AzureWebJobsStorage__clientId")
    raise RuntimeError("no storage configured: set AzureWebJobsStorage or AzureWebJobsStorage__accountName")


def _credential(client_id: str):
    # azure.identity costs ~0.6 s to import (measured here), needed only with identity-based storage (Azure)
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=client_id or None)


@functools.lru_cache(maxsize=64)
def _table_service(kind: str, value: str, client_id: str) -> TableServiceClient:
    if kind == "connection":
        return TableServiceClient.from_connection_string(value)
    return TableServiceClient(f"https://{value}.table.core.windows.net", credential=_credential(client_id))


@functools.lru_cache(maxsize=64)
def _blob_service(kind: str, value: str, client_id: str) -> BlobServiceClient:
    # azure.storage.blob takes ~0.15 s to import (measured here) and only large text (final logs, results, big
    # entities) needs it: a cold start that only reads a status does without it
    from azure.storage.blob import BlobServiceClient

    if kind == "connection":
        return BlobServiceClient.from_connection_string(value)
    return BlobServiceClient(f"https://{value}.blob.core.windows.net", credential=_credential(client_id))


_created: set[tuple[str, str]] = set()


@functools.lru_cache(maxsize=256)
def _table_client(kind: str, value: str, client_id: str, name: str) -> TableClient:
    client = _table_service(kind, value, client_id).get_table_client(name)
    try:
        client.create_table()
    except ResourceExistsError:
        pass
    return client


def table(suffix: str) -> TableClient:
    """The app table `<prefix><suffix>`, created on first use."""
    return _table_client(*_connection(), table_name(suffix))


@functools.lru_cache(maxsize=64)
def _container_client(kind: str, value: str, client_id: str, name: str) -> ContainerClient:
    client = _blob_service(kind, value, client_id).get_container_client(name)
    try:
        client.create_container()
    except ResourceExistsError:
        pass
    return client


def container() -> ContainerClient:
    """The app's blob container `<prefix>-data` (lower-cased), created on first use."""
    return _container_client(*_connection(), prefix().lower() + "-data")
