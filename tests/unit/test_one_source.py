"""One source for every pinned version and every name two parts of the project share.

Versions live in scripts/cluster/versions.env. What can read it does (the cluster scripts,
scripts/kind-up.sh, the kind CI workflow) and must not repeat a pinned value; what cannot (go.mod,
the argo-helm values, the chart, Dockerfiles, docs, tests) is checked against it here. The names the
generated workflows use (workflows/*.py) and the ones the chart gives (values.yaml, _helpers.tpl)
are checked against each other. Each test fails when one copy changes without the others.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import pytest
import yaml

REPO: Final = Path(__file__).resolve().parents[2]
SCRIPTS: Final = REPO / "scripts"
CLUSTER: Final = SCRIPTS / "cluster"
VERSIONS: Final = CLUSTER / "versions.env"
CHART: Final = REPO / "charts" / "modelyard"
KIND_WORKFLOW: Final = REPO / ".github" / "workflows" / "e2e-kind.yml"


@functools.cache
def pins() -> dict[str, str]:
    """versions.env as the scripts see it: sourced by bash."""
    names = re.findall(r"^([A-Z_0-9]+)=", VERSIONS.read_text(), re.MULTILINE)
    printed = subprocess.run(
        ["bash", "-c", 'source "$1"; shift; for v; do printf "%s\\0" "${!v}"; done', "_", VERSIONS, *names],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(zip(names, printed.split("\0")[:-1], strict=True))


def go_directive() -> str:
    """The oldest Go that builds the cluster: go.mod's `go` line."""
    found = re.search(r"^go (\S+)$", (CLUSTER / "go.mod").read_text(), re.MULTILINE)
    assert found, "scripts/cluster/go.mod has no go directive"
    return found[1]


def filled(text: str) -> str:
    """An addon manifest with its @NAME@ pins filled in, as scripts/cluster/up.sh applies it."""
    return re.sub(r"@([A-Z_0-9]+)@", lambda m: pins().get(m[1], m[0]), text)


def documents(path: Path) -> list[dict[str, Any]]:
    """An addon manifest's documents, pins filled in (the node's settings, such as @DNS_SERVICE_IP@, left as words)."""
    return [d for d in yaml.safe_load_all(re.sub(r"@([A-Z_0-9]+)@", r"\1", filled(path.read_text()))) if d]


def text_files() -> Iterator[Path]:
    """Every source, config and doc file of the project (not data, locks, caches or build output)."""
    suffixes = {".sh", ".yaml", ".yml", ".py", ".md", ".tpl", ".txt", ".json", ".env", ".toml", ".mod"}
    skip = {
        ".git",
        ".venv",
        ".cluster",
        ".tools",
        ".kind",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        "data",
    }
    for top in (
        "scripts",
        "charts",
        "images",
        "tests",
        "workflows",
        "modelyard",
        "benchmarks",
        ".github",
        ".ci",
    ):
        for dirpath, dirnames, filenames in os.walk(REPO / top):
            dirnames[:] = [d for d in dirnames if d not in skip]
            for name in filenames:
                path = Path(dirpath) / name
                if path.suffix in suffixes or name in {"Dockerfile", "run"}:
                    yield path
    yield from (REPO / name for name in ("README.md", "Makefile") if (REPO / name).exists())


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


# --- versions ---------------------------------------------------------------------------------

# Files that read versions.env (sourcing it, or filled in from it) and so must not spell out a pin.
READERS: Final = [
    *sorted(SCRIPTS.rglob("*.sh")),
    *sorted((CLUSTER / "addons").rglob("*.yaml")),
    SCRIPTS / "kind-config.yaml",
    KIND_WORKFLOW,
]
# Literal copies in them that cannot read it, each checked by a test below.
CHECKED_COPIES: Final = {SCRIPTS / "install-tools.sh": r"Ships helm \S+ and kubectl \S+:"}


def literal(value: str) -> re.Pattern[str]:
    """A pinned value as written anywhere: v1.2.3, go1.2.3 or 1.2.3, not as part of a longer version."""
    bare = re.escape(value.removeprefix("v"))
    return re.compile(rf"(?<![\w.])(?:v|go)?{bare}(?![\w.])")


