from __future__ import annotations

from pathlib import Path

import pytest

from erasure import Capability, ConfigError, IdentifierType, PluginHost
from erasure.config import load_config, parse_config


def known() -> dict:
    host = PluginHost.load()
    return {n: host.registry.get(n) for n in host.registry.names()}


def test_env_references_resolve_into_secret_settings() -> None:
    cfg = parse_config(
        {"systems": {"crm": {"connector": "memory", "password": {"env": "CRM_PW"}}}},
        known_connectors=known(), env={"CRM_PW": "s3cr3t-value"},
    )
    assert cfg.systems["crm"].settings["password"] == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(cfg.systems["crm"])


def test_every_problem_is_reported_at_once_with_section_and_key() -> None:
    data = {
        "erasure": {"batch_size": 0, "colour": "blue"},
        "systems": {
            "crm": {"connector": "memory", "password": "hunter2"},
            "desk": {"connector": "nosuch"},
            "db": {"connector": "memory", "password": {"env": "MISSING_VAR"}},
            "mail": {"connector": "memory", "latency_ms": "slow"},
            "tax": {"connector": "memory", "policy": "retain"},
            "Bad Name": {"connector": "memory"},
        },
        "extra": {},
    }
    with pytest.raises(ConfigError) as exc:
        parse_config(data, known_connectors=known(), env={})
    problems = exc.value.problems
    joined = "\n".join(problems)
    assert any(p.startswith("erasure.batch_size:") for p in problems)
    assert "erasure.colour: unknown key" in problems
    assert any(p.startswith("systems.crm.password: secrets must be given as") for p in problems)
    assert "hunter2" not in joined
    assert any("systems.desk.connector: unknown connector 'nosuch'" in p for p in problems)
    assert "systems.db.password: environment variable MISSING_VAR is not set" in problems
    assert any(p.startswith("systems.mail.latency_ms:") for p in problems)
    assert any(p.startswith("systems.tax.reason:") for p in problems)
    assert any(p.startswith("systems.Bad Name:") for p in problems)
    assert any(p.startswith("extra: unknown section") for p in problems)


def test_url_with_inline_password_is_refused() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config({"erasure": {"ledger": "postgresql://u:pw@db/x"}}, env={})
    assert "URL contains a password" in str(exc.value)
    assert "pw@" not in str(exc.value)


def test_plugin_that_failed_to_load_makes_its_systems_not_covered_not_invalid() -> None:
    cfg = parse_config({"systems": {"crm": {"connector": "broken"}}},
                       known_connectors=known(), uncovered=frozenset({"broken"}), env={})
    assert cfg.systems["crm"].connector == "broken"


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[erasure\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_relative_state_dir_is_relative_to_the_config_file(tmp_path: Path) -> None:
    p = tmp_path / "conf" / "erasure.toml"
    p.parent.mkdir()
    p.write_text('[erasure]\nstate_dir = "st"\n')
    cfg = load_config(p, known_connectors=known())
    assert cfg.host.state_dir == p.parent.resolve() / "st"


def test_column_names_in_mapping_tables_are_not_mistaken_for_secrets() -> None:
    data = {"systems": {"db": {"connector": "memory", "password": "x",
                               "anonymise": {"password_hash": "null"}}}}
    with pytest.raises(ConfigError) as exc:
        parse_config(data, env={})
    assert exc.value.problems == [
        'systems.db.password: secrets must be given as { env = "NAME" } references, not inline'
    ]


def test_the_example_config_is_valid_and_declares_its_id_spaces() -> None:
    import tomllib

    path = Path(__file__).parent.parent / "config" / "erasure.example.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    env = {"ERASURE_LEDGER_URL": "sqlite:///x.db", "ERASURE_SIGNING_KEY": "k",
           "ERASURE_ENCRYPTION_KEY": "k", "NOTIFY_SMTP_USER": "u",
           "NOTIFY_SMTP_PASSWORD": "p", "NEXBRIDGE_WEBHOOK_SECRET": "s" * 32}
    cfg = parse_config(data, known_connectors=known(), env=env)
    if "notify" in known():
        assert {"m3st", "aql", "nexbridge", "ukfast"} <= set(cfg.systems)
    spaces = cfg.id_spaces
    assert spaces.space_for(IdentifierType.CUSTOMER_ID, "crm") == "customer"
    assert spaces.space_for(IdentifierType.CUSTOMER_ID, "helpdesk") == "helpdesk"
    assert spaces.space_for(IdentifierType.USER_ID, "crm") == "system:crm"
    assert spaces.space_for(IdentifierType.EMAIL, "crm") is None
    # The Art. 15 statement is complete for every system an access package can show, and
    # names the privacy policy's recipients.
    classes = known()
    exporting = [n for n, sc in cfg.systems.items()
                 if classes[sc.connector].supports(Capability.EXPORT)]
    assert cfg.statement_warnings(exporting) == []
    recipients = " ".join(r for sc in cfg.systems.values() for r in sc.statement.recipients)
    for name in ("Zendesk", "Salesforce", "AWS", "M3ST", "AQL", "Nexbridge", "UKFast"):
        assert name in recipients, name


