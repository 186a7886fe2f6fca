#!/usr/bin/env bash
# Make a Docker-API-compatible engine (podman) available for the local container runner and its tests.
#
# Idempotent, non-interactive, run as root (CI machines and the dev container are root):
#   1. apt-get install podman, runc and busybox-static when one of them is missing;
#   2. write .work/containers.conf (runc runtime, no network namespace by default, rlimits that work here);
#   3. start `podman system service --time=0 unix://<root>/.work/podman.sock` in the background unless it answers;
#   4. build the offline test image localhost/busybox:test from Debian's busybox-static (no registry needed);
#   5. write .work/podman.env (DOCKER_HOST=..., CONTAINERS_CONF=...) and print the DOCKER_HOST line.
#
# Usage: scripts/setup_podman.sh            (then: set -a; . .work/podman.env; set +a)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${PODMAN_WORK_DIR:-$ROOT/.work}"
SOCK="$WORK/podman.sock"
CONF="$WORK/containers.conf"
ENV_FILE="$WORK/podman.env"
IMAGE="localhost/busybox:test"
LOG="$WORK/podman-service.log"

mkdir -p "$WORK"

if [ "$(id -u)" -ne 0 ]; then
    echo "setup_podman.sh: must run as root (podman runs rootful here)" >&2
    exit 1
fi

# 1. packages ---------------------------------------------------------------------------------------
missing=()
for pkg in podman runc busybox-static; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. containers.conf --------------------------------------------------------------------------------
# crun fails here on rlimits and hybrid cgroups: use runc; the bridge network leaves NAT rules: no netns.
cat > "$CONF.tmp" <<'EOF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "none"

[engine]
runtime = "runc"
EOF
if ! cmp -s "$CONF.tmp" "$CONF" 2>/dev/null; then mv "$CONF.tmp" "$CONF"; else rm -f "$CONF.tmp"; fi
export CONTAINERS_CONF="$CONF"

# 3. the API service --------------------------------------------------------------------------------
sock_alive() {
    python3 - "$SOCK" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(2)
s.connect(sys.argv[1])
s.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
data = s.recv(64)
sys.exit(0 if b" 200 " in data else 1)
EOF
}

if ! sock_alive; then
    rm -f "$SOCK"
    # setsid + nohup: the service outlives this script and the shell that ran it.
    setsid nohup env CONTAINERS_CONF="$CONF" podman system service --time=0 "unix://$SOCK" >"$LOG" 2>&1 < /dev/null &
    echo $! > "$WORK/podman-service.pid"
    for _ in $(seq 1 100); do
        sock_alive && break
        sleep 0.1
    done
    if ! sock_alive; then
        echo "setup_podman.sh: podman service did not come up; see $LOG" >&2
        exit 1
    fi
fi

# 4. offline test image -----------------------------------------------------------------------------
if ! podman image exists "$IMAGE"; then
    BUILD="$(mktemp -d)"
    trap 'rm -rf "$BUILD"' EXIT
    mkdir -p "$BUILD/rootfs/bin" "$BUILD/rootfs/tmp" "$BUILD/rootfs/etc" "$BUILD/rootfs/proc" \
             "$BUILD/rootfs/sys" "$BUILD/rootfs/dev" "$BUILD/rootfs/root"
    chmod 1777 "$BUILD/rootfs/tmp"
    cp /bin/busybox "$BUILD/rootfs/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$BUILD/rootfs/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$BUILD/rootfs/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' > "$BUILD/rootfs/etc/group"
    tar -C "$BUILD/rootfs" -cf "$BUILD/rootfs.tar" .
    podman import --quiet --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' "$BUILD/rootfs.tar" "$IMAGE" >/dev/null
fi

# 5. where to find it -------------------------------------------------------------------------------
printf 'DOCKER_HOST=unix://%s\nCONTAINERS_CONF=%s\n' "$SOCK" "$CONF" > "$ENV_FILE"
echo "DOCKER_HOST=unix://$SOCK"