@pytest.mark.parametrize("reader", READERS, ids=rel)
def test_the_files_that_read_versions_env_spell_out_no_pin(reader: Path) -> None:
    text = re.sub(CHECKED_COPIES.get(reader, "$^"), "", reader.read_text())
    values = {name: value for name, value in pins().items() if re.search(r"\d\.\d|^[0-9a-f]{64}$", value)}
    values["the go directive of scripts/cluster/go.mod"] = go_directive()
    repeated = {name for name, value in values.items() if literal(value).search(text)}
    assert not repeated, f"{rel(reader)} spells out {repeated}: read them from scripts/cluster/versions.env"


def test_the_scripts_and_the_kind_workflow_source_versions_env() -> None:
    for script in (CLUSTER / "lib.sh", SCRIPTS / "kind-up.sh"):
        assert re.search(r"^source \S*versions\.env\"?$", script.read_text(), re.MULTILINE), script
    install = next(
        s
        for s in yaml.safe_load(KIND_WORKFLOW.read_text())["jobs"]["e2e"]["steps"]
        if "curl" in s.get("run", "")
    )
    assert "source scripts/cluster/versions.env" in install["run"]
    used = set(re.findall(r"\$\{?([A-Z_][A-Z_0-9]*)", install["run"])) - {"HOME", "GITHUB_PATH"}
    assert used <= set(pins()), f"the install step uses {used - set(pins())}, which versions.env does not pin"
    assert {"KIND_VERSION", "KUBECTL_VERSION", "HELM_VERSION", "ARGO_WORKFLOWS_VERSION"} <= used
    assert "env" not in yaml.safe_load(KIND_WORKFLOW.read_text()), "the workflow pins nothing of its own"


def test_the_argo_helm_values_run_the_argo_release_the_cluster_builds() -> None:
    """Helm values cannot read versions.env: argo-values.yaml spells the release out."""
    argo = pins()["ARGO_WORKFLOWS_VERSION"]
    values = yaml.safe_load((SCRIPTS / "argo-values.yaml").read_text())
    assert values["images"]["tag"] == argo
    assert values["executor"]["image"]["tag"] == f"{argo}-nonroot"


def test_the_serving_stacks_helm_values_run_the_releases_the_cluster_builds() -> None:
    """kind installs Argo Rollouts and Traefik from their upstream charts at versions.env's releases."""
    rollouts = yaml.safe_load((SCRIPTS / "argo-rollouts-values.yaml").read_text())
    traefik = yaml.safe_load((SCRIPTS / "traefik-values.yaml").read_text())
    assert rollouts["controller"]["image"]["tag"] == pins()["ARGO_ROLLOUTS_VERSION"]
    assert traefik["image"]["tag"] == pins()["TRAEFIK_VERSION"]


def test_the_chart_names_the_argo_release_it_targets() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["annotations"]["modelyard.dev/argo-workflows-version"] == pins()["ARGO_WORKFLOWS_VERSION"]


def test_install_tools_helm_layer_ships_the_helm_and_kubectl_the_kind_workflow_downloads() -> None:
    text = (SCRIPTS / "install-tools.sh").read_text()
    shipped = re.search(r"Ships helm (\S+) and kubectl (\S+):", text)
    assert shipped, "install-tools.sh no longer says which helm and kubectl its helm layer ships"
    assert (shipped[1], shipped[2]) == (pins()["HELM_VERSION"], pins()["KUBECTL_VERSION"])


# Image repositories whose tag a pin sets (or, for kindest/node, whose whole reference).
PINNED_IMAGES: Final = {
    r"quay\.io/argoproj/(?:workflow-controller|argoexec|argocli)": "ARGO_WORKFLOWS_VERSION",
    r"registry\.k8s\.io/coredns/coredns": "COREDNS_VERSION",
    r"rancher/local-path-provisioner": "LOCAL_PATH_PROVISIONER_VERSION",
    r"registry\.k8s\.io/pause": "PAUSE_VERSION",
    r"(?<![\w/.-])(?:docker\.io/library/)?postgres": "POSTGRES_VERSION",
    r"(?<![\w/.-])(?:docker\.io/library/)?busybox": "BUSYBOX_VERSION",
    r"kindest/node": "KIND_NODE_IMAGE",
}


