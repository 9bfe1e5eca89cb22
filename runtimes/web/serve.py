#!/usr/bin/env python3
"""Serve the LRF web page and a bundle on 127.0.0.1 (Python standard library only).

    python serve.py --bundle /path/to/onnx-bundle [--port 8000] [--mount /other/=DIR ...]

Routes: ``/bundle/`` -> ``--bundle DIR``; ``/ort/`` -> onnxruntime-web's ``dist/`` in
``node_modules`` (run ``npm ci`` first); ``--mount /PREFIX/=DIR`` adds more directories (the
end-to-end test serves a tampered copy of the bundle that way); everything else -> this
directory's page (``index.html``, ``style.css``, ``src/``).

Every response carries ``Cross-Origin-Opener-Policy: same-origin`` and
``Cross-Origin-Embedder-Policy: require-corp``: that makes the page cross-origin isolated,
which is what gives it ``SharedArrayBuffer`` and so onnxruntime-web's wasm threads.
``--port 0`` picks a free port; the first line on stdout is ``serving http://127.0.0.1:PORT/``.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

HERE = Path(__file__).resolve().parent
ORT_DIST = HERE / "node_modules" / "onnxruntime-web" / "dist"
# Only the page itself is served from HERE, not node_modules, tests or this script.
PAGE_FILES = {"index.html", "style.css", "screenshot.png", "README.md"}
PAGE_DIRS = {"src"}

MIME = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".wasm": "application/wasm",
    ".onnx": "application/octet-stream",
    ".bin": "application/octet-stream",
    ".png": "image/png",
    ".md": "text/markdown; charset=utf-8",
}


class Handler(SimpleHTTPRequestHandler):
    """Static files from a fixed set of mounts, isolation headers on every response, no caching."""

    mounts: list[tuple[str, Path]] = []  # (url prefix ending in "/", directory), longest prefix first
    quiet = True

    def translate_path(self, path: str) -> str:
        url = unquote(urlsplit(path).path)
        for prefix, root in self.mounts:
            if url.startswith(prefix):
                return self._inside(root, url[len(prefix):])
        target = self._inside(HERE, url.lstrip("/") or "index.html")
        parts = Path(target).relative_to(HERE.resolve()).parts if target else ()
        if (len(parts) == 1 and parts[0] in PAGE_FILES) or (len(parts) > 1 and parts[0] in PAGE_DIRS):
            return target
        return ""  # anything else is a 404

    @staticmethod
    def _inside(root: Path, rel: str) -> str:
        target = (root / rel).resolve()
        try:
            target.relative_to(root.resolve())
        except ValueError:  # ../ out of the mount
            return ""
        return str(target)

    def send_head(self):
        path = self.translate_path(self.path)
        if not path or Path(path).is_dir():  # no directory listings
            self.send_error(HTTPStatus.NOT_FOUND, "not found")
            return None
        return super().send_head()

    def guess_type(self, path) -> str:
        return MIME.get(Path(str(path)).suffix.lower(), "application/octet-stream")

    def end_headers(self) -> None:
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args) -> None:
        if not self.quiet:
            super().log_message(format, *args)


def parse_mount(spec: str) -> tuple[str, Path]:
    prefix, sep, directory = spec.partition("=")
    if not sep or not prefix.startswith("/"):
        raise argparse.ArgumentTypeError(f"--mount {spec!r}: use /PREFIX/=DIR")
    return "/" + prefix.strip("/") + "/", Path(directory)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Serve the LRF web page and a bundle (COOP/COEP, 127.0.0.1 only).")
    p.add_argument("--bundle", required=True, help="an ONNX bundle directory (from lrf-export --target onnx)")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    p.add_argument("--mount", type=parse_mount, action="append", default=[], metavar="/PREFIX/=DIR",
                   help="serve another directory too (repeatable)")
    p.add_argument("--verbose", action="store_true", help="log every request")
    args = p.parse_args(argv)
    bundle = Path(args.bundle)
    if not (bundle / "manifest.json").is_file():
        p.error(f"{bundle} is not a bundle (no manifest.json); export one with lrf-export --target onnx")
    if not ORT_DIST.is_dir():
        p.error(f"{ORT_DIST} is missing; run `npm ci` in {HERE}")
    for _, d in args.mount:
        if not d.is_dir():
            p.error(f"--mount directory {d} does not exist")
    mounts = [("/bundle/", bundle), ("/ort/", ORT_DIST), *args.mount]
    handler = type("LRFHandler", (Handler,), {"mounts": sorted(mounts, key=lambda m: -len(m[0])), "quiet": not args.verbose})
    server = ThreadingHTTPServer(("127.0.0.1", args.port), partial(handler, directory=str(HERE)))
    print(f"serving http://127.0.0.1:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())
