"""What the Python worker and the Functions host refuse when they index an app, checked without them.

Local/test host only. The real worker cannot be installed on the project's Python (see README "The local host"),
so these are the checks of its indexing and of the host's function validation, each from its source:

Worker (azure-functions-python-worker, azure_functions_worker/loader.py `index_function_app` and
functions.py `Registry.add_indexed_function`), refused for the whole app:
* no top-level `FunctionRegister` instance in the script, or more than one ("More than one ... or other top
  level function app instances are defined.");
* `app.get_functions()` raising (the library refuses duplicate function names, a function without a trigger);
and per function (FunctionLoadError): an `inout` binding; a `$return` binding that is not `out`; parameters
declared in Python but not as bindings, or the other way round (`context` aside).

Host (azure-functions-host src/WebJobs.Script/Host/ScriptHost.cs `ValidateFunction`, `ValidateHttpFunction`,
`HttpRoutesConflict`), refused per function (the host logs the error and leaves the function out):
* a route (default: the function name) that, trimmed of '/' and lower-cased, starts with "admin" or "runtime"
  ("The specified route conflicts with one or more built in routes.");
* a route equal (case-insensitively, trimmed) to an earlier function's whose methods intersect (no methods: all)
  ("The route specified conflicts with the route defined by function '...'."); functions are validated in the
  host's order (by name, case-insensitively: FunctionMetadataManager.cs), so the later name is the one refused;
* a function name used twice ("The function or proxy name '...' must be unique within the function app.");
and by the bindings' extensions:
* a binding property `%NAME%` that no app setting defines (the host's name resolver cannot resolve it);
* a timer schedule that is not a 6-field NCRONTAB expression (NCrontab with IncludingSeconds, as the timer
  extension's CronSchedule.TryCreate parses it); a TimeSpan schedule works only on an App Service plan, not on
  Flex Consumption, so it is refused here too.
"""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from azure.functions import FunctionRegister

_SETTING = re.compile(r"%([^%]+)%")


@dataclass(frozen=True)
class Problem:
    function: str | None  # None: the whole app is refused
    message: str
    by: str  # "worker" or "host"

    def __str__(self) -> str:
        where = f"function '{self.function}'" if self.function else "the app"
        return f"{self.by} refuses {where}: {self.message}"


@dataclass
class Indexed:
    name: str
    func: Any
    bindings: list[dict]


def find_app(module: Any) -> FunctionRegister:
    """The module's one top-level FunctionRegister (any variable name), as loader.index_function_app finds it."""
    found = None
    for name in module.__dir__():
        value = getattr(module, name, None)
        if isinstance(value, FunctionRegister):
            if found is not None and value is not found:
                raise ValueError(
                    f"More than one {found.__class__.__name__} or other top level function app instances are defined."
                )
            found = value
    if found is None:
        raise ValueError("Could not find top level function app instances in function_app.py.")
    return found


def app_functions(app: FunctionRegister) -> list:
    """`app.get_functions()`, callable more than once per app object.

    The worker calls it once per process; the library remembers the names it has seen in `functions_bindings`,
    so a second call (a second DevHost, or a test, on the same app in one process) would fail as a duplicate of
    itself. Each call here starts from an empty record (duplicates within the app are still refused) and puts the
    previous one back afterwards, so other callers see what they would have seen."""
    if not hasattr(app, "functions_bindings"):
        return app.get_functions()
    saved = app.functions_bindings
    app.functions_bindings = {}
    try:
        return app.get_functions()
    finally:
        app.functions_bindings = saved


def index(app: FunctionRegister) -> list[Indexed]:
    """The app's functions with the bindings the worker reports (`get_function_json`)."""
    out = []
    for fn in app_functions(app):
        bindings = list(json.loads(fn.get_function_json()).get("bindings", []))
        out.append(Indexed(fn.get_function_name(), fn.get_user_function(), bindings))
    return out


def worker_problems(functions: Iterable[Indexed]) -> list[Problem]:
    problems = []
    for f in functions:
        for message in _binding_problems(f):
            problems.append(Problem(f.name, message, "worker"))
    return problems


def _binding_problems(f: Indexed) -> list[str]:
    out = []
    bound = set()
    for b in f.bindings:
        direction = str(b.get("direction", "")).lower()
        if direction == "inout":
            out.append('"inout" bindings are not supported')
        if b.get("name") == "$return":
            if direction != "out":
                out.append('"$return" binding must have direction set to "out"')
            continue
        bound.add(b.get("name"))
    try:
        params = set(inspect.signature(f.func).parameters)
    except (TypeError, ValueError):
        return out
    if "context" in params and "context" not in bound:
        params.discard("context")
    if params - bound:
        out.append(f"the following parameters are declared in Python but not in function.json: {params - bound!r}")
    if bound - params:
        out.append(f"the following parameters are declared in function.json but not in Python: {bound - params!r}")
    return out


