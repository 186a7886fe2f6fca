#!/usr/bin/env bash
# Smoke test of a deployed DM Job app: start a small job, poll it until it ends, print its status and log.
#
#   scripts/smoke.sh BASE_URL [KEY]
#
#   BASE_URL   the app's URL, e.g. https://<app name>.azurewebsites.net (a trailing /api is accepted)
#   KEY        a function key (sent as x-functions-key); or set FUNCTION_KEY
#
# Environment:
#   TOKEN              an Entra ID access token for the API: sent as `Authorization: Bearer` (with Entra auth
#                      on, send the function key too: the functions still require it)
#   SMOKE_IMAGE        the container image the job runs (default: hello-world:latest, a tiny public image that
#                      prints a greeting and exits 0; with a private registry configured, images without a
#                      registry are looked up there: set an image that exists in it)
#   SMOKE_JOB_FILE     a JSON file with the whole job entity to POST instead of the built-in one
#   SMOKE_TIMEOUT      seconds to wait for a final status (default 900)
#   SMOKE_POLL_SECONDS seconds between polls (default 10)
#   SMOKE_STOP_ON_TIMEOUT  1 (default) stops the job when the timeout passes, 0 leaves it running
#
# The job uses the AzureContainer runner (Azure Container Instances): local runners (shell, local containers)
# are switched off in the cloud. Exit status: 0 completed, 1 failed/removed/unknown, 2 usage or HTTP error,
# 3 timeout. Keys and tokens are passed to curl in a private temporary file, never on its command line.
set -euo pipefail