@pytest.mark.parametrize(("section", "needle"), [
    ({"connector": "memory", "path": "db?user=a&password=S3cret"}, None),
    ({"connector": "sql", "url": "postgresql+psycopg://db/x?sslmode=require&password=S3cret",
      "tables": {"t": {}}}, "URL contains a password"),
    ({"connector": "sql", "url": "postgresql+psycopg://:S3cret@db/x", "tables": {"t": {}}},
     "URL contains a password"),
    ({"connector": "sql", "url": "sqlite:///x.db", "hash_key": "S3cret-inline",
      "tables": {"t": {}}}, "hash_key: secrets must be given as"),
])
def test_inline_secrets_in_urls_and_keys_are_refused(section, needle) -> None:
    data = {"systems": {"db": section}}
    if needle is None:  # not a URL: a file name may hold what it likes
        parse_config(data, known_connectors=known(), env={})
        return
    with pytest.raises(ConfigError) as exc:
        parse_config(data, known_connectors=known(), env={})
    assert any(needle in p for p in exc.value.problems), exc.value.problems
    assert not any("S3cret" in p for p in exc.value.problems)


# Inline secrets in the forms people write them (issue 10, item 4): each refused, naming the
# setting, never echoing the secret.
URL_FORMS = [
    "postgresql+psycopg://app:S3cret@db.internal/erasure",
    "postgresql+psycopg://:S3cret@db.internal/erasure",
    "postgresql+psycopg://db.internal/erasure?password=S3cret",
    "postgresql+psycopg://db.internal/erasure?sslmode=require&password=S3cret",
    "postgresql+psycopg://db.internal/erasure?sslpassword=S3cret",
    "postgresql+psycopg://db.internal/erasure?user=app;password=S3cret",
    "postgresql+psycopg://db.internal/erasure?PASSWORD=S3cret",
    "mysql+pymysql://root:S3cret@127.0.0.1/test",
    "mysql+pymysql://127.0.0.1/test?passwd=S3cret",
    "mssql+pyodbc://db/x?pwd=S3cret",
    "https://api.example.com/v2?token=S3cret",
    "https://api.example.com/v2?access_token=S3cret",
    "https://api.example.com/v2?api_key=S3cret",
    "https://api.example.com/v2?apikey=S3cret",
    "https://bucket.s3.amazonaws.com/k?X-Amz-Signature=S3cret",
    "https://hooks.example.com/x?client_secret=S3cret",
    "redis://:S3cret@127.0.0.1:6379/0",
    "amqp://guest:S3cret@127.0.0.1:5672/",
    "imaps://archive:S3cret@mail.example.com",
    # percent-encoded, padded (issue 20, item 8)
    "postgresql+psycopg://db.internal/erasure?pass%77ord=S3cret",
    "postgresql+psycopg://db.internal/erasure?pass%2577ord=S3cret",  # encoded twice
    "postgresql+psycopg://db.internal/erasure?%70assword=S3cret",
    "postgresql+psycopg://db.internal/erasure?sslmode=require%26password%3DS3cret",
    " postgresql+psycopg://app:S3cret@db.internal/erasure",
    "postgresql+psycopg://app:S3cret@db.internal/erasure  ",
    "\tredis://:S3cret@127.0.0.1:6379/0",
    "https://api.example.com/v2?tok%65n=S3cret",
]
# libpq and ODBC connection strings (key=value pairs), in the ways libpq accepts them
CONNECTION_STRINGS = [
    "host=db.internal user=app password=S3cret dbname=erasure",
    "host=db.internal password = S3cret",
    "host=db.internal password='S3cret with spaces'",
    "  dbname=erasure sslpassword=S3cret  ",
    "password=S3cret",
    "Server=db;Database=erasure;Uid=app;Pwd=S3cret;",
    "Driver={ODBC Driver 18};Server=db;PWD={S3;cret}",
    "Data Source=db;User Id=app;Password=S3cret",
]
KEY_FORMS = ["password", "api_key", "apikey", "token", "access_key", "secret_access_key",
             "client_secret", "private_key", "hash_key", "session_token", "credentials"]


