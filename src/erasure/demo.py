"""``erasure demo``: the main job on local systems, end to end, in a folder of its own.

Seeds a CRM, a helpdesk, a mail archive and a tax archive (file-backed in-memory systems),
plus a SQLite shop database when the ``sql`` connector is installed, a Maildir (mail on
both sides of the 12-month retention) when the ``mail`` connector is, and a telecom
carrier told by email through an SMTP server on 127.0.0.1 when ``notify`` (and aiosmtpd)
is; with the ``salesforce`` connector installed the CRM is its fake Salesforce org on
127.0.0.1 (the real simple-salesforce talks to it; erased through Bulk API 2.0 jobs), and with the
``zendesk`` connector the helpdesk is its fake Zendesk API (the real zenpy talks to it;
tickets deleted through job statuses); then
finds, exports and erases one sample subject, corrects another's phone and records his
objection to marketing, records the carrier's confirmation, sweeps mail past retention, and
verifies the signed receipts. A lookalike address and a household
member sharing the subject's phone are seeded too: they must survive.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import zipfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .config import load_config
from .heads import head_line, ledger_export, verify_export
from .models import Capability, RequestType
from .orchestrator import Orchestrator, RequestSpec
from .plugins import PluginHost
from .testing.memory import MemoryConnector

__all__ = ["run_demo"]

SUBJECT = (("email", "alice@example.com"), ("customer_id", "C-1001"))

CONFIG = """\
# Written by `erasure demo`. Every system here is local.
[erasure]
state_dir = "state"
export_dir = "exports"
strong_identifiers = ["email", "customer_id"]
{crm}{helpdesk}
[systems.mail-archive]
connector = "memory"
path = "{root}/mail.json"

[systems.tax-archive]
connector = "memory"
path = "{root}/tax.json"
policy = "retain"
reason = "invoices kept 10 years (tax law)"
"""

MEMORY_HELPDESK = """
[systems.helpdesk]
connector = "memory"
path = "{root}/helpdesk.json"
"""

MEMORY_CRM = """
[systems.crm]
connector = "memory"
path = "{root}/crm.json"
"""

ID_SPACES = """
# Customer numbers mean the same customer in these systems, and only there.
[id_spaces.customer]
type = "customer_id"
systems = [{systems}]
"""

SQL_CONFIG = """
[systems.shop-db]
connector = "sql"
url = "sqlite:///{root}/shop.db"

[systems.shop-db.tables.customers]
identifiers = {{ email = "email", phone = "phone", customer_id = "customer_no" }}
action = "delete"
opt_out = {{ marketing = {{ marketing_ok = 0 }} }}

[systems.shop-db.tables.orders]
action = "delete"

[systems.shop-db.tables.invoices]
action = "anonymise"
anonymise = {{ billing_email = "placeholder", billing_name = "null" }}
"""

MAIL_CONFIG = """
[systems.mailbox]
connector = "mail"
backend = "maildir"
path = "{root}/Maildir"
retention_months = 12
"""

# (folder, from, to, subject, age in days): mail older than 12 months goes in the sweep
MAILDIR = [
    ("INBOX", "alice@example.com", "orders@shop.example", "Where is my kettle?", 20),
    ("INBOX", "jimalice@example.com", "orders@shop.example", "Hello", 30),
    ("INBOX", "dave@example.org", "orders@shop.example", "Old complaint", 500),
    ("Sent", "orders@shop.example", "erin@example.org", "Re: old order", 420),
    ("Sent", "orders@shop.example", "frank@example.org", "Your order", 10),
]


def _seed_maildir(root: Path) -> None:
    """A Maildir with mail on both sides of the 12-month retention edge."""
    import mailbox
    import os
    import time

    box = mailbox.Maildir(root / "Maildir", create=True)
    for folder, sender, to, subject, days in MAILDIR:
        sub = box if folder == "INBOX" else (
            box.get_folder(folder) if folder in box.list_folders() else box.add_folder(folder))
        when = time.time() - days * 86400
        msg = (f"From: {sender}\nTo: {to}\nSubject: {subject}\nDate: "
               f"{time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime(when))}\n\n"
               "Hello.\n")
        key = sub.add(mailbox.MaildirMessage(msg.encode()))
        # arrival time = mtime; a new message is <folder>/new/<key>
        path = Path(sub._path) / "new" / key  # noqa: SLF001
        os.utime(path, (when, when))


SHOP_SQL = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, customer_no TEXT UNIQUE, email TEXT NOT NULL,
                        phone TEXT, full_name TEXT, marketing_ok INTEGER NOT NULL DEFAULT 1);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL
                     REFERENCES customers(id), item TEXT, total NUMERIC);
CREATE TABLE invoices (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id)
                       ON DELETE SET NULL, billing_email TEXT UNIQUE, billing_name TEXT,
                       amount NUMERIC);
INSERT INTO customers (id, customer_no, email, phone, full_name)
  VALUES (1, 'C-1001', 'Alice@Example.com', '+4915112345678', 'Alice Example');
INSERT INTO customers (id, customer_no, email, phone, full_name)
  VALUES (2, 'C-1002', 'jimalice@example.com', '+4915199999999', 'Jim Alice');
INSERT INTO orders VALUES (10, 1, 'kettle', 39.90);
INSERT INTO orders VALUES (11, 1, 'teapot', 24.00);
INSERT INTO orders VALUES (12, 2, 'mug', 8.50);
INSERT INTO invoices VALUES (100, 1, 'alice@example.com', 'Alice Example', 63.90);
INSERT INTO invoices VALUES (101, 2, 'jimalice@example.com', 'Jim Alice', 8.50);
"""


