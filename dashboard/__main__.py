"""``python -m dashboard``: serve the QA dashboard on the embedded model and the built-in sample set.

Exit codes: 0 after a clean shutdown (Ctrl-C or SIGTERM once it serves), 2 for bad arguments (one line on stderr,
no traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from asr import logs
from asr.signals import Interrupted, stop_signals
from dashboard import closing
from dashboard.config import (
    DEFAULT_LIVE_LIMIT_S,
    DEFAULT_LIVE_SESSIONS,
    DEFAULT_MAX_UPLOAD_MB,
    DashboardConfig,
)
from evaluation.store import DEFAULT_DATA_DIR

logger = logging.getLogger("dashboard")


def parse_auth(values: Sequence[str]) -> list[tuple[str, str]]:
    """``user:password`` pairs, or files holding one pair a line (blank lines and ``#`` comments skipped)."""
    pairs: list[tuple[str, str]] = []
    for value in values:
        path = Path(value).expanduser()
        if path.is_file():
            lines = [(f"{path}:{n}", line.strip()) for n, line in enumerate(path.read_text().splitlines(), 1)]
            lines = [(where, line) for where, line in lines if line and not line.startswith("#")]
            if not lines:  # no user at all: Gradio served every page to anyone, no login asked
                raise ValueError(
                    f"--auth {value}: the file holds no user:password line (without one the dashboard would ask no login)"
                )
        elif ":" not in value:  # a mistyped file name said "expected user:password", nothing of the file
            raise ValueError(f"--auth: expected user:password or a file of such lines; there is no file {value!r}")
        else:
            lines = [("--auth", value)]
        for where, line in lines:
            user, sep, password = line.partition(":")
            if not sep or not user.strip() or not password:
                raise ValueError(f"{where}: expected user:password (or a file of such lines), got {line!r}")
            pairs.append((user.strip(), password))
    return pairs


def check_listen(host: str, port: int) -> None:
    """Raise ValueError with one line unless ``host:port`` can be listened on now.

    Checked before the store opens and the model loads: a port out of range, a host that is no address of this
    machine or a port already taken (a second ``make run``) was Gradio's traceback after the start-up, the last
    advising its ``GRADIO_SERVER_PORT`` variable and a ``launch()`` parameter a tester never sees.
    """
    if not 0 < port < 65536:
        raise ValueError(f"--port must be 1 to 65535, not {port}")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # [::1], as a browser writes it
    try:
        family, kind, proto, _, address = socket.getaddrinfo(bare, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise ValueError(f"--host {host}: not an address this machine can listen on ({exc.strerror})") from exc
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: a closed port is free
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ValueError(
                    f"--port {port}: {host}:{port} is already in use (another dashboard?); "
                    "stop it or pick another port with --port (make run PORT=...)"
                ) from exc
            if exc.errno == errno.EADDRNOTAVAIL:
                raise ValueError(f"--host {host}: not an address of this machine ({exc.strerror})") from exc
            raise ValueError(f"--host {host} --port {port}: cannot listen there ({exc.strerror})") from exc


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dashboard", description="The asr-qa dashboard (Gradio).")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for the whole network)"
    )
    p.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860)")
    p.add_argument(
        "--auth",
        action="append",
        default=[],
        metavar="USER:PASSWORD|FILE",
        help="require a login; repeat for several users, or give a file with one user:password a line",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        metavar="DIR",
        help=f"store and audio folder (default {DEFAULT_DATA_DIR})",
    )
    p.add_argument(
        "--dataset-root",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="a folder Validate may read datasets from (repeat for several); the data folder and the built-in sets "
        "are always readable",
    )
    p.add_argument(
        "--max-upload-mb",
        type=float,
        default=DEFAULT_MAX_UPLOAD_MB,
        help=f"largest upload accepted, in MB (default {DEFAULT_MAX_UPLOAD_MB:g})",
    )
    p.add_argument(
        "--live-limit",
        type=float,
        default=DEFAULT_LIVE_LIMIT_S,
        help=f"seconds a live session may run (default {DEFAULT_LIVE_LIMIT_S:g})",
    )
    p.add_argument(
        "--live-sessions",
        type=int,
        default=DEFAULT_LIVE_SESSIONS,
        help=f"live streams served at once; more wait in a queue (default {DEFAULT_LIVE_SESSIONS})",
    )
    p.add_argument("--enable-monitoring", action="store_true", help="serve Gradio's /monitoring page")
    p.add_argument("--no-preload", action="store_true", help="load the default model on first use, not at start")
    p.add_argument("--debug", action="store_true", help="log details")
    return p


