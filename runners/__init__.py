"""Runners: one interface (base.Runner), one module per way of running a job, a registry by type string.

With ENABLE_LOCAL_RUNNERS on, importing the package keeps the app's process out of reach of the scripts it
will run (`host_guard.protect_host`), before any of them (or one that outlived a previous host) could look.
"""

from shared.platform import settings as _settings

if _settings.get_bool("ENABLE_LOCAL_RUNNERS"):
    from .host_guard import protect_host as _protect_host

    _protect_host()
