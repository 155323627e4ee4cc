"""``python -m soundseek.server --index PATH [--host H] [--port N]`` (same as ``soundseek serve``)."""

from __future__ import annotations

import argparse

from .app import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m soundseek.server", description=__doc__)
    parser.add_argument("--index", required=True, help="index folder (made by `soundseek index`)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    serve(args.index, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