def test_every_literal_reference_to_a_pinned_image_carries_the_pinned_tag() -> None:
    """Dockerfile comments, docs and tests name these images with a literal tag."""
    expected = {repo: pins()[name] for repo, name in PINNED_IMAGES.items()}
    expected[r"kindest/node"] = expected[r"kindest/node"].split(":", 1)[1].split("@")[0]
    wrong, seen = [], set()
    for path in text_files():
        text = path.read_text(errors="replace")
        for repo, tag in expected.items():
            for found in re.finditer(rf"{repo}:(v?\d(?:[\w.]*\w)?)(-nonroot)?", text):
                seen.add(repo)
                if found[1] != tag:
                    wrong.append(f"{rel(path)}: {found[0]} (pinned: {tag})")
    assert not wrong, "\n".join(wrong)
    # The scan finds the copies it is meant to check.
    assert {
        r"(?<![\w/.-])(?:docker\.io/library/)?busybox",
        r"(?<![\w/.-])(?:docker\.io/library/)?postgres",
    } <= seen


# How README.md names each pinned component; a version given to the minor only must match it so far.
README_MENTIONS: Final = {
    r"Kubernetes v(\d+(?:\.\d+)*)": "KUBERNETES_VERSION",
    r"etcd v(\d+(?:\.\d+)*)": "ETCD_VERSION",
    r"Argo(?: Workflows)? \(?v(\d+(?:\.\d+)*)": "ARGO_WORKFLOWS_VERSION",
    r"CoreDNS v(\d+(?:\.\d+)*)": "COREDNS_VERSION",
    r"CNI plugins v(\d+(?:\.\d+)*)": "CNI_PLUGINS_VERSION",
    r"local-path-provisioner v(\d+(?:\.\d+)*)": "LOCAL_PATH_PROVISIONER_VERSION",
    r"kind v(\d+(?:\.\d+)*)": "KIND_VERSION",
    r"containerd (\d+\.\d+(?:\.\d+)*)": "CONTAINERD_SERIES",
    r"runc (\d+\.\d+(?:\.\d+)*)": "RUNC_SERIES",
    r"Argo Rollouts v(\d+(?:\.\d+)*)": "ARGO_ROLLOUTS_VERSION",
    r"Traefik v(\d+(?:\.\d+)*)": "TRAEFIK_VERSION",
}


def test_the_readme_names_the_pinned_versions() -> None:
    text = (REPO / "README.md").read_text()
    wrong = []
    for pattern, name in README_MENTIONS.items():
        pin = pins()[name].removeprefix("v")
        wrong += [m[0] for m in re.finditer(pattern, text) if not (pin == m[1] or pin.startswith(m[1] + "."))]
    wrong += [m[0] for m in re.finditer(r"Go (\d+\.\d+\.\d+)\+", text) if m[1] != go_directive()]
    assert not wrong, f"README.md disagrees with versions.env (or go.mod's go line): {wrong}"


# --- Argo on kind and on this machine's cluster -------------------------------------------------


def test_argo_runs_with_the_same_settings_on_kind_and_here() -> None:
    """argo-values.yaml (kind) and the addons of `make cluster-up` give Argo the same settings."""
    kind = yaml.safe_load((SCRIPTS / "argo-values.yaml").read_text())
    addons = CLUSTER / "addons" / "argo"
    containers: dict[str, dict[str, Any]] = {}
    for doc in documents(addons / "resources.yaml") + documents(addons / "argo-server-deployment.yaml"):
        for container in doc["spec"]["template"]["spec"]["containers"]:
            containers.setdefault(container["name"], {}).update(container)
    configmap = documents(addons / "workflow-controller-configmap.yaml")[0]
    executor = yaml.safe_load(configmap["data"]["executor"])
    assert containers["workflow-controller"]["resources"] == kind["controller"]["resources"]
    assert containers["workflow-controller"]["env"] == kind["controller"]["extraEnv"]
    assert containers["argo-server"]["resources"] == kind["server"]["resources"]
    assert executor["resources"] == kind["executor"]["resources"]
    assert executor["securityContext"] == kind["executor"]["securityContext"]
    assert executor["image"] == f"quay.io/argoproj/argoexec:{kind['executor']['image']['tag']}"
    args = containers["argo-server"]["args"]
    assert [f"--auth-mode={mode}" for mode in kind["server"]["authModes"]] == [
        a for a in args if a.startswith("--auth-mode")
    ]
    assert f"--secure={str(kind['server']['secure']).lower()}" in args


