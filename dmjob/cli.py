"""The `dmjob` commands.

Exit codes: 0 done (for `start --wait`/`--follow` and `logs --follow`: the job completed); 1 the job failed or
was removed; 2 a usage error; 3 the API refused (its message and status are printed); 4 the API could not be
reached; 130 interrupted. Replies go to stdout (`--json`: the API's JSON as it came), errors to stderr.
"""

from __future__ import annotations

import inspect
import json
import sys
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from rich.console import Console
from rich.table import Table

from dmjob import __version__
from dmjob.client import Api, Credentials, DmjobError, api_base, azure_cli_token
from dmjob.follow import Follower

app = typer.Typer(
    name="dmjob",
    help="Start and follow jobs of the DM Job API (Azure Functions).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
STATUSES = ("registered", "not started", "starting", "running", "failed", "completed", "removed", "unknown")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the API's JSON reply instead of a summary.")]
Uid = Annotated[str, typer.Argument(help="The job's uid.", show_default=False)]


@dataclass
class Options:
    url: str
    key: Optional[str]
    token: Optional[str]
    az_resource: Optional[str]
    timeout: float

    def api(self) -> Api:
        token = self.token or (azure_cli_token(self.az_resource) if self.az_resource else None)
        return Api(api_base(self.url), Credentials(self.key, token), timeout=self.timeout)


def _out() -> Console:
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:  # a pipe or a file: tables as wide as they need, nothing cut off
        console.width = max(console.width, 240)
    return console


def _err(message: str) -> None:
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"dmjob: {message}", markup=False)


def _emit(body: Any) -> None:
    sys.stdout.write(json.dumps(body, indent=2, ensure_ascii=False) + "\n")


def command(func: Callable[..., Any]) -> Callable[..., Any]:
    """A command: its Api opened from the global options; DmjobError printed and turned into its exit code."""

    @wraps(func)
    def run(ctx: typer.Context, *args: Any, **kwargs: Any) -> Any:
        api = None
        try:
            api = ctx.obj.api()
            return func(api, *args, **kwargs)
        except DmjobError as error:
            _err(f"error: {error}")
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            _err("interrupted (a job goes on: `dmjob stop UID` stops it)")
            raise typer.Exit(130) from None
        finally:
            if api is not None:
                api.close()

    # typer reads the command's parameters from its signature: the context in place of the Api
    signature = inspect.signature(func, eval_str=True)
    params = list(signature.parameters.values())[1:]
    context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
    run.__signature__ = signature.replace(parameters=[context, *params])
    run.__annotations__ = {"ctx": typer.Context, **{p.name: p.annotation for p in params}}
    return run


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"dmjob {__version__}\n")
        raise typer.Exit()