usage() {
  sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

[[ $# -ge 1 && $# -le 2 ]] || usage
[[ "$1" == "-h" || "$1" == "--help" ]] && usage

BASE_URL="${1%/}"
BASE_URL="${BASE_URL%/api}"
KEY="${2:-${FUNCTION_KEY:-}}"
TOKEN="${TOKEN:-}"
SMOKE_IMAGE="${SMOKE_IMAGE:-hello-world:latest}"
SMOKE_TIMEOUT="${SMOKE_TIMEOUT:-900}"
SMOKE_POLL_SECONDS="${SMOKE_POLL_SECONDS:-10}"
SMOKE_STOP_ON_TIMEOUT="${SMOKE_STOP_ON_TIMEOUT:-1}"
JOBS_URL="${BASE_URL}/api/jobs"

command -v curl >/dev/null || { echo "smoke: curl is required" >&2; exit 2; }
command -v python3 >/dev/null || { echo "smoke: python3 is required" >&2; exit 2; }
[[ "$SMOKE_TIMEOUT" =~ ^[0-9]+$ && "$SMOKE_POLL_SECONDS" =~ ^[0-9]+$ ]] || {
  echo "smoke: SMOKE_TIMEOUT and SMOKE_POLL_SECONDS must be whole seconds" >&2; exit 2; }

WORK="$(umask 077 && mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
HEADERS="$WORK/headers"
(
  umask 077
  : >"$HEADERS"
  [[ -n "$KEY" ]] && printf 'x-functions-key: %s\n' "$KEY" >>"$HEADERS"
  [[ -n "$TOKEN" ]] && printf 'Authorization: Bearer %s\n' "$TOKEN" >>"$HEADERS"
  printf 'Accept: application/json\n' >>"$HEADERS"
)
if [[ -z "$KEY" && -z "$TOKEN" ]]; then
  echo "smoke: no KEY/FUNCTION_KEY or TOKEN given: calling without credentials" >&2
fi

# request METHOD URL [BODY_FILE]: sets HTTP_STATUS (0 when there was no answer) and RESPONSE (the body)
HTTP_STATUS=0
RESPONSE=""
request() {
  local method="$1" url="$2" body="${3:-}" out="$WORK/response"
  local args=(-sS --max-time 60 -o "$out" -w '%{http_code}' -X "$method" -H "@$HEADERS")
  if [[ -n "$body" ]]; then
    args+=(-H 'Content-Type: application/json' --data-binary "@$body")
  fi
  : >"$out"
  HTTP_STATUS="$(curl "${args[@]}" "$url" || true)"
  [[ "$HTTP_STATUS" =~ ^[0-9]{3}$ ]] || HTTP_STATUS=0
  RESPONSE="$(cat "$out")"
}

json_field() {  # json_field NAME < json  -> the field as text ("" if absent)
  python3 -c '
import json, sys
try:
    data = json.load(sys.stdin)
except ValueError:
    sys.exit(0)
value = data.get(sys.argv[1]) if isinstance(data, dict) else None
if value is None:
    sys.exit(0)
print(value if isinstance(value, str) else json.dumps(value))
' "$1"
}

print_log() {  # the `log` list of a status body, one line each
  python3 -c '
import json, sys
try:
    data = json.load(sys.stdin)
except ValueError:
    sys.exit(0)
log = data.get("log") if isinstance(data, dict) else None
if isinstance(log, str):
    log = log.splitlines()
for line in log or []:
    print("  | " + str(line))
'
}

# --- the job ---------------------------------------------------------------------------------------------
BODY="$WORK/job.json"
if [[ -n "${SMOKE_JOB_FILE:-}" ]]; then
  [[ -r "$SMOKE_JOB_FILE" ]] || { echo "smoke: cannot read SMOKE_JOB_FILE=$SMOKE_JOB_FILE" >&2; exit 2; }
  cp "$SMOKE_JOB_FILE" "$BODY"
else
  SMOKE_IMAGE="$SMOKE_IMAGE" python3 -c '
import json, os, time
print(json.dumps({
    "type": "dmss://WorkflowDS/Blueprints/Job",
    "label": "smoke test " + time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "status": "not started",
    "runner": {
        "type": "dmss://WorkflowDS/Blueprints/AzureContainer",
        "name": "smoke",
        "containerImage": os.environ["SMOKE_IMAGE"],
        "computeResource": {"cpu": 0.5, "memory": 0.5},
        "environmentVariables": ["SMOKE=1"],
    },
    "timeLimitSeconds": 600,
}, indent=2))
' >"$BODY"
fi

echo "smoke: POST $JOBS_URL"
request POST "$JOBS_URL" "$BODY"
if [[ "$HTTP_STATUS" != 200 && "$HTTP_STATUS" != 201 && "$HTTP_STATUS" != 202 ]]; then
  echo "smoke: start failed: HTTP $HTTP_STATUS" >&2
  printf '%s\n' "$RESPONSE" >&2
  exit 2
fi
UID_="$(printf '%s' "$RESPONSE" | json_field uid)"
[[ -n "$UID_" ]] || { echo "smoke: no uid in the reply: $RESPONSE" >&2; exit 2; }
echo "smoke: job $UID_ started ($(printf '%s' "$RESPONSE" | json_field status))"

# --- poll ------------------------------------------------------------------------------------------------
DEADLINE=$(( $(date +%s) + SMOKE_TIMEOUT ))
LAST=""
STATUS=""
while :; do
  request GET "$JOBS_URL/$UID_"
  if [[ "$HTTP_STATUS" == 200 ]]; then
    STATUS="$(printf '%s' "$RESPONSE" | json_field status)"
    if [[ "$STATUS" != "$LAST" ]]; then
      echo "smoke: status $STATUS ($(printf '%s' "$RESPONSE" | json_field percentage))"
      LAST="$STATUS"
    fi
    case "$STATUS" in
      completed|failed|removed) break ;;
    esac
  else
    echo "smoke: GET status: HTTP $HTTP_STATUS (retrying)" >&2
  fi
  if (( $(date +%s) >= DEADLINE )); then
    echo "smoke: no final status after ${SMOKE_TIMEOUT}s (last: ${STATUS:-none})" >&2
    printf '%s' "$RESPONSE" | print_log
    if [[ "$SMOKE_STOP_ON_TIMEOUT" == 1 ]]; then
      request DELETE "$JOBS_URL/$UID_"
      echo "smoke: stop requested (HTTP $HTTP_STATUS)" >&2
    fi
    exit 3
  fi
  sleep "$SMOKE_POLL_SECONDS"
done

echo "smoke: final status: $STATUS"
echo "smoke: log:"
printf '%s' "$RESPONSE" | print_log
if [[ "$STATUS" == completed ]]; then
  FINAL="$RESPONSE"
  request GET "$JOBS_URL/$UID_/result"
  if [[ "$HTTP_STATUS" == 200 ]]; then
    echo "smoke: result: $(printf '%s' "$RESPONSE" | json_field result | head -c 2000)"
  fi
  RESPONSE="$FINAL"
  echo "smoke: OK"
  exit 0
fi
echo "smoke: FAILED ($(printf '%s' "$RESPONSE" | json_field message))" >&2
exit 1
