"""Every function with a Durable client binding leaves this instance's RPC endpoint for code without one.

A webhook delivery is started by a listener inside an activity, which has no client binding; it uses the
endpoint remembered from the last function that had one, or else leaves the start to the minute timer. The
binding JSON is the one the extension hands the worker (`rpcBaseUrl` beside the creation/management URLs,
azure-functions-durable's DurableOrchestrationBindings); the client is the real SDK's.
"""

import asyncio
import json

import azure.durable_functions as df

from shared.platform import durable
from shared.webhooks import dispatch

BINDING = {
    "taskHubName": "hub",
    "creationUrls": {
        "createNewInstancePostUri": "http://127.0.0.1:7071/runtime/webhooks/durabletask/orchestrators/{functionName}[/{instanceId}]"
    },
    "managementUrls": {
        "id": "INSTANCEID",
        "statusQueryGetUri": "http://127.0.0.1:7071/runtime/webhooks/durabletask/instances/INSTANCEID",
    },
    "rpcBaseUrl": "http://127.0.0.1:17071/durabletask/",
}


def test_a_job_route_s_client_leaves_the_endpoint_for_webhook_starts():
    durable.forget_endpoint()
    assert dispatch.start("sub_x", "job-x") is False  # nothing known: the timer will start it
    client = df.DurableOrchestrationClient(json.dumps(BINDING))
    loop = asyncio.new_event_loop()
    try:
        durable.ClientOrchestrations(client, loop)  # what every job route builds
    finally:
        loop.close()
    assert durable.rpc_endpoint() == BINDING["rpcBaseUrl"]
    durable.forget_endpoint()


def test_a_binding_without_an_rpc_url_changes_nothing():
    durable.forget_endpoint()
    durable.remember_endpoint(df.DurableOrchestrationClient(json.dumps({**BINDING, "rpcBaseUrl": None})))
    assert durable.rpc_endpoint() is None
