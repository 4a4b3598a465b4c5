"""Every cluster-launcher YAML in cluster/: valid for Ray's own schema, installing this project at its pins.

Offline, the way `ray up` starts before it talks to the cloud: ``prepare_config`` (merge with the
provider's defaults.yaml that Ray ships, merge setup commands, fill worker bounds) then
``validate_config`` (the JSON schema Ray ships, ray/autoscaler/ray-schema.json, plus its own checks).
"""

from __future__ import annotations

import copy
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
CONFIGS = sorted(CLUSTER.glob("*.yaml"))
# Cloud SDKs the autoscaler needs on the head (Ray's own defaults install them there); not raydrift's.
AUTOSCALER_SDKS = {"aws": "boto3", "gcp": "google-api-python-client"}


def prepared(config: dict) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    out = prepare_config(copy.deepcopy(config))
    validate_config(out)
    return out


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def pins() -> dict[str, str]:
    """``{package: version}`` of the ``==`` pins in pyproject.toml's dependencies (extras dropped)."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    out = {}
    for dep in deps:
        if m := re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^;\s]+)", dep.strip()):
            out[m.group(1).lower()] = m.group(3)
    return out


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_the_aws_gpu_config_is_there():
    assert CLUSTER / "gpu.yaml" in CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_is_valid_for_rays_schema(path):
    config = prepared(load(path))
    types = config["available_node_types"]
    head = config["head_node_type"]
    workers = {name: t for name, t in types.items() if name != head}
    assert workers and all(t["min_workers"] == 0 for t in workers.values())  # scales to zero when idle
    assert sum(t["max_workers"] for t in workers.values()) <= config["max_workers"]
    assert 0 < config["idle_timeout_minutes"] <= 30
    # no trial lands on the head: CPU 0 keeps Train workers off, memory 0 the trials' Tune drivers
    assert types[head]["resources"].get("CPU") == 0 and types[head]["resources"].get("memory") == 0


BREAKAGES = {
    "misspelled top-level key": lambda c: c.update(idle_timout_minutes=c.pop("idle_timeout_minutes")),
    "misspelled node-type key": lambda c: c["available_node_types"][c["head_node_type"]].update(min_worker=0),
    "node type without resources": lambda c: c["available_node_types"][c["head_node_type"]].pop("resources"),
    "misspelled docker key": lambda c: c["docker"].update(pull_befor_run=True),
    "setup commands not a list": lambda c: c.update(setup_commands="pip install -e ~/raydrift"),
    "head type not defined": lambda c: c.update(head_node_type="nope"),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_broken_copy_fails_validation(path, breakage):
    import jsonschema

    config = load(path)
    BREAKAGES[breakage](config)
    with pytest.raises((jsonschema.ValidationError, ValueError, TypeError)):
        prepared(config)


def pip_installs(commands: list[str]) -> list[list[str]]:
    """The arguments (options dropped) of every ``pip install`` in ``commands`` (``&&``/``;`` chains too)."""
    out = []
    for command in commands:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        parts = [[]]
        for token in lexer:
            if set(token) <= set("&|;"):
                parts.append([])
            else:
                parts[-1].append(token)
        for words in parts:
            if "pip" in [Path(w).name for w in words[:3]] and "install" in words:
                args = words[words.index("install") + 1 :]
                out.append([a for a in args if not a.startswith("-")])
    return out


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_setup_installs_this_project_at_its_pins(path):
    config = prepared(load(path))
    # The checkout is synced to every node (run `ray up` from the repository root) ...
    project_dirs = {remote for remote, local in config["file_mounts"].items() if (REPO / local).resolve() == REPO}
    assert project_dirs, f"no file_mounts entry syncs the repository root: {config['file_mounts']}"
    assert ".gitignore" in config.get("rsync_filter", [])  # .venv, runs/, data/ stay behind
    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["name"] == "raydrift"
    assert (REPO / "search_spaces").is_dir()  # the study files travel with it

    # ... and pip installs exactly that project, on the head and on every worker type: its pins come from
    # pyproject.toml, not from a second list of packages.
    sdk = AUTOSCALER_SDKS[config["provider"]["type"]]
    node_commands = {"head": config["head_setup_commands"]}
    for name, node_type in config["available_node_types"].items():
        if name != config["head_node_type"]:
            node_commands[name] = node_type.get("worker_setup_commands", config["worker_setup_commands"])
    for node, commands in node_commands.items():
        installs = pip_installs(commands)
        assert [args for args in installs if args and set(args) <= project_dirs], f"{node} does not install raydrift"
        for args in installs:
            extra = [a for a in args if a not in project_dirs]
            allowed = [a for a in extra if node == "head" and re.match(rf"{re.escape(sdk)}\b", a)]
            assert extra == allowed, f"{node} installs packages besides the project: {extra}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_node_images_carry_the_pinned_ray_and_python(path):
    config = prepared(load(path))
    docker = config["docker"]
    images = {docker.get(k) for k in ("image", "head_image", "worker_image")} - {None}
    for node_type in config["available_node_types"].values():
        images |= {v for k, v in node_type.get("docker", {}).items() if k.endswith("image")}
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    python = re.search(r">=\s*3\.(\d+)", requires).group(1)
    assert images
    for image in images:
        m = re.fullmatch(r"rayproject/ray:(\d+\.\d+\.\d+)-py3(\d+)(-[a-z0-9]+)?", image)
        assert m, f"{image}: not one of Ray's images with a pinned version"
        assert m.group(1) == pins()["ray"], f"{image} does not carry ray=={pins()['ray']}"
        assert m.group(2) == python, f"{image}: Python 3.{m.group(2)}, the project requires {requires}"
    text = "\n".join(config["head_setup_commands"] + config["worker_setup_commands"])
    assert not re.search(r"\bray(\[[^\]]*\])?\s*[=<>~!]", text)  # no second Ray pin


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_setup_snippets_name_real_datasets(path, monkeypatch):
    """The ``python -c`` setup steps compile and fetch datasets raydrift knows (run here with a fake loader)."""
    from raydrift.data import datasets as data
    from raydrift.data.registry import DATASETS

    seen = []
    monkeypatch.setattr(data, "load_dataset", lambda name, split, **kw: seen.append((name, split, kw)))
    config = prepared(load(path))
    for command in config["head_setup_commands"] + config["worker_setup_commands"]:
        words = shlex.split(command)
        if words[:2] == ["python", "-c"]:
            exec(compile(words[2], f"{path.name}: setup", "exec"), {})
    assert seen and all(name in DATASETS and split in data.SPLITS for name, split, _ in seen)
    assert {name for name, _, _ in seen} >= {"mnist", "cifar10"}
    assert all(kw.get("download") for _, _, kw in seen)


SECRETS = {
    "AWS access key id": r"\b(AKIA|ASIA)[0-9A-Z]{16}\b",
    "AWS secret key setting": r"(?i)aws_secret_access_key\s*[:=]\s*\S",
    "W&B API key (40 hex digits)": r"\b[0-9a-f]{40}\b",
    "W&B key setting": r"WANDB_API_KEY['\"]?\s*[:=]\s*['\"]?[A-Za-z0-9_-]{8,}",  # not $VAR, not "..."
    "private key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
}


@pytest.mark.parametrize("path", sorted(p for p in CLUSTER.rglob("*") if p.is_file()), ids=lambda p: p.name)
def test_no_secret_is_written_in_cluster_files(path):
    text = path.read_text()
    for what, pattern in SECRETS.items():
        assert not re.search(pattern, text), f"{path.name} contains a {what}"
    if path.suffix == ".yaml":
        assert "WANDB_API_KEY" not in text  # it travels with each job (cluster/submit.sh), never with the cluster


def test_secret_scan_catches_a_key():
    key = "0123456789abcdef" * 2 + "01234567"
    for fake in (f"WANDB_API_KEY: {key}", f'"WANDB_API_KEY": "{key}"', f"WANDB_API_KEY=local-{key[:12]}"):
        assert any(re.search(p, fake) for p in SECRETS.values()), fake
    for placeholder in ("WANDB_API_KEY=...", '"WANDB_API_KEY": "..."', "WANDB_API_KEY: $WANDB_API_KEY"):
        assert not any(re.search(p, placeholder) for p in SECRETS.values()), placeholder
    assert re.search(SECRETS["AWS access key id"], "AKIA" + "ABCDEFGHIJKLMNOP")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_node_runs_ray_with_token_authentication(path):
    """Issue 12 item 20: the job API (and the runtime_env of jobs in it) answers only holders of the token."""
    config = prepared(load(path))
    assert "--env RAY_AUTH_MODE=token" in config["docker"]["run_options"]
    for node_type in config["available_node_types"].values():
        assert "RAY_AUTH_MODE=disabled" not in str(node_type.get("docker", {}))
    assert config["file_mounts"].get("~/.ray/auth_token") == "~/.ray/auth_token"  # made by `ray get-auth-token`
    commands = config.get("head_start_ray_commands", []) + config.get("worker_start_ray_commands", [])
    assert not any("RAY_AUTH_MODE" in c for c in commands)  # one setting, in the container's environment


def test_aws_nodes_use_a_security_group_of_your_own():
    """Issue 12 item 21: with SecurityGroupIds on every node type the launcher creates no group with SSH from
    0.0.0.0/0; the README says how to make one that admits SSH from one address."""
    config = prepared(load(CLUSTER / "gpu.yaml"))
    groups = {name: t["node_config"].get("SecurityGroupIds") for name, t in config["available_node_types"].items()}
    assert all(groups.values()), groups
    readme = (CLUSTER / "README.md").read_text()
    assert "sg-REPLACE-WITH-YOURS" in readme and "--port 22" in readme and "/32" in readme
    assert "default-allow-ssh" in readme  # and the GCP equivalent


def test_submit_refuses_without_a_token_and_sends_it(tmp_path):
    import subprocess

    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        ["bash", str(CLUSTER / "submit.sh"), "raydrift", "tune", "x.py"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 1 and "no Ray token: run 'ray get-auth-token --generate'" in proc.stderr
    text = (CLUSTER / "submit.sh").read_text()
    assert "export RAY_AUTH_MODE=token" in text