def host_problems(functions: Iterable[Indexed], settings: Mapping[str, str | None]) -> list[Problem]:
    """Per-function problems in the host's validation order (by name, case-insensitively). `settings`: the app
    settings that exist, with their values where known (a `%NAME%` schedule is checked once resolved)."""
    defined = set(settings)
    problems: list[Problem] = []
    seen_names: set[str] = set()
    http: dict[str, dict] = {}
    for f in sorted(functions, key=lambda f: f.name.lower()):
        for message in _setting_problems(f, defined) + _timer_problems(f, settings):
            problems.append(Problem(f.name, message, "host"))
        trigger = next((b for b in f.bindings if b.get("type") == "httpTrigger"), None)
        if trigger is not None:
            message = _http_problem(f.name, trigger, http)
            if message:
                problems.append(Problem(f.name, message, "host"))
            elif f.name in http:
                problems.append(
                    Problem(
                        f.name, f"The function or proxy name '{f.name}' must be unique within the function app.", "host"
                    )
                )
            else:
                http[f.name] = trigger
        elif f.name in seen_names:
            problems.append(
                Problem(f.name, f"The function name '{f.name}' must be unique within the function app.", "host")
            )
        seen_names.add(f.name)
    return problems


def _http_problem(name: str, trigger: dict, earlier: dict[str, dict]) -> str | None:
    route = (trigger.get("route") or name).strip("/")
    if route.lower().startswith(("admin", "runtime")):
        return "The specified route conflicts with one or more built in routes."
    methods = {str(m).upper() for m in trigger.get("methods") or []}
    for other_name, other in earlier.items():
        other_route = (other.get("route") or other_name).strip("/")
        other_methods = {str(m).upper() for m in other.get("methods") or []}
        if route.lower() == other_route.lower() and (not methods or not other_methods or methods & other_methods):
            return f"The route specified conflicts with the route defined by function '{other_name}'."
    return None


def _setting_problems(f: Indexed, defined: set[str]) -> list[str]:
    out = []
    for b in f.bindings:
        for key, value in b.items():
            if not isinstance(value, str):
                continue
            for name in _SETTING.findall(value):
                if name not in defined:
                    out.append(
                        f"'{b.get('name')}.{key}': '%{name}%' does not resolve to a value: no app setting "
                        f"{name} is defined"
                    )
    return out


def _timer_problems(f: Indexed, settings: Mapping[str, str | None]) -> list[str]:
    out = []
    for b in f.bindings:
        if b.get("type") != "timerTrigger":
            continue
        schedule = str(b.get("schedule") or "")
        names = _SETTING.findall(schedule)
        if any(settings.get(name) is None for name in names):
            continue  # unknown setting (reported above) or a value not known here
        resolved = _SETTING.sub(lambda m: str(settings[m.group(1)]), schedule)
        out.extend(ncrontab_problems(resolved))
    return out


# ---- NCRONTAB (seconds minutes hours days months days-of-week), as NCrontab parses it ----------------------
_FIELDS = (
    ("seconds", 0, 59, None),
    ("minutes", 0, 59, None),
    ("hours", 0, 23, None),
    ("days", 1, 31, None),
    ("months", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("days of week", 0, 6, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)


def ncrontab_problems(expression: str) -> list[str]:
    """Why NCrontab (IncludingSeconds) would not parse `expression`; empty if it would."""
    tokens = expression.split()
    if len(tokens) != 6:
        hint = (
            " (a TimeSpan schedule works on an App Service plan only)" if re.fullmatch(r"[\d.:]+", expression) else ""
        )
        return [
            f"'{expression}' is not a valid CRON expression: it needs 6 components (seconds, minutes, hours, "
            f"days, months, days of week){hint}"
        ]
    out = []
    for token, (label, low, high, names) in zip(tokens, _FIELDS):
        for part in token.split(","):
            if not _valid_part(part, low, high, names):
                out.append(
                    f"'{expression}' is not a valid CRON expression: '{part}' in the {label} field "
                    f"(values {low}-{high})"
                )
    return out


def _valid_part(part: str, low: int, high: int, names: tuple[str, ...] | None) -> bool:
    body, _, step = part.partition("/")
    if step and not (step.isdigit() and int(step) > 0):
        return False
    if body == "*":
        return True
    first, sep, last = body.partition("-")
    values = [_value(v, names) for v in ((first, last) if sep else (first,))]
    if any(v is None or not low <= v <= high for v in values):
        return False
    return not sep or values[0] <= values[1]


def _value(text: str, names: tuple[str, ...] | None) -> int | None:
    if text.isdigit():
        return int(text)
    if names:
        upper = text.upper()
        for i, name in enumerate(names):
            if len(upper) >= 3 and name.startswith(upper[:3]):
                return i + (1 if names[0] == "JAN" else 0)
    return None