def test_cluster_up_waits_for_the_deployments_its_addons_create() -> None:
    up = (CLUSTER / "up.sh").read_text()
    waited = re.search(r"for deployment in ([^;]+); do", up)
    assert waited
    names = set(waited[1].replace("\\\n", " ").split())
    created = {
        f"{d['metadata'].get('namespace') or kustomization_namespace(path)}/{d['metadata']['name']}"
        for path in (CLUSTER / "addons").rglob("*.yaml")
        for d in documents(path)
        if d.get("kind") == "Deployment"
    }
    assert names and names <= created, names - created


def kustomization_namespace(path: Path) -> str | None:
    """The namespace a kustomization puts the objects of its directory in (their patches included)."""
    kustomization = path.parent / "kustomization.yaml"
    return yaml.safe_load(kustomization.read_text()).get("namespace") if kustomization.exists() else None


def test_the_kind_argo_release_name_is_the_one_its_users_are_pointed_at() -> None:
    """scripts/kind-up.sh installs Argo as a helm release; its Deployments and Services take its name."""
    up = (SCRIPTS / "kind-up.sh").read_text()
    release = re.search(r"helm upgrade --install (\S+) argo-workflows", up)
    namespace = re.search(r'ARGO_NAMESPACE="\$\{ARGO_NAMESPACE:-(\S+)\}"', up)
    assert release and namespace
    assert f"svc/{release[1]}-server 2746:2746" in up
    assert f"-n {namespace[1]} logs deploy/{release[1]}-workflow-controller" in KIND_WORKFLOW.read_text()
    assert (
        f"-n {namespace[1]} port-forward svc/{release[1]}-server"
        in (CHART / "templates" / "NOTES.txt").read_text()
    )
    kind_values = yaml.safe_load((CHART / "values-kind.yaml").read_text())
    argo_server = kind_values["networkPolicy"]["minioExtraFrom"][0]
    assert argo_server["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == namespace[1]


STUB: Final = """#!/bin/sh
echo "$(basename "$0") $*" >>"$STUB_LOG"
cat >/dev/null
case "$(basename "$0") $1" in
    "kind version") echo "kind $STUB_KIND_VERSION go1.24.0 linux/amd64" ;;
esac
"""


def run_kind_up(tmp_path: Path, kind_version: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """scripts/kind-up.sh (in a copy of the scripts) with stand-ins for docker, kind, helm and kubectl."""
    tree, bin_dir = tmp_path / "repo", tmp_path / "bin"
    shutil.copytree(SCRIPTS, tree / "scripts")
    shutil.copy(REPO / "pyproject.toml", tree)
    (tree / "images" / "minio").mkdir(parents=True)
    shutil.copy(REPO / "images" / "minio" / "Dockerfile", tree / "images" / "minio")
    bin_dir.mkdir()
    for tool in ("docker", "kind", "helm", "kubectl"):
        (bin_dir / tool).write_text(STUB)
        (bin_dir / tool).chmod(0o755)
    log = tmp_path / "calls.log"
    log.touch()
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "STUB_LOG": str(log),
        "STUB_KIND_VERSION": kind_version,
        "SKIP_BUILD": "1",
    }
    done = subprocess.run(
        ["bash", str(tree / "scripts" / "kind-up.sh")],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done, log.read_text().replace(str(tree), "REPO")


def test_kind_up_makes_the_cluster_from_the_pinned_node_image(tmp_path: Path) -> None:
    done, calls = run_kind_up(tmp_path, pins()["KIND_VERSION"])
    assert done.returncode == 0, done.stderr
    assert (
        f"kind create cluster --name modelyard --image {pins()['KIND_NODE_IMAGE']} "
        "--config REPO/scripts/kind-config.yaml" in calls
    )
    assert "--values REPO/scripts/argo-values.yaml" in calls
    assert "\n==> Argo Workflows (chart " in done.stderr  # kind-up's step headers


def test_kind_up_refuses_another_kind_than_the_node_image_is_built_for(tmp_path: Path) -> None:
    done, calls = run_kind_up(tmp_path, "v0.0.1")
    assert done.returncode == 1
    assert "kind v0.0.1 is installed" in done.stderr
    assert f"{pins()['KIND_NODE_IMAGE']} is built for kind {pins()['KIND_VERSION']}" in done.stderr
    assert "kind create" not in calls


# --- the names the generated workflows and the chart share -----------------------------------


def constants(module: str) -> dict[str, Any]:
    """Module-level constants of workflows/<module>.py, read from its source (an f-string: its literal start)."""
    tree = ast.parse((REPO / "workflows" / f"{module}.py").read_text())
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None:
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            value = node.value
            if isinstance(value, ast.JoinedStr):
                head = value.values[0] if value.values else None
                found_value: Any = head.value if isinstance(head, ast.Constant) else ""
            else:
                try:
                    found_value = ast.literal_eval(value)
                except (ValueError, TypeError, SyntaxError):
                    continue
            for target in targets:
                if isinstance(target, ast.Name):
                    found[target.id] = found_value
    return found


def helpers_dict(name: str) -> str:
    """The arguments of `$name := dict ...` in _helpers.tpl."""
    found = re.search(rf"\${name} := dict (.+?) -\}}\}}", (CHART / "templates" / "_helpers.tpl").read_text())
    assert found, f"_helpers.tpl no longer builds ${name}"
    return found[1]


def test_the_workflows_and_the_chart_agree_on_service_accounts_secrets_and_parameters() -> None:
    common, monitor, retrain = constants("common"), constants("monitor_cron"), constants("retrain_cron")
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    # _helpers.tpl renames the accounts the generator names to the ones values.yaml gives.
    accounts = dict(
        re.findall(r'"([^"]+)" \$\.Values\.serviceAccounts\.(\w+)\.name', helpers_dict("accounts"))
    )
    assert accounts == {common["SERVICE_ACCOUNT"]: "workflow", monitor["SUBMITTER"]: "submitter"}
    assert values["serviceAccounts"]["workflow"]["name"] == common["SERVICE_ACCOUNT"]
    assert values["serviceAccounts"]["submitter"]["name"] == monitor["SUBMITTER"]
    assert values["datasets"]["secret"]["name"] == common["DATASET_SECRET"]
    # The parameters the chart sets on every template.
    overrides = set(re.findall(r'"([^"]+)" \(include ', helpers_dict("overrides")))
    assert overrides == {common["IMAGE"], common["TRACKING_URI"]}
    assert set(values["pipeline"]["cronWorkflows"]) == {retrain["NAME"], monitor["NAME"]}


def test_the_workflows_defaults_are_what_the_chart_deploys() -> None:
    common = constants("common")
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    # The trainer image: the chart's default (repository, appVersion) is the generator's.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert common["DEFAULT_IMAGE"] == f"{values['pipeline']['image']['repository']}:"
    assert chart["appVersion"] == project
    # The MLflow Service of a release named like the chart: <fullname>-mlflow on mlflow.service.port.
    url = urlsplit(common["DEFAULT_TRACKING_URI"])
    assert url.hostname == f"{chart['name']}-mlflow"
    assert url.port == values["mlflow"]["service"]["port"]
    tracking = re.search(
        r'define "modelyard.trackingUri".*?\{\{- end -\}\}\n\{\{- end -\}\}', helpers, re.DOTALL
    )
    assert tracking and '"component" "mlflow"' in tracking[0] and ".Values.mlflow.service.port" in tracking[0]
    # Labels and the pods' user.
    for key, value in common["LABELS"].items():
        assert f"{key}: {value}\n" in helpers
    security = values["podSecurityContext"]
    assert security["runAsUser"] == security["runAsGroup"] == security["fsGroup"] == common["UID"]
