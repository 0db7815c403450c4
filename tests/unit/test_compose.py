"""The production-like deployment stays consistent with the code, though no Docker engine runs it here.

docker-compose.yml, the Dockerfile, Prometheus and Grafana provisioning all repeat facts the code owns
(service names, ports, settings names, metric names); these tests make every repetition fail loudly when it
drifts.
"""

import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared import kafka_security
from shared.settings import DEFAULT_WEB_PORTS, REPO_ROOT, SERVICES, Settings

COMPOSE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
PROMETHEUS = REPO_ROOT / "infra" / "prometheus"
GRAFANA = REPO_ROOT / "infra" / "grafana"
DASHBOARD_UIDS = {"pipeline-health.json": "offsetstream-pipeline", "money.json": "offsetstream-money"}
ENV_PREFIX = "OFFSETSTREAM_"


def _yaml(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{path.name} is not a YAML mapping"
    return document


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _yaml(COMPOSE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = compose["services"]
    return result


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


# --- the five services --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVICES)
def test_service_runs_its_faust_worker(services: dict[str, Any], name: str) -> None:
    service = services[name]
    assert service["build"] == "."
    assert service["command"] == ["python", "-m", f"services.{name}", "worker", "-l", "info"]


@pytest.mark.parametrize("name", SERVICES)
def test_service_metrics_port_stays_on_the_internal_network(services: dict[str, Any], name: str) -> None:
    port = DEFAULT_WEB_PORTS[name]
    assert "ports" not in services[name], "metrics are scraped on the compose network, never published"
    assert services[name]["expose"] == [str(port)]
    assert "backend" in services[name]["networks"]
    egress = ["egress"] if name == "notification" else []  # webhooks and e-mail leave; nothing else does
    assert services[name]["networks"] == ["backend", *egress]


@pytest.mark.parametrize("name", SERVICES)
def test_service_healthcheck_reads_its_own_metrics(services: dict[str, Any], name: str) -> None:
    test = services[name]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    assert f"http://127.0.0.1:{DEFAULT_WEB_PORTS[name]}/metrics" in test[3]
    assert "urllib" in test[3]


@pytest.mark.parametrize("name", SERVICES)
def test_service_starts_after_its_dependencies(services: dict[str, Any], name: str) -> None:
    depends_on = services[name]["depends_on"]
    assert depends_on["kafka"]["condition"] == "service_healthy"
    assert depends_on["postgres"]["condition"] == "service_healthy"
    assert depends_on["migrate"]["condition"] == "service_completed_successfully"
    assert depends_on["topics"]["condition"] == "service_completed_successfully"
    assert depends_on["kafka-acls"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("name", SERVICES)
def test_service_environment_points_at_the_compose_network(services: dict[str, Any], name: str) -> None:
    env = _environment(services[name])
    assert env["OFFSETSTREAM_KAFKA_BOOTSTRAP"] == "kafka:9092"
    password = f"{name.upper()}_DB_PASSWORD"
    # Its own login (a member of its group role only), with a password compose requires from the environment.
    assert env["OFFSETSTREAM_DATABASE_URL"].startswith(
        f"postgresql://offsetstream_{name}_login:${{{password}:?"
    )
    assert env["OFFSETSTREAM_DATABASE_URL"].endswith("}@postgres:5432/offsetstream")
    assert env["OFFSETSTREAM_WEB_HOST"] == "0.0.0.0", "containers must listen beyond loopback"
    ports = json.loads(env["OFFSETSTREAM_WEB_PORTS"])
    assert ports.keys() == DEFAULT_WEB_PORTS.keys()
    assert ports == DEFAULT_WEB_PORTS
    # Its own Kafka principal, with its own required password.
    assert env["OFFSETSTREAM_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert env["OFFSETSTREAM_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert env["OFFSETSTREAM_KAFKA_USERNAME"] == name
    var = f"KAFKA_{name.upper()}_PASSWORD"
    assert env["OFFSETSTREAM_KAFKA_PASSWORD"] == f"${{{var}:?set {var}, see docs/security.md}}"


def test_every_offsetstream_variable_is_a_settings_field(services: dict[str, Any]) -> None:
    fields = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    used = {
        var for service in services.values() for var in _environment(service) if var.startswith(ENV_PREFIX)
    }
    assert used, "no OFFSETSTREAM_* variables found"
    assert not used - fields, f"not fields of shared.settings.Settings: {sorted(used - fields)}"


def test_service_environment_parses_into_settings(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Step: load exactly the compose environment, as the container would see it.
    for var, value in _environment(services["intake"]).items():
        if var.startswith(ENV_PREFIX):
            monkeypatch.setenv(var, value)
    monkeypatch.setenv("OFFSETSTREAM_KAFKA_PASSWORD", "from-the-environment")
    settings = Settings()
    # Step: the values arrive typed, and each stage finds its own port and login.
    assert settings.kafka_bootstrap == "kafka:9092"
    assert settings.kafka_username == "intake"
    assert kafka_security.client_kwargs(settings)["sasl_mechanism"] == "SCRAM-SHA-512"
    assert {name: settings.web_port(name) for name in SERVICES} == DEFAULT_WEB_PORTS


# --- one-shot commands and backing services -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "command", "needs"),
    [
        ("migrate", ["offsetstream", "db", "migrate"], "postgres"),
        ("topics", ["offsetstream", "topics", "create"], "kafka"),
    ],
)
def test_one_shot_commands(services: dict[str, Any], name: str, command: list[str], needs: str) -> None:
    service = services[name]
    assert service["command"] == command
    assert service["build"] == "."
    assert service["depends_on"][needs]["condition"] == "service_healthy"
    assert service.get("restart", "no") == "no"
    assert service["networks"] == ["backend"]


@pytest.mark.parametrize(
    ("name", "principal"), [("topics", "admin"), ("kafka-acls", "admin"), ("operator", "operator")]
)
def test_kafka_commands_log_in_as_their_principal(
    services: dict[str, Any], name: str, principal: str
) -> None:
    env = _environment(services[name])
    assert env["OFFSETSTREAM_KAFKA_USERNAME"] == principal
    var = f"KAFKA_{principal.upper()}_PASSWORD"
    assert env["OFFSETSTREAM_KAFKA_PASSWORD"] == f"${{{var}:?set {var}, see docs/security.md}}"


def test_kafka_acls_are_created_from_the_topic_registry(services: dict[str, Any]) -> None:
    acls = services["kafka-acls"]
    assert acls["command"] == ["python", "-m", "shared.kafka_security", "acls"]
    assert acls["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert "tools" in services["operator"]["profiles"], "the operator's CLI container runs only when asked"


def test_kafka_format_writes_a_scram_login_per_principal(services: dict[str, Any]) -> None:
    fmt = services["kafka-format"]
    assert fmt["image"] == services["kafka"]["image"]
    assert services["kafka"]["depends_on"]["kafka-format"]["condition"] == "service_completed_successfully"
    assert _environment(fmt)["CLUSTER_ID"] == _environment(services["kafka"])["CLUSTER_ID"]
    script = " ".join(fmt["command"])
    assert "kafka-storage.sh format" in script
    env = _environment(fmt)
    for principal in kafka_security.PRINCIPALS:
        var = f"SCRAM_{principal.upper()}_PASSWORD"
        assert f'"SCRAM-SHA-512=[name={principal},password=$${var}]"' in script, principal
        host_var = f"KAFKA_{principal.upper()}_PASSWORD"
        assert env[var] == f"${{{host_var}:?set {host_var}, see docs/security.md}}", principal


def test_kafka_is_the_official_image_in_single_node_kraft(services: dict[str, Any]) -> None:
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = _environment(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert "INTERNAL://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    for var in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[var] == "1", var
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    assert env["KAFKA_MESSAGE_MAX_BYTES"] == str(16 * 1024 * 1024)
    health = " ".join(kafka["healthcheck"]["test"])
    assert "/opt/kafka/bin/kafka-topics.sh --bootstrap-server localhost:9092" in health
    assert "--command-config /tmp/health.properties --list" in health
    assert "sasl.mechanism=SCRAM-SHA-512" in health


def test_kafka_takes_only_sasl_logins_and_denies_by_default(services: dict[str, Any]) -> None:
    kafka = services["kafka"]
    env = _environment(kafka)
    listeners = dict(item.split(":", 1) for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    names = {item.split("://")[0] for item in env["KAFKA_LISTENERS"].split(",")}
    assert names == listeners.keys()
    assert set(listeners.values()) == {"SASL_PLAINTEXT"}, "no listener without a login"
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert env["KAFKA_SASL_MECHANISM_INTER_BROKER_PROTOCOL"] == "SCRAM-SHA-512"
    assert env["KAFKA_LISTENER_NAME_CONTROLLER_SASL_ENABLED_MECHANISMS"] == "PLAIN"
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert env["KAFKA_SUPER_USERS"] == f"User:{kafka_security.ADMIN}"
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    for var, value in env.items():
        if var.endswith("_JAAS_CONFIG"):
            assert 'password="${KAFKA_ADMIN_PASSWORD:?' in value, var
            assert "user_" not in value or 'user_admin="${KAFKA_ADMIN_PASSWORD:?' in value, var


def test_nothing_internal_is_published_on_the_host(services: dict[str, Any], compose: dict[str, Any]) -> None:
    for name in ("kafka", "kafka-format", "postgres", "prometheus", *SERVICES):
        assert "ports" not in services[name], f"{name} publishes a host port"
    assert compose["networks"]["backend"]["internal"] is True
    for name in ("kafka", "kafka-format", "postgres", "prometheus"):
        assert services[name]["networks"] == ["backend"], name
    # Grafana, the one published port, only on the host's loopback.
    assert services["grafana"]["ports"] == ["127.0.0.1:3000:3000"]


def test_publishing_kafka_and_prometheus_is_opt_in_and_loopback_only() -> None:
    publish = _yaml(REPO_ROOT / "docker-compose.publish.yml")["services"]
    assert set(publish) == {"kafka", "prometheus"}
    assert publish["kafka"]["ports"] == ["127.0.0.1:29092:29092"]
    assert publish["prometheus"]["ports"] == ["127.0.0.1:9090:9090"]


def test_prometheus_has_no_lifecycle_api(services: dict[str, Any]) -> None:
    command = services["prometheus"]["command"]
    assert not any("lifecycle" in flag or "admin-api" in flag for flag in command)


def test_grafana_asks_for_a_login_with_a_required_admin_password(services: dict[str, Any]) -> None:
    env = _environment(services["grafana"])
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "GF_AUTH_ANONYMOUS_ORG_ROLE" not in env
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert env["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")


def test_postgres_is_healthchecked_with_pg_isready(services: dict[str, Any]) -> None:
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:15"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    env = _environment(postgres)
    url = _environment(services["migrate"])["OFFSETSTREAM_DATABASE_URL"]  # the owner runs the migrations
    expected = (
        f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@postgres:5432/{env['POSTGRES_DB']}"
    )
    assert url == expected


def test_postgres_creates_one_login_per_service_and_for_staff(services: dict[str, Any]) -> None:
    postgres = services["postgres"]
    assert "./infra/postgres/init:/docker-entrypoint-initdb.d:ro" in postgres["volumes"]
    env = _environment(postgres)
    script = (REPO_ROOT / "infra" / "postgres" / "init" / "10-service-logins.sh").read_text()
    for role in (*SERVICES, "staff"):
        var = f"{role.upper()}_DB_PASSWORD"
        assert env[var] == f"${{{var}:?set {var}, see docs/security.md}}", var
        assert role in script.split("for role in ", 1)[1].split(";", 1)[0], role


def test_monitoring_mounts_the_infra_folders(services: dict[str, Any]) -> None:
    assert services["prometheus"]["image"].startswith("prom/prometheus")
    assert "./infra/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    assert services["grafana"]["image"].startswith("grafana/grafana")
    grafana_volumes = services["grafana"]["volumes"]
    assert "./infra/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana_volumes
    assert "./infra/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana_volumes
    for source in ("./infra/prometheus", "./infra/grafana/provisioning", "./infra/grafana/dashboards"):
        assert (REPO_ROOT / source).is_dir(), source


# --- Dockerfile ---------------------------------------------------------------------------------------------


def test_dockerfile_installs_the_project_and_runs_unprivileged() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    instructions = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    stages = [line for line in instructions if line.startswith("FROM ")]
    assert stages[-1] == "FROM python:3.11-slim", "the runtime image"
    assert all(line.split()[1] == "python:3.11-slim" for line in stages), "one Python, so the build matches"
    assert "python -m infra.build_native" in text, "the image carries the compiled X12 reader"
    assert "COPY --from=native /app/.local/native ./.local/native" in instructions
    assert re.search(r"pip install (--[a-z-]+ )*\.(\s|$)", text), "the image must `pip install .` the project"
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users, "the image must switch to a non-root user"
    assert users[-1] not in {"root", "0"}
    assert instructions[-1] == 'CMD ["offsetstream", "--help"]'
    for copied in (
        "pyproject.toml",
        "contracts",
        "shared",
        "policies",
        "services",
        "cli",
        "devtools",
        "infra",
    ):
        assert re.search(rf"^COPY .*\b{re.escape(copied)}\b", text, re.MULTILINE), copied


# --- Prometheus ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file_name", "host_of"),
    [("prometheus.yml", lambda name: name), ("prometheus.local.yml", lambda name: "127.0.0.1")],
    ids=["compose", "local"],
)
def test_prometheus_scrapes_every_service(file_name: str, host_of: Any) -> None:
    config = _yaml(PROMETHEUS / file_name)
    assert config["global"]["scrape_interval"] == "5s"
    assert config["rule_files"] == ["rules/*.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name in SERVICES:
        targets = [t for group in jobs[name]["static_configs"] for t in group["targets"]]
        assert targets == [f"{host_of(name)}:{DEFAULT_WEB_PORTS[name]}"]


def test_alert_rules_are_well_formed() -> None:
    rule_files = sorted((PROMETHEUS / "rules").glob("*.yml"))
    assert rule_files
    alerts = {}
    for path in rule_files:
        for group in _yaml(path)["groups"]:
            for rule in group["rules"]:
                assert rule["expr"].strip()
                assert rule["annotations"]["summary"].strip()
                alerts[rule["alert"]] = rule
    assert "up" in alerts["OffsetstreamServiceDown"]["expr"]
    assert "remit_dead_letters_total" in alerts["OffsetstreamDeadLetters"]["expr"]


# --- Grafana ------------------------------------------------------------------------------------------------


def _dashboard(file_name: str) -> dict[str, Any]:
    document = json.loads((GRAFANA / "dashboards" / file_name).read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def test_grafana_datasource_has_the_fixed_uid() -> None:
    (datasource,) = _yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert datasource["uid"] == "prometheus"
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"


def test_grafana_dashboard_provider_reads_the_mounted_folder() -> None:
    (provider,) = _yaml(GRAFANA / "provisioning" / "dashboards" / "offsetstream.yml")["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


@pytest.mark.parametrize(("file_name", "uid"), sorted(DASHBOARD_UIDS.items()))
def test_dashboard_is_valid_and_uses_the_prometheus_datasource(file_name: str, uid: str) -> None:
    dashboard = _dashboard(file_name)
    assert dashboard["uid"] == uid
    assert dashboard["schemaVersion"] == 39
    panels = dashboard["panels"]
    assert panels
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}, panel["title"]
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "prometheus"
            assert target["expr"].strip()


def _exported_metric_names(modules: list[str]) -> set[str]:
    """Sample names the given modules' metric objects can export (counters end in ``_total``…)."""
    from prometheus_client import REGISTRY

    for module in modules:
        importlib.import_module(module)
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, [""]))
    return names


def _metric_names_in(dashboard: dict[str, Any]) -> set[str]:
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    return set(re.findall(r"\bremit_[a-z_]+", exprs))


STAGE_METRIC_MODULES = ["shared.telemetry", *(f"services.{name}.metrics" for name in SERVICES)]


def test_pipeline_dashboard_and_alerts_use_metrics_the_stages_export() -> None:
    exported = _exported_metric_names(STAGE_METRIC_MODULES)
    rules = " ".join(
        rule["expr"]
        for group in _yaml(PROMETHEUS / "rules" / "offsetstream.yml")["groups"]
        for rule in group["rules"]
    )
    used = _metric_names_in(_dashboard("pipeline-health.json")) | set(re.findall(r"\bremit_[a-z_]+", rules))
    assert not used - exported, f"metrics no stage defines: {sorted(used - exported)}"


def test_money_dashboard_uses_metrics_the_stages_export() -> None:
    used = _metric_names_in(_dashboard("money.json"))
    exported = _exported_metric_names(STAGE_METRIC_MODULES)
    assert not used - exported, f"metrics no stage defines: {sorted(used - exported)}"


def test_secrets_come_from_the_environment_without_defaults(services: dict[str, Any]) -> None:
    env = _environment(services["notification"])
    # Required: `${VAR:?message}` makes compose refuse to start without it; never a value in the file.
    assert env["OFFSETSTREAM_WEBHOOK_SECRET"].startswith("${OFFSETSTREAM_WEBHOOK_SECRET:?")
    # The PHI digest key: intake publishes digests with it and notification compares them, so both need it.
    for service in ("intake", "notification"):
        assert _environment(services[service])["OFFSETSTREAM_PHI_KEY"].startswith("${OFFSETSTREAM_PHI_KEY:?")
    for name, service in services.items():
        for var, value in _environment(service).items():
            if "SECRET" in var or "PASSWORD" in var or var.endswith("_KEY"):
                # One variable of the environment, required (`:?`): never a value or a default in the file.
                assert re.fullmatch(r"\$\{[A-Z][A-Z0-9_]*:\?[^}]*\}", value), f"{name}: {var} has a default"


def test_console_runs_with_its_own_logins_and_is_published_on_the_loopback_only(
    services: dict[str, Any],
) -> None:
    console = services["console"]
    assert console["command"] == ["python", "-m", "services.console"]
    env = _environment(console)
    assert env["OFFSETSTREAM_KAFKA_USERNAME"] == "console"
    assert env["OFFSETSTREAM_DATABASE_URL"].startswith(
        "postgresql://offsetstream_console_login:${CONSOLE_DB_PASSWORD:?"
    )
    assert env["OFFSETSTREAM_CONSOLE_SECRET"].startswith("${OFFSETSTREAM_CONSOLE_SECRET:?")
    assert env["OFFSETSTREAM_CONSOLE_SECURE_COOKIES"] == "true"
    assert console["ports"] == ["127.0.0.1:6110:6110"]
    script = (REPO_ROOT / "infra" / "postgres" / "init" / "10-service-logins.sh").read_text()
    assert "console" in script.split("for role in ", 1)[1].split(";", 1)[0]
    assert _environment(services["postgres"])["CONSOLE_DB_PASSWORD"].startswith("${CONSOLE_DB_PASSWORD:?")
