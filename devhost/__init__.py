"""devhost: a local/test host for the function app (Azure Functions Python v2 model + Durable Functions).

Azure Functions Core Tools cannot run on the development machines, so `devhost` serves the app's `DFApp` the way
`func start` would: HTTP routes, the Durable client binding and its HTTP API, an in-process Durable engine that
replays orchestrators through the real SDK with state in Azure Storage (Azurite), and timer triggers, all on a
clock tests can drive. It is for local runs and tests only; production runs on the real Functions host.

    from devhost import DevHost
    with DevHost(app_dir=".", module="function_app", port=0, clock=ManualClock()) as host:
        requests.post(host.url + "/api/...")
        host.advance(60)
"""

from .host import DevHost

__all__ = ["DevHost"]
