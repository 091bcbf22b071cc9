"""Access and portability packages: one zip per request, readable by a person and a machine.

The zip holds ``package.json`` (the whole package in one documented format:
docs/package.md, docs/package.schema.json), ``<system>.json`` per system,
``<system>/<kind>.csv`` per record type and an ``index.html`` page for the person: the
Art. 15 statement (controller, and per system its purposes, legal basis, recipients...)
and their data, one section per system, with the labels config gives. A portability
package holds only the fields each system marks ``portable`` (Art. 20: what the person
provided or generated; default every field). It is written with 0600 permissions,
atomically. A CSV cell (or header) that a spreadsheet would run as a formula gets a
leading ``'`` (:func:`csv_cell`); the JSON files keep every value exactly.
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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .files import private_dir

if TYPE_CHECKING:
    from .statement import ControllerStatement, SystemStatement

__all__ = ["FILES_KEY", "PACKAGE_FORMAT", "PackageInfo", "csv_cell", "json_safe", "write_package"]

#: ``format`` of package.json; a change that breaks readers changes the number
PACKAGE_FORMAT = "erasure-package/1"


@dataclass(frozen=True)
class PackageInfo:
    """What config says about the processing (the Art. 15 statement), the fields' labels
    and which fields are portable; from ``[controller]`` and ``[systems.X.statement]``."""

    controller: ControllerStatement
    systems: Mapping[str, SystemStatement]

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
    info: PackageInfo | None = None,
) -> Path:
    """Write the package for one request and return its path.

    The same records always give the same files: records are ordered by kind and content,
    so a resumed run rewrites the package it would have written uninterrupted.
    """
    from .statement import ControllerStatement, package_statement

    info = info or PackageInfo(ControllerStatement(), {})
    records_by_system = {
        system: sorted(((kind, _portable(info, system, request_type, json_safe(dict(data))))
                        for kind, data in records),
                       key=lambda r: (r[0], json.dumps(r[1], sort_keys=True)))
        for system, records in records_by_system.items()
    }
    statement = package_statement(info.controller, info.systems, list(records_by_system))
    whole: dict[str, Any] = {"format": PACKAGE_FORMAT, "request": request_id,
                             "request_type": request_type, "generated_at": generated_at,
                             "statement": statement, "systems": {}}
    private_dir(folder)
    path = folder / f"{_safe_name(request_id)}.zip"
    tmp = folder / f".{path.name}.tmp"
    buf = io.BytesIO()
    summary: list[tuple[str, str, int]] = []
    # Entries are dated by generated_at, not the clock: the same records and time give the
    # same bytes, so a resumed run's package is the one the first run would have written.
    y, mo, d, h, mi, s = (int(p) for p in generated_at.replace("T", "-").replace(":", "-")
                          .split(".")[0].split("-")[:6])
    stamp = max((1980, 1, 1, 0, 0, 0), (y, mo, d, h, mi, s))  # the oldest a zip entry holds
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
            whole["systems"][system] = {"records": by_kind}
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
        zf.writestr("package.json", json.dumps(whole, indent=2, sort_keys=True))
        zf.writestr("index.html", _index_html(request_id, request_type, summary,
                                              whole["systems"], generated_at, info))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


class _Dated:
    """Writes zip entries with one fixed date."""

    def __init__(self, zf: zipfile.ZipFile, stamp: tuple[int, int, int, int, int, int]
                 ) -> None:
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


def _portable(info: PackageInfo, system: str, request_type: str,
              data: dict[str, Any]) -> dict[str, Any]:
    """A portability package's record holds only the system's portable fields (Art. 20);
    an access package's holds everything (Art. 15)."""
    st = info.systems.get(system)
    if request_type != "portability" or st is None or not st.portable:
        return data
    keep = set(st.portable)
    return {k: v for k, v in data.items()
            if k in keep or (k == FILES_KEY and "files" in keep)}


def _shown(value: Any) -> str:
    """A value as a person reads it: no ``None``, ``True`` or ``[...]``."""
    if value is None or value == "" or value == []:
        return "not recorded"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_shown(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_shown(v)}" for k, v in sorted(value.items()))
    return str(value)


def _index_html(
    request_id: str,
    request_type: str,
    summary: list[tuple[str, str, int]],
    systems: Mapping[str, Mapping[str, Any]],
    generated_at: str,
    info: PackageInfo,
) -> str:
    from .statement import ControllerStatement, SystemStatement

    e = html.escape
    parts = [
        "<!doctype html><html lang=en><meta charset=utf-8>",
        f"<title>Your data - request {e(request_id)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse;margin-bottom:1em}"
        "td,th{border:1px solid #999;padding:.3em .6em;text-align:left;vertical-align:top}"
        ".missing{color:#a00}</style>",
        f"<h1>Your personal data</h1><p>Request {e(request_id)} ({e(request_type)}), "
        f"prepared {e(generated_at)} UTC. Each system's data is also in this archive as JSON "
        "(package.json, one file per system) and CSV files for reuse elsewhere "
        "(GDPR Art. 20).</p>",
        "<section id=controller><h2>Who processes your data</h2><table>",
    ]

    def row(label: str, value: Any, key: str) -> str:
        if value in (None, "", [], ()):
            return (f"<tr data-key={e(key)}><th>{e(label)}</th><td class=missing>"
                    "not stated (ask the data protection officer)</td></tr>")
        if isinstance(value, list | tuple):
            items = "".join(f"<li>{e(str(v))}</li>" for v in value)
            return f"<tr data-key={e(key)}><th>{e(label)}</th><td><ul>{items}</ul></td></tr>"
        return f"<tr data-key={e(key)}><th>{e(label)}</th><td>{e(_shown(value))}</td></tr>"

    for key, label in ControllerStatement.FIELDS:
        parts.append(row(label, getattr(info.controller, key), key))
    parts.append("</table></section>")
    parts.append("<h2>Summary</h2><table><tr><th>System</th><th>Record type</th>"
                 "<th>Records</th></tr>")
    for system, kind, n in summary:
        shown = info.systems[system].labels.get(kind, kind) if system in info.systems else kind
        parts.append(f"<tr><td>{e(system)}</td><td>{e(shown)}</td><td>{n}</td></tr>")
    parts.append("</table>")
    if not summary:
        parts.append("<p>No personal data about you was found in any system.</p>")
    for system in sorted(systems):
        st = info.systems.get(system, SystemStatement())
        labels = st.labels
        parts.append(f"<section id=\"system-{e(_safe_name(system))}\"><h2>{e(system)}</h2>"
                     "<h3>About this processing</h3><table>")
        for key, label, value in st.shown():
            parts.append(row(label, value, key))
        parts.append("</table>")
        for kind, rows in sorted(systems[system]["records"].items()):
            for data in rows:
                parts.append(f"<h3>{e(labels.get(kind, kind))}</h3><table>")
                for k, v in sorted(data.items()):
                    parts.append(f"<tr><th>{e(labels.get(k, k))}</th><td>{e(_shown(v))}</td></tr>")
                parts.append("</table>")
        parts.append("</section>")
    parts.append("</html>")
    return "\n".join(parts)
