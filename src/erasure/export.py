"""Access and portability packages: one zip per request, readable by a person and a machine.

The zip holds ``<system>.json`` per system, ``<system>/<kind>.csv`` per record type and an
``index.html`` summary. It is written with 0600 permissions, atomically. A CSV cell (or
header) that a spreadsheet would run as a formula gets a leading ``'`` (:func:`csv_cell`);
the JSON files keep every value exactly.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
import zipfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .files import private_dir

__all__ = ["FILES_KEY", "csv_cell", "json_safe", "write_package"]

#: A record's key holding files for the package, ``{name: base64 content}`` (a connector's
#: original items, e.g. messages as .eml); they are written to ``<system>/<kind>/<name>``
#: and the record lists their paths under ``files``.
FILES_KEY = "_files"

#: One exported item as the package holds it: (record kind, JSON-safe data).
Exported = tuple[str, Mapping[str, Any]]


def json_safe(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_safe(v) for v in value]
    return str(value)


#: what makes a spreadsheet read a cell as a formula (OWASP, "CSV Injection"); a value
#: is personal data that anyone may have typed, e.g. ``=HYPERLINK("http://evil", "x")``
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text: a string beginning with a formula
    prefix gets a leading ``'``; numbers, booleans and other strings are left as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "_"


def write_package(
    folder: Path,
    request_id: str,
    request_type: str,
    records_by_system: Mapping[str, Sequence[Exported]],
    *,
    generated_at: str,
    password: str | None = None,
) -> Path:
    """Write the package for one request and return its path.

    The same records always give the same files: records are ordered by kind and content,
    so a resumed run rewrites the package it would have written uninterrupted.
    """
    records_by_system = {
        system: sorted(((kind, json_safe(dict(data))) for kind, data in records),
                       key=lambda r: (r[0], json.dumps(r[1], sort_keys=True)))
        for system, records in records_by_system.items()
    }
    private_dir(folder)
    path = folder / f"{_safe_name(request_id)}.zip"
    tmp = folder / f".{path.name}.tmp"
    buf = io.BytesIO()
    summary: list[tuple[str, str, int]] = []
    # Entries are dated by generated_at, not the clock: the same records and time give the
    # same bytes, so a resumed run's package is the one the first run would have written.
    stamp = max((1980, 1, 1, 0, 0, 0),  # the oldest date a zip entry can hold
                tuple(int(p) for p in generated_at.replace("T", "-").replace(":", "-")
                      .split(".")[0].split("-")[:6]))
    if password:  # AES-256 (WinZip AE-2), which 7-Zip and most archive tools open
        import pyzipper
        archive: zipfile.ZipFile = pyzipper.AESZipFile(
            buf, "w", compression=zipfile.ZIP_DEFLATED, encryption=pyzipper.WZ_AES)
        archive.setpassword(password.encode())
    else:
        archive = zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED)
    with archive as zip_file:
        zf = _Dated(zip_file, stamp)
        for system in sorted(records_by_system):
            records = records_by_system[system]
            by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for kind, data in records:
                row = dict(data)
                # FILES_KEY: files of the record (an .eml), written beside the index
                files = row.pop(FILES_KEY, None) or {}
                for fname, content in sorted(files.items()):
                    where = f"{_safe_name(system)}/{_safe_name(kind)}/{_safe_name(fname)}"
                    zf.writebytes(where, base64.b64decode(content))
                    row.setdefault("files", []).append(where)
                by_kind[kind].append(row)
            zf.writestr(
                f"{_safe_name(system)}.json",
                json.dumps({"system": system, "records": by_kind}, indent=2, sort_keys=True),
            )
            for kind, rows in sorted(by_kind.items()):
                summary.append((system, kind, len(rows)))
                columns = sorted({k for row in rows for k in row})
                out = io.StringIO()
                writer = csv.writer(out)
                writer.writerow([csv_cell(c) for c in columns])
                for row in rows:
                    cells = (row.get(k) for k in columns)
                    writer.writerow([csv_cell(json.dumps(v) if isinstance(v, dict | list) else v)
                                     for v in cells])
                zf.writestr(f"{_safe_name(system)}/{_safe_name(kind)}.csv", out.getvalue())
        zf.writestr("index.html", _index_html(request_id, request_type, summary,
                                              records_by_system, generated_at))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


class _Dated:
    """Writes zip entries with one fixed date."""

    def __init__(self, zf: zipfile.ZipFile, stamp: tuple[int, ...]) -> None:
        self.zf, self.stamp = zf, stamp

    def writestr(self, name: str, data: str) -> None:
        self.writebytes(name, data.encode("utf-8"))

    def writebytes(self, name: str, data: bytes) -> None:
        # the archive's own ZipInfo class: pyzipper's (encrypted packages) is not zipfile's
        info_class = getattr(self.zf, "zipinfo_cls", zipfile.ZipInfo)
        info = info_class(name, date_time=self.stamp)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o600 << 16
        self.zf.writestr(info, data)


def _index_html(
    request_id: str,
    request_type: str,
    summary: list[tuple[str, str, int]],
    records_by_system: Mapping[str, Sequence[Exported]],
    generated_at: str,
) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html lang=en><meta charset=utf-8>",
        f"<title>Your data - request {e(request_id)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #999;padding:.3em .6em}</style>",
        f"<h1>Your personal data</h1><p>Request {e(request_id)} ({e(request_type)}), "
        f"prepared {e(generated_at)} UTC. Each system's data is also in this archive as JSON "
        "and CSV files for reuse elsewhere (GDPR Art. 20).</p>",
        "<h2>Summary</h2><table><tr><th>System</th><th>Record type</th><th>Records</th></tr>",
    ]
    for system, kind, n in summary:
        parts.append(f"<tr><td>{e(system)}</td><td>{e(kind)}</td><td>{n}</td></tr>")
    parts.append("</table>")
    if not summary:
        parts.append("<p>No personal data about you was found in any system.</p>")
    for system in sorted(records_by_system):
        for kind, data in records_by_system[system]:
            parts.append(f"<h3>{e(system)}: {e(kind)}</h3><table>")
            for k, v in sorted(dict(data).items()):
                if k == FILES_KEY:
                    continue
                parts.append(f"<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>")
            parts.append("</table>")
    parts.append("</html>")
    return "\n".join(parts)