@app.callback()
def options(
    ctx: typer.Context,
    url: Annotated[
        str,
        typer.Option(
            "--url",
            envvar="DMJOB_URL",
            help="The app: http://localhost:7071, https://<app>.azurewebsites.net (or its .../api).",
        ),
    ] = "http://localhost:7071",
    key: Annotated[
        Optional[str],
        typer.Option("--key", envvar="DMJOB_KEY", show_default=False, help="A function key (sent as x-functions-key)."),
    ] = None,
    token: Annotated[
        Optional[str],
        typer.Option("--token", envvar="DMJOB_TOKEN", show_default=False, help="A bearer token (Entra ID)."),
    ] = None,
    az_resource: Annotated[
        Optional[str],
        typer.Option(
            "--az-resource",
            envvar="DMJOB_AZ_RESOURCE",
            show_default=False,
            help="Get the bearer token from the Azure CLI for this resource (api://<client id>).",
        ),
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for one API call.")] = 30.0,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Base URL, function key and token come from the flags or from DMJOB_URL, DMJOB_KEY, DMJOB_TOKEN."""
    ctx.obj = Options(url, key, token, az_resource, timeout)


# ---- start and follow --------------------------------------------------------------------------------------
def _read_entity(file: str) -> Any:
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    except OSError as error:
        raise DmjobError(f"cannot read {file}: {error.strerror or error}", exit_code=2) from None
    try:
        return json.loads(text)
    except ValueError as error:
        raise DmjobError(f"{file} is not JSON: {error}", exit_code=2) from None


def _finish(final: dict, as_json: bool) -> None:
    if as_json:
        _emit(final)
    else:
        _out().print(f"{final.get('status')}: {final.get('message') or ''}".rstrip(": "), markup=False)
    if final.get("status") != "completed":
        raise typer.Exit(1)


@app.command()
@command
def start(
    api: Api,
    file: Annotated[str, typer.Argument(help="A Job or RecurringJob entity (JSON); - reads stdin.")],
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the job to end: exit 0 only if it completed.")] = False,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Wait, and show its log as it grows.")] = False,
    idempotency_key: Annotated[Optional[str], typer.Option("--idempotency-key", help="Start it once only.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Start a job from an entity file."""
    started = api.start(_read_entity(file), idempotency_key)
    if not (wait or follow) or started.get("status") == "registered":
        _emit(started) if as_json else _out().print(
            f"{started['uid']} {started['status']}: {started['message']}", markup=False
        )
        return
    if not as_json:
        _out().print(f"{started['uid']} {started['status']}: {started['message']}", markup=False)
    final = Follower(api, started["uid"], _out(), show_log=follow and not as_json, show_progress=not as_json).run()
    _finish(final, as_json)


@app.command()
@command
def logs(
    api: Api,
    uid: Uid,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Show new lines until the job ends; exit 0 only if it completed.")
    ] = False,
    full: Annotated[
        bool, typer.Option("--full", help="The whole log (stored at the end, or the runner's while it runs).")
    ] = False,
    tail: Annotated[
        int | None, typer.Option("--tail", min=1, max=100_000, help="With --full: only the last N lines.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show a job's log: the tail the app keeps, or with --full the whole log."""
    if full:
        body = api.log(uid, tail)
        if as_json:
            _emit(body)
            return
        sys.stdout.writelines(f"{line}\n" for line in body.get("log") or [])
        return
    if follow and not as_json:
        final = Follower(api, uid, _out(), show_log=True, show_progress=False).run()
        if final.get("status") != "completed":
            _err(f"job {uid} {final.get('status')}: {final.get('message') or ''}")
            raise typer.Exit(1)
        return
    status = api.status(uid)
    if as_json:
        _emit({"uid": status.get("uid"), "status": status.get("status"), "log": status.get("log")})
        return
    for line in status.get("log") or []:
        sys.stdout.write(f"{line}\n")


# ---- one job -----------------------------------------------------------------------------------------------
def _lines(n: int) -> str:
    return f"{n} line" if n == 1 else f"{n} lines"


def _percent(value: Any) -> str:
    return f"{round(value * 100)}%" if isinstance(value, (int, float)) else "-"


@app.command()
@command
def status(api: Api, uid: Uid, as_json: JsonFlag = False) -> None:
    """Show a job's status."""
    body = api.status(uid)
    if as_json:
        _emit(body)
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    runner = (body.get("runner") or {}).get("type")
    rows = [
        ("uid", body.get("uid")),
        ("status", body.get("status")),
        ("progress", _percent(body.get("percentage"))),
        ("kind", body.get("kind")),
        ("label", body.get("label")),
        ("runner", runner),
        ("started", body.get("started")),
        ("ended", body.get("ended")),
        ("triggered by", body.get("triggeredBy")),
        ("message", body.get("message")),
        ("output target", body.get("outputTarget")),
        ("log", f"{_lines(len(body.get('log') or []))} (dmjob logs {body.get('uid')})"),
    ]
    schedule = body.get("schedule") or {}
    if schedule:
        rows += [
            ("schedule", f"{schedule.get('cron')} ({schedule.get('timezone')}), {schedule.get('state')}"),
            ("next fire", schedule.get("nextFireLocal") or schedule.get("nextFire")),
        ]
    for name, value in rows:
        if value not in (None, ""):
            table.add_row(name, str(value))
    _out().print(table)


@app.command()
@command
def stop(
    api: Api,
    uid: Uid,
    stop_running: Annotated[
        bool, typer.Option("--stop-running", help="A recurring job: stop its runs going on too.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Stop a job (a recurring job: no further runs)."""
    body = api.stop(uid, stop_running)
    _emit(body) if as_json else _out().print(f"{body.get('status')}: {body.get('response')}", markup=False)


@app.command()
@command
def result(
    api: Api,
    uid: Uid,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the result to this file.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Fetch a finished job's result."""
    body = api.result(uid)
    text = body.get("result") or ""
    if output is not None:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as error:
            raise DmjobError(f"cannot write {output}: {error.strerror or error}", exit_code=2) from None
    if as_json:
        _emit(body)
    elif output is not None:
        _out().print(f"{body.get('status')}: {len(text)} characters written to {output}", markup=False)
    else:
        sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")


# ---- many jobs, schedules ----------------------------------------------------------------------------------
@app.command("list")
@command
def list_jobs(
    api: Api,
    status: Annotated[
        Optional[str], typer.Option("--status", "-s", help="Only jobs with this status: " + ", ".join(STATUSES) + ".")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000, help="How many.")] = 50,
    page: Annotated[Optional[str], typer.Option("--page", help="The continuation token of a previous list.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List jobs, newest first."""
    body = api.list(status, limit, page)
    if as_json:
        _emit(body)
        return
    table = Table("uid", "status", "kind", "created", "label")
    for job in body.get("jobs") or []:
        table.add_row(
            job.get("uid"), job.get("status"), job.get("kind") or "", job.get("created") or "", job.get("label") or ""
        )
    console = _out()
    console.print(table)
    if body.get("continuationToken"):
        console.print(f"more: dmjob list --page '{body['continuationToken']}'", markup=False)


def _here(utc: str) -> str:
    try:
        return datetime.fromisoformat(utc.replace("Z", "+00:00")).astimezone().isoformat(timespec="minutes")
    except (TypeError, ValueError):
        return ""


@app.command()
@command
def schedule(
    api: Api,
    uid: Uid,
    count: Annotated[int, typer.Option("--next", "-n", min=1, max=100, help="How many fire times.")] = 5,
    as_json: JsonFlag = False,
) -> None:
    """Show a recurring job's next fire times: UTC, the schedule's zone and this machine's."""
    body = api.schedule(uid, count)
    if as_json:
        _emit(body)
        return
    zone = body.get("timezone") or "local"
    table = Table(
        "#",
        "UTC",
        f"{zone}",
        "weekday",
        "this machine",
        title=f"{body.get('cron')} in {zone} ({body.get('weekdayDialect')} weekdays), {body.get('state')}",
    )
    for n, fire in enumerate(body.get("fireTimes") or [], start=1):
        table.add_row(
            str(n), fire.get("utc", ""), fire.get("local", ""), fire.get("weekday", ""), _here(fire.get("utc", ""))
        )
    _out().print(table)


def _schedule_state(body: dict, as_json: bool) -> None:
    if as_json:
        _emit(body)
        return
    line = f"{body.get('state')}"
    if body.get("nextFire"):
        line += f", next fire {body.get('nextFireLocal') or body['nextFire']}"
    if body.get("suspendedReason"):
        line += f" ({body['suspendedReason']})"
    _out().print(line, markup=False)


@app.command()
@command
def suspend(api: Api, uid: Uid, as_json: JsonFlag = False) -> None:
    """Suspend a recurring job (its runs going on continue)."""
    _schedule_state(api.suspend(uid), as_json)


@app.command()
@command
def resume(api: Api, uid: Uid, as_json: JsonFlag = False) -> None:
    """Resume a suspended recurring job."""
    _schedule_state(api.resume(uid), as_json)


def main() -> None:
    app()