@pytest.mark.parametrize("url", URL_FORMS)
def test_every_url_form_of_an_inline_password_is_refused(url: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config({"systems": {"db": {"connector": "memory", "url": url}}},
                     known_connectors=known(), env={})
    assert any(p.startswith("systems.db.url: URL contains a password")
               for p in exc.value.problems), exc.value.problems
    assert "S3cret" not in str(exc.value.problems)


@pytest.mark.parametrize("dsn", CONNECTION_STRINGS)
def test_a_connection_string_with_a_password_is_refused(dsn: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config({"systems": {"db": {"connector": "memory", "dsn": dsn}}},
                     known_connectors=known(), env={})
    assert any(p.startswith("systems.db.dsn: connection string contains a password")
               for p in exc.value.problems), exc.value.problems
    assert "S3cret" not in str(exc.value.problems)


@pytest.mark.parametrize("value", [
    "host=db.internal user=app dbname=erasure sslmode=require",
    "host=db.internal password=",  # libpq: no password given
    "status = 'active' and password = ''",
    "SELECT id FROM users WHERE password_hash IS NULL",
    "notes on the token = not a secret, just words",
])
def test_key_value_text_without_a_secret_passes(value: str) -> None:
    parse_config({"systems": {"db": {"connector": "memory", "path": value}}},
                 known_connectors=known(), env={})


@pytest.mark.parametrize("key", KEY_FORMS)
def test_every_inline_secret_setting_is_refused(key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config({"systems": {"db": {"connector": "memory", key: "S3cret"}}},
                     known_connectors=known(), env={})
    assert f"systems.db.{key}: secrets must be given as" in str(exc.value.problems)
    assert "S3cret" not in str(exc.value.problems)


def test_the_ledger_url_with_a_password_is_refused() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config({"erasure": {"ledger": "postgresql+psycopg://u:S3cret@db/x"}},
                     known_connectors=known(), env={})
    assert "erasure.ledger: URL contains a password" in str(exc.value.problems)


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://app@db.internal/erasure?sslmode=require",
    "sqlite:///state/ledger.db", "https://api.example.com/v2?page=2&tokens_used=3"])
def test_urls_without_secrets_pass(url: str) -> None:
    parse_config({"systems": {"db": {"connector": "memory", "path": url}}},
                 known_connectors=known(), env={})


def test_an_env_reference_set_to_nothing_is_called_empty_not_taken() -> None:
    """ERASURE_BROKER_URL= (set, empty) is no broker: said so, not passed on."""
    data = {"erasure": {"broker": {"env": "T_BROKER"}},
            "systems": {"crm": {"connector": "memory"}}}
    with pytest.raises(ConfigError) as exc:
        parse_config(data, known_connectors=known(), env={"T_BROKER": ""})
    assert exc.value.problems == ["erasure.broker: environment variable T_BROKER is empty"]
