"""``python -m soundseek.server [--index PATH] [--host H] [--port N]`` (same as ``soundseek serve``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .app import serve
from .cli import config_for_host, config_options, default_index, startup_problem


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m soundseek.server", description=__doc__)
    parser.add_argument("--index", help="index folder (made by `soundseek index`; default: $SOUNDSEEK_INDEX or "
                        ".soundseek)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--allow-origin", action="append", help="web origin allowed to call the API (repeatable)")
    parser.add_argument("--allowed-host", action="append", help="extra Host name to answer to (repeatable)")
    parser.add_argument("--header-timeout", type=float, default=10.0, help="seconds to send request headers")
    parser.add_argument("--body-timeout", type=float, default=10.0,
                        help="seconds a request body may pause (the whole body: 3x this + 1 s per 64 KiB)")
    parser.add_argument("--keep-alive", type=float, default=5.0, help="idle keep-alive seconds")
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    index = Path(args.index) if args.index else default_index()
    problem = startup_problem(index, args.host, args.port)
    if problem:
        print(problem, file=sys.stderr)
        raise SystemExit(1)
    options = config_options(args.allow_origin, args.allowed_host, args.header_timeout, args.keep_alive,
                             args.workers, args.body_timeout)
    config = config_for_host(args.host, options) if options else None
    serve(index, host=args.host, port=args.port, config=config, log_level=args.log_level)


if __name__ == "__main__":
    main()
