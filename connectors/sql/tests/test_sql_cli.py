"""The sql connector driven by the real command line: a batch of erasures, receipts verified."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from sql_fixtures import Db, numbered_shop

N = 300  # customers; the even ones ask for erasure, in one batch


def cli(*args: str, config: Path, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ERASURE_CONFIG", "ERASURE_BLOCK_PLUGINS")}
    env.update(SHOP_URL=url, COLUMNS="250", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "erasure.cli", *args, "-c", str(config)],
                          capture_output=True, text=True, timeout=120, env=env)


def test_a_batch_of_erasures_through_the_cli(db: Db, tmp_path: Path) -> None:
    numbered_shop(db, N, 3)
    schema = f'schema = "{db.schema}"\n' if db.schema else ""
    config = tmp_path / "erasure.toml"
    config.write_text(
        '[erasure]\nstate_dir = "state"\nbatch_size = 500\n\n'
        '[systems.shop]\nconnector = "sql"\nurl = { env = "SHOP_URL" }\n' + schema +
        "\n[systems.shop.tables.customers]\nidentifiers = { email = \"email\" }\n"
        "\n[systems.shop.tables.orders]\n", encoding="utf-8")
    requests = tmp_path / "requests.csv"
    with requests.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["type", "email", "verified"])
        out.writerows(["erasure", f"User{c}@Example.org", "yes"] for c in range(0, N, 2))
    imported = cli("request", "import", str(requests), config=config, url=db.url)
    assert imported.returncode == 0, imported.stderr
    run = cli("run", config=config, url=db.url)
    assert run.returncode == 0, run.stdout + run.stderr
    assert {r["id"] for r in db.rows("customers")} == set(range(1, N, 2))
    assert {r["customer_id"] for r in db.rows("orders")} == set(range(1, N, 2))
    assert len(db.rows("orders")) == 3 * (N // 2)
    verified = cli("receipts", "verify", config=config, url=db.url)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    status = cli("status", config=config, url=db.url)
    assert status.returncode == 0
    assert "user0@example.org" not in status.stdout + run.stdout + run.stderr