def _seed(plugins: PluginHost, orch: Orchestrator, root: Path) -> None:
    phone = "+4915112345678"  # shared by Alice and Bob, who live together
    data = {
        "crm": {
            "contact/0031": ("contact", {"email": "alice@example.com", "phone": phone,
                                         "customer_id": "C-1001", "name": "Alice Example",
                                         "city": "Berlin"}),
            "contact/0032": ("contact", {"email": "jimalice@example.com", "name": "Jim Alice",
                                         "customer_id": "C-1002"}),
            "contact/0033": ("contact", {"email": "bob@example.net", "phone": phone,
                                         "name": "Bob Example"}),
        },
        "helpdesk": {
            "user/77": ("user", {"email": "alice@example.com", "name": "Alice Example"}),
            "ticket/501": ("ticket", {"email": "alice@example.com",
                                      "subject": "Where is my kettle?"}),
            "user/78": ("user", {"email": "jimalice@example.com", "name": "Jim Alice"}),
            "user/79": ("user", {"phone": phone, "name": "Bob Example"}),
            # the helpdesk's own customer number C-1001: another person, another id space
            "user/80": ("user", {"customer_id": "C-1001", "name": "Carol Example"}),
        },
        "mail-archive": {
            "INBOX/1001": ("message", {"email": "alice@example.com", "subject": "Order 10"}),
            "INBOX/1002": ("message", {"email": "jimalice@example.com", "subject": "Hello"}),
        },
        "tax-archive": {
            "invoice/2025-100": ("invoice", {"customer_id": "C-1001", "amount": "63.90"}),
        },
    }
    cls = plugins.registry.get("memory")
    assert cls is not None
    for system, items in data.items():
        if orch.systems[system].config.connector != "memory":
            continue  # the Salesforce CRM was seeded in its fake org
        orch.systems[system].connector().seed(items)  # type: ignore[attr-defined]
    if "mailbox" in orch.systems:
        _seed_maildir(root)
    if "shop-db" in orch.systems:
        db = sqlite3.connect(root / "shop.db")
        db.executescript(SHOP_SQL)
        db.commit()
        db.close()


SALESFORCE_CONFIG = """
[systems.crm]
connector = "salesforce"
instance_url = "{url}"
auth = "session"
session_id = {{ env = "ERASURE_DEMO_SF_SESSION" }}
poll_seconds = 0
"""