def _preload() -> None:
    """Load the default model in the background so the first tester does not wait for it."""
    from asr.backends import DEFAULT_BACKEND, get_backend
    from asr.models import default_model

    try:
        get_backend(default_model(), DEFAULT_BACKEND)
    except Exception:  # noqa: BLE001 - the pages report the same error when a tester uses the model
        logger.exception("could not preload %s", default_model())


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs.configure(logging.DEBUG if args.debug else logging.INFO, "%(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up requests
    try:
        auth = parse_auth(args.auth)
        check_listen(args.host, args.port)
        config = DashboardConfig(
            data_dir=args.data_dir,
            max_upload_mb=args.max_upload_mb,
            live_limit_s=args.live_limit,
            live_sessions=args.live_sessions,
            enable_monitoring=args.enable_monitoring,
            dataset_roots=tuple(args.dataset_root),
            host=args.host,
        ).validate()
        from dashboard import upkeep
        from dashboard.shared import get_store

        try:
            store = get_store(config.data_dir)  # creates the folder and the database now: a bad --data-dir fails here
        except OSError as exc:  # it said "[Errno 20] Not a directory: 'FILE/audio'", a path nobody typed
            a_file = config.data_dir.is_file()
            problem = "is a file; give a folder for the store" if a_file else f"cannot be used ({exc.strerror or exc})"
            raise ValueError(f"--data-dir {args.data_dir}: {problem}") from exc
        upkeep.use_private_gradio_dir(config)  # before the app is built: Gradio reads it then
        upkeep.start(config, store)
    except (OSError, ValueError) as exc:
        print(f"python -m dashboard: {exc}", file=sys.stderr)
        return 2
    from dashboard.app import build_demo

    demo = build_demo(config)
    if not args.no_preload:
        threading.Thread(target=_preload, name="preload-model", daemon=True).start()
    logger.info("data folder: %s", config.data_dir)
    with stop_signals(_cancel_runs):  # SIGTERM (kill, systemd, docker stop) closes as Ctrl-C does: it was killed
        try:
            _serve(demo, args, auth, config)
        except KeyboardInterrupt:  # while the server started (block_thread closes it on one that comes after)
            demo.close()
        _wait_for_runs()
    return 0


def _cancel_runs(signum: int) -> None:
    """Ctrl-C or SIGTERM: the Validate runs under way are cancelled at once, so that they stop (after the model call
    in progress) while the server closes; a second signal stops the close, at once."""
    closing.cancel_runs()
    raise Interrupted(signum)


def _wait_for_runs() -> None:
    if closing.cancel_runs():
        logger.info("closing: waiting for the validation runs to stop after the model call in progress")
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C or SIGTERM again: at once
            if not closing.wait_for_runs():
                logger.warning("closing: a validation run did not stop within %g s", closing.CLOSE_WAIT_S)


def _serve(demo, args: argparse.Namespace, auth: list[tuple[str, str]], config: DashboardConfig) -> None:
    """Start the server and serve until Ctrl-C or SIGTERM (Gradio's block_thread closes the server on either)."""
    from dashboard.app import launch_kwargs

    demo.launch(
        server_name=args.host,
        server_port=args.port,
        auth=auth or None,
        auth_message="asr-qa: log in with the user name and password you were given." if auth else None,
        quiet=True,  # Gradio's "To create a public link, set `share=True` in `launch()`" is advice for its API
        prevent_thread_lock=True,
        **launch_kwargs(config),
    )
    everywhere = " (every address of this machine)" if args.host in ("0.0.0.0", "::") else ""
    logger.info("serving on %s%s; Ctrl-C stops it", demo.local_url.rstrip("/"), everywhere)
    demo.block_thread()


if __name__ == "__main__":
    sys.exit(main())
