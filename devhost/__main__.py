"""`python -m devhost [--port 7071] [--app-dir .] [--module function_app]`: serve an app until Ctrl-C.

Local/test host only (production runs on the real Functions host). Prints the HTTP routes like `func start`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from devhost import DevHost


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost", description="Local host for the function app")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--app-dir", default=".")
    parser.add_argument("--module", default="function_app")
    parser.add_argument("--worker-id", default=None, help="stable id: a restart with the same id resumes at once")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("azure", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    app_dir = Path(args.app_dir).resolve()
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    host = DevHost(app_dir=app_dir, module=args.module, port=args.port, worker_id=args.worker_id)
    host.start()
    print(f"\nFunctions (devhost, local only) on {host.url}:\n")
    for name, methods, url in host.routes():
        print(f"        {name}: [{methods}] {url}")
    others = [f for f in host.functions.all if f.trigger_type != "httpTrigger"]
    for info in others:
        print(f"        {info.name}: {info.trigger_type}")
    for name, errors in host.function_errors.items():  # left out, as the real host leaves them out
        print(f"        {name}: refused: {'; '.join(errors)}")
    print("\nPress Ctrl+C to stop.", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        while not done.wait(0.5):
            pass
    finally:
        host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