def _salesforce_demo() -> tuple[str, Any] | None:
    """The salesforce connector's fake org on 127.0.0.1 (its own testing module, shipped
    for tests and this demo): Alice with a case, a task and a campaign membership, Jim
    (lookalike address) and Bob (Alice's phone). None when it cannot be imported."""
    import importlib
    import os

    try:
        testing = importlib.import_module("erasure_salesforce.testing")
    except ImportError:
        return None
    server = testing.FakeSalesforce().start()
    org = server.org
    phone = "+4915112345678"  # shared by Alice and Bob, who live together
    alice = org.create("Contact", {"FirstName": "Alice", "LastName": "Example",
                                   "Email": "alice@example.com", "Phone": phone,
                                   "MailingCity": "Berlin"})
    org.create("Case", {"ContactId": alice, "Subject": "Where is my kettle?"})
    org.create("Task", {"WhoId": alice, "Subject": "Call back about the kettle"})
    campaign = org.create("Campaign", {"Name": "Spring tea sale"})
    org.create("CampaignMember", {"CampaignId": campaign, "ContactId": alice})
    org.create("Contact", {"FirstName": "Jim", "LastName": "Alice",
                           "Email": "jimalice@example.com"})
    org.create("Contact", {"FirstName": "Bob", "LastName": "Example",
                           "Email": "bob@example.net", "Phone": phone})
    os.environ["ERASURE_DEMO_SF_SESSION"] = server.session_id
    return SALESFORCE_CONFIG.format(url=server.url), server


def _zendesk_demo() -> tuple[Any, str, Any] | None:
    """The zendesk connector's fake Zendesk API on 127.0.0.1 (its own testing module,
    shipped for tests and this demo), seeded: (server, config text, the demo module). None
    when it cannot be imported."""
    import importlib

    try:
        module = importlib.import_module("erasure_zendesk.testing.demo")
    except ImportError:
        return None
    server, text = module.start(shared_phone="+4915112345678")
    return server, text, module


def _salesforce_left(server: Any) -> int:
    """Records the fake org still holds, the Recycle Bin included (queryAll's view)."""
    people = ("Contact", "Lead", "Case", "Task", "EmailMessage", "CampaignMember",
              "Individual")
    return sum(len(server.org.records[o]) for o in people)


S3_CONFIG = """
[systems.files]
connector = "s3"
endpoint_url = "{url}"
access_key_id = {{ env = "ERASURE_DEMO_S3_KEY_ID" }}
secret_access_key = {{ env = "ERASURE_DEMO_S3_SECRET" }}

[[systems.files.rules]]
bucket = "demo-files"
prefix = "customers/"
key_template = "customers/{{customer_id}}/"

[[systems.files.rules]]
bucket = "demo-files"
prefix = "exports/"
mode = "rows"
"""


NOTIFY_CONFIG = """
# A telecom carrier with no API (GDPR Art. 19): told by email, it receives phone numbers only.
[systems.m3st]
connector = "notify"
transport = "smtp"
identifiers = ["phone"]
host = "127.0.0.1"
port = {port}
security = "plain"
sender = "privacy@shop.example"
to = ["dpo@m3st.example"]
controller = "Shop Ltd (demo)"
"""


def _smtp_demo() -> tuple[str, Any, list[bytes]] | None:
    """An SMTP server (aiosmtpd) on 127.0.0.1 standing in for the carrier's mailbox: the
    config section, the server, and the messages it received. None without aiosmtpd (a
    test extra)."""
    import importlib.util
    import socket

    if importlib.util.find_spec("aiosmtpd") is None:
        return None
    from aiosmtpd.controller import Controller

    received: list[bytes] = []

    class Mailbox:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(bytes(envelope.original_content or envelope.content))
            return "250 2.0.0 Message accepted for delivery"

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = Controller(Mailbox(), hostname="127.0.0.1", port=port)
    server.start()
    return NOTIFY_CONFIG.format(port=port), server, received


