"""``durascope pull``: copy executions from any Lambda-compatible endpoint.

Uses boto3 with the user's own credentials and configuration (real AWS, or another
Durascope with ``--endpoint-url``): ListDurableExecutionsByFunction, then
GetDurableExecutionHistory for each (all pages), imported through the same validated
path as ``durascope import``. Executions already in the store are skipped, so a pull
can be repeated to pick up new ones.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from recorder.store.db import Database
from recorder.store.sql import Raw
from recorder.transfer import ImportedHistory, import_histories, parse_history

# What one pull reads at most from an endpoint: as much as one import file may hold, and
# enough pages for that (a history page holds up to 1,000 events, a list page 100 executions).
MAX_PULL_BYTES = 256 * 1024 * 1024
MAX_PULL_PAGES = 20_000


class PullFailed(RuntimeError):
    pass


class _Budget:
    """Counts what an endpoint sent, so that an endless or huge answer stops the pull."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.pages = 0
        self.bytes = 0

    def on_response(self, http_response: Any = None, **_: Any) -> None:
        self.pages += 1
        self.bytes += len(getattr(http_response, "content", b"") or b"")
        if self.pages > MAX_PULL_PAGES:
            raise PullFailed(
                f"stopped: {self.endpoint} kept sending pages (more than {MAX_PULL_PAGES}); "
                "nothing was imported. Pull less at once with --since."
            )
        if self.bytes > MAX_PULL_BYTES:
            raise PullFailed(
                f"stopped: {self.endpoint} sent more than {MAX_PULL_BYTES // (1024 * 1024)} MiB; "
                "nothing was imported. Pull less at once with --since."
            )


def _plain(value: Any) -> Any:
    """boto3 parses timestamps into datetimes; the import takes epoch seconds."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def pull(
    db: Database, function: str, endpoint_url: str | None, region: str | None, since_ms: int | None
) -> tuple[int, int]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    client = _client(boto3.session.Session(), endpoint_url, region)
    budget = _Budget(endpoint_url or "AWS")
    client.meta.events.register("after-call.lambda", budget.on_response)
    params: dict[str, Any] = {"FunctionName": function, "MaxItems": 100}
    if since_ms is not None:
        params["StartedAfter"] = datetime.fromtimestamp(since_ms / 1000, UTC)
    histories: list[ImportedHistory] = []
    skipped = 0
    try:
        while True:
            page = client.list_durable_executions_by_function(**params)
            for item in page.get("DurableExecutions", []):
                arn = item["DurableExecutionArn"]
                if _have(db, arn):
                    skipped += 1
                    continue
                events: list[dict[str, Any]] = []
                hparams: dict[str, Any] = {"DurableExecutionArn": arn, "MaxItems": 1000, "IncludeExecutionData": True}
                while True:
                    h = client.get_durable_execution_history(**hparams)
                    events.extend(_plain(h.get("Events", [])))
                    if not h.get("NextMarker") or h["NextMarker"] == hparams.get("Marker"):
                        break
                    hparams["Marker"] = h["NextMarker"]
                histories.append(
                    parse_history(
                        {"DurableExecutionArn": arn, "Events": events},
                        arn,
                        source=f"pulled from {endpoint_url or 'AWS'}",
                    )
                )
            if not page.get("NextMarker") or page["NextMarker"] == params.get("Marker"):
                break
            params["Marker"] = page["NextMarker"]
    except (BotoCoreError, ClientError) as exc:
        raise PullFailed(f"could not read from {endpoint_url or 'AWS'}: {exc}") from None
    if histories:
        import_histories(db, histories)
    return len(histories), skipped


def _client(session: Any, endpoint_url: str | None, region: str | None) -> Any:
    """A Lambda client: your configuration when there is one. Against another Durascope
    (``endpoint_url``) none is needed: without access keys it takes any signature, so a
    machine with no AWS configuration signs with placeholders, in us-east-1 by default."""
    region = region or session.region_name or "us-east-1"
    if endpoint_url and session.get_credentials() is None:
        return session.client(
            "lambda",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id="durascope",
            aws_secret_access_key="durascope",
        )
    return session.client("lambda", endpoint_url=endpoint_url, region_name=region)


def _have(db: Database, arn: str) -> bool:
    execution_id = arn.rsplit("/", 1)[-1]
    with db.read() as s:
        return (
            Raw(s.connection()).one("SELECT 1 FROM executions WHERE execution_id = :e", {"e": execution_id}) is not None
        )