def _s3_demo() -> tuple[str, Any, Any] | None:
    """A moto S3 server on 127.0.0.1 with a versioned bucket: Alice's profile (three
    versions) and a CSV export shared with Jim and Bob. None without moto (a test extra)."""
    import importlib.util
    import logging
    import os
    import socket

    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("boto3") is None:
        return None
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the fake server's access log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.setdefault("ERASURE_DEMO_S3_KEY_ID", "demo-key-id")
    os.environ.setdefault("ERASURE_DEMO_S3_SECRET", "demo-secret")
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="eu-central-1",
                      aws_access_key_id="demo-key-id", aws_secret_access_key="demo-secret")
    s3.create_bucket(Bucket="demo-files",
                     CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    s3.put_bucket_versioning(Bucket="demo-files", VersioningConfiguration={"Status": "Enabled"})
    for city in ("Hamburg", "Munich", "Berlin"):  # old versions hold her data too
        s3.put_object(Bucket="demo-files", Key="customers/C-1001/profile.json",
                      Body=f'{{"email": "alice@example.com", "city": "{city}"}}'.encode())
    s3.put_object(Bucket="demo-files", Key="exports/customers.csv", Body=(
        b"email,phone,name\nalice@example.com,+4915112345678,Alice Example\n"
        b"jimalice@example.com,,Jim Alice\nbob@example.net,+4915112345678,Bob Example\n"))
    return S3_CONFIG.format(url=f"http://127.0.0.1:{port}"), server, s3


def run_demo(folder: Path, out: Console) -> int:
    """Run the demo in ``folder`` (recreated); returns the exit code."""
    root = folder.resolve()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    plugins = PluginHost.load()
    sf_demo = _salesforce_demo() if "salesforce" in plugins.registry else None
    # Salesforce keeps no customer numbers: its CRM is found by email and phone only.
    customer_space = ["tax-archive"] if sf_demo is not None else ["crm", "tax-archive"]
    crm = sf_demo[0] if sf_demo is not None else MEMORY_CRM.format(root=root)
    zd_demo = _zendesk_demo() if "zendesk" in plugins.registry else None
    helpdesk = zd_demo[1] if zd_demo is not None else MEMORY_HELPDESK.format(root=root)
    text = CONFIG.format(root=root, crm=crm, helpdesk=helpdesk)
    if "sql" in plugins.registry:
        text += SQL_CONFIG.format(root=root)
        customer_space.append("shop-db")
    if "mail" in plugins.registry:
        text += MAIL_CONFIG.format(root=root)
    s3_demo = _s3_demo() if "s3" in plugins.registry else None
    if s3_demo is not None:
        text += s3_demo[0]
        customer_space.append("files")
    smtp_demo = _smtp_demo() if "notify" in plugins.registry else None
    if smtp_demo is not None:
        text += smtp_demo[0]
    # The helpdesk numbers its own records: its "C-1001" is someone else, so it stays out.
    text += ID_SPACES.format(systems=", ".join(f'"{s}"' for s in customer_space))
    cfg_path = root / "demo.toml"
    cfg_path.write_text(text, encoding="utf-8")
    config = load_config(cfg_path, known_connectors=plugins.registry.classes())
    orch = Orchestrator(config, plugins)
    try:
        _seed(plugins, orch, root)
        # a title line, not a rule: piped (tee, a log) a rule is as wide as the console
        out.print("[bold]erasure demo[/]")
        out.print(f"Config: {cfg_path}\nSystems: {', '.join(orch.systems)}\n"
                  "Subject: alice@example.com, customer C-1001. Also seeded: a lookalike "
                  "(jimalice@example.com), Bob, who shares Alice's phone, and Carol, whose "
                  "helpdesk number is also C-1001 (another id space).\n")

        plan = orch.plan(RequestSpec(RequestType.FIND, SUBJECT, verified=True))
        table = Table(title="1. Find (dry run: nothing changed)")
        for col in ("system", "policy", "found", "would erase", "review only (weak match)"):
            table.add_column(col)
        for line in plan:
            cls = orch.systems[line.system].cls
            if cls is not None and not cls.supports(Capability.FIND):
                # a processor with no API is never searched: told, not "found 0"
                table.add_row(line.system, line.policy, "-", "-", "(not searched: told)")
                continue
            # under a legal hold (policy retain) nothing is erasable: what it holds is kept
            erasable = (str(line.actionable) if line.policy != "retain"
                        else f"0 (keeps {line.actionable})")
            table.add_row(line.system, line.policy, str(line.found), erasable,
                          str(line.review))
        out.print(table)

        access = orch.submit(RequestSpec(RequestType.ACCESS, SUBJECT, ticket="DEMO-1",
                                         verified=True))
        orch.run(only=[access])
        package = config.host.exports() / f"{access}.zip"
        with zipfile.ZipFile(package) as zf:
            names = zf.namelist()
        out.print(f"\n[bold]2. Access package[/] {package} ({package.stat().st_mode & 0o777:o}):"
                  f" {', '.join(names)}\n")

        _rights(orch, root, out)
        if smtp_demo is not None:
            smtp_demo[2].clear()  # the carrier's notice of Jim's correction: shown in 2b

        erase = orch.submit(RequestSpec(RequestType.ERASURE, SUBJECT, ticket="DEMO-2",
                                        verified=True))
        summary = orch.run(only=[erase])
        for _ in range(5):  # Salesforce and Zendesk jobs finish after they are polled
            if all(t.stage in ("done", "awaiting_confirmation")
                   for t in orch.ledger.tasks_for([erase])):
                break
            summary = orch.run(only=[erase])
        if smtp_demo is not None:
            _tell_and_confirm(orch, erase, smtp_demo[2], out)
        from .tables import receipts_table

        out.print(receipts_table(orch.ledger.receipts(erase), title="3. Erasure receipts"))
        if "mailbox" in orch.systems:
            from .sweep import run_sweep

            sweep = Table(title="3b. Retention sweep (`erasure sweep`: mail kept 12 months)")
            for col in ("system", "folder", "older than 12 months", "deleted", "outcome"):
                sweep.add_column(col)
            for r in run_sweep(orch):
                for group, c in sorted(r.groups.items()):
                    sweep.add_row(r.system, group, str(c["expired"]), str(c["deleted"]),
                                  r.outcome)
            out.print(sweep)

        # Everyone's items, counted after the erasure: the others' records (Jim, Bob, Carol)
        # and what is kept under a legal reason, not residue of Alice's.
        left = Table(title="4. What the systems hold now (everyone's items)",
                     caption="Alice's data is gone except her invoice, kept for tax; the "
                             "rest are other people's records.", caption_justify="left")
        left.add_column("system")
        left.add_column("items (all people)")
        for name in ("crm", "helpdesk", "mail-archive", "tax-archive"):
            if name == "crm" and sf_demo is not None:
                left.add_row("crm (Salesforce records, Recycle Bin included)",
                             str(_salesforce_left(sf_demo[1])))
                continue
            if name == "helpdesk" and zd_demo is not None:
                for what, n in zd_demo[2].left(zd_demo[0]):
                    left.add_row(what, str(n))
                continue
            memory = orch.systems[name].connector()
            assert isinstance(memory, MemoryConnector)  # the demo's [systems] above
            left.add_row(name, str(memory.count()))
        if "shop-db" in orch.systems:
            db = sqlite3.connect(root / "shop.db")
            for db_table in ("customers", "orders", "invoices"):
                n = db.execute(f"SELECT count(*) FROM {db_table}").fetchone()[0]  # noqa: S608
                left.add_row(f"shop-db {db_table}", str(n))
            kept = db.execute("SELECT billing_email, billing_name FROM invoices WHERE id = 100")
            row = kept.fetchone()
            db.close()
        if "mailbox" in orch.systems:
            mail = orch.systems["mailbox"].connector()
            stats = mail.stats()  # type: ignore[attr-defined]
            left.add_row("mailbox", str(sum(st.count for st in stats.values())))
        if s3_demo is not None:
            s3 = s3_demo[2]
            versions = s3.list_object_versions(Bucket="demo-files")
            left.add_row("files (S3 object versions)", str(len(versions.get("Versions", []))))
            rows = s3.get_object(Bucket="demo-files", Key="exports/customers.csv")["Body"]
            left.add_row("files exports/customers.csv rows", str(rows.read().count(b"\n") - 1))
        out.print(left)
        if "shop-db" in orch.systems:
            email, name = row
            out.print("Alice's invoice is kept for tax, anonymised: billing_email "
                      f"{email}, billing_name {name if name is not None else '(empty)'}",
                      highlight=False, markup=False)
        out.print("Jim (lookalike address), Bob (shared phone, review only) and Carol (C-1001 "
                  "in the helpdesk's own id space) are untouched; the invoice is retained "
                  "under its legal reason.\n")

        report = verify_export(ledger_export(orch.ledger), orch.keys.signing.public_key())
        status = "[green]verified[/]" if report.ok else f"[red]{report.problems}[/]"
        out.print(f"[bold]5. Receipts[/]: {report.checked} signed, hash-chained: {status} "
                  "(with the chain's signed head)")
        # the sweep's receipts came after the run's: the head over all of them
        out.print(head_line(*orch.chain.ensure_head()), soft_wrap=True,
                  highlight=False)
        out.print(f"Public key: {orch.keys.public_text}")
        # `erasure` is in the virtualenv's bin, not on PATH unless it is activated
        exe = Path(sys.executable).parent / "erasure"
        cmd = str(exe) if exe.exists() else "erasure"
        out.print(f"Try: {cmd} --help; {cmd} status --all -c {cfg_path} (or `source "
                  f"{exe.parent}/activate` first, then `erasure ...`)", soft_wrap=True,
                  highlight=False, markup=False)
        return 0 if summary.ok and report.ok else 1
    finally:
        orch.close()
        if s3_demo is not None:
            s3_demo[1].stop()
        if sf_demo is not None:
            sf_demo[1].stop()
        if zd_demo is not None:
            zd_demo[0].stop()
        if smtp_demo is not None:
            smtp_demo[1].stop()


def _rights(orch: Orchestrator, root: Path, out: Console) -> None:
    """Jim's phone is corrected (Art. 16) and he objects to marketing (Art. 21): each
    system does what it can, and says so where it cannot."""
    jim = (("email", "jimalice@example.com"),)
    fix = orch.submit(RequestSpec(RequestType.RECTIFICATION, jim, ticket="DEMO-4",
                                  verified=True, corrections=(("phone", "+4915199999990"),)))
    objection = orch.submit(RequestSpec(RequestType.OBJECTION, jim, ticket="DEMO-5"))
    for _ in range(5):  # Salesforce and Zendesk jobs finish after they are polled
        orch.run(only=[fix, objection])
        if all(t.stage in ("done", "awaiting_confirmation")
               for t in orch.ledger.tasks_for([fix, objection])):
            break
    table = Table(title="2b. Jim corrects his phone (Art. 16) and objects to marketing "
                        "(Art. 21)")
    for col in ("system", "rectification (phone)", "objection (marketing)"):
        table.add_column(col)
    cells: dict[str, dict[str, str]] = {}
    for t in orch.ledger.tasks_for([fix, objection]):
        state = (t.outcome or "") if t.stage == "done" else t.stage
        cells.setdefault(t.system, {})[t.request_id] = state.replace("_", " ")
    for name in sorted(cells):
        table.add_row(name, cells[name].get(fix, "-"), cells[name].get(objection, "-"))
    out.print(table)
    if "shop-db" in orch.systems:
        db = sqlite3.connect(root / "shop.db")
        phone, ok = db.execute(
            "SELECT phone, marketing_ok FROM customers WHERE id = 2").fetchone()
        db.close()
        out.print(f"shop-db: Jim's phone is now {phone}; marketing_ok = {ok}. Receipts name "
                  "the corrected field, never the value; a system that cannot correct or "
                  "has no opt-out is not covered, and says so.\n")


def _tell_and_confirm(orch: Orchestrator, request: str, received: list[bytes],
                      out: Console) -> None:
    """Show what the carrier was told, then record its confirmation (as `erasure confirm`
    would): the request ends only then."""
    from email import message_from_bytes
    from email.policy import default

    for raw in received:
        msg = message_from_bytes(raw, policy=default)
        body = msg.get_body(("plain",))
        lines = [ln.strip() for ln in (body.get_content() if body else "").splitlines()
                 if ln.strip().startswith(("Our reference", "phone", "email", "name"))]
        out.print(f"[bold]3a. Told m3st[/] (a carrier with no API, GDPR Art. 19) by email "
                  f"to {msg['To']}: \"{msg['Subject']}\", {msg['Message-ID']}")
        for line in lines:
            out.print(f"    {line}")
    out.print("    Only the phone number: the carrier never had her email or customer "
              "number. The request waits for its confirmation (`erasure status`).")
    orch.confirm(request, "m3st", "M3ST-DEMO-5521")
    out.print("    The carrier confirms: `erasure confirm REQUEST m3st --reference "
              "M3ST-DEMO-5521`; the receipt records when it was told and confirmed.\n")
