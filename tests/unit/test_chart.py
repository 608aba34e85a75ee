"""Template tests of charts/modelyard with the real helm, kubernetes-validate, checkov and hadolint.

Tools come from `bash scripts/install-tools.sh` (.tools/bin); each test skips, naming the tool,
when it is missing. Argo's schema comes from its Go module (tests/argo_tools.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from argo_tools import argo_validator, argo_version
from chart_helpers import (
    CHART_DIR,
    KUBERNETES_VERSION,
    NAMESPACE,
    REPO_ROOT,
    SCENARIOS,
    builtin_objects,
    containers,
    decoded_secret,
    find,
    helm_template_args,
    is_argo,
    one,
    pod_specs,
    render,
    render_text,
    run,
    scenario,
    secret_references,
    tool,
    write_yaml,
)

MLFLOW_URL = f"http://modelyard-mlflow.{NAMESPACE}.svc:5000"
MINIO_URL = f"http://modelyard-minio.{NAMESPACE}.svc:9000"
WELL_KNOWN_PASSWORDS = {"minioadmin", "minio123", "password", "postgres", "mlflow", "changeme", "admin"}


# --- helm lint and schema ----------------------------------------------------------------


@pytest.mark.parametrize("values_files", [[], *(v for v in SCENARIOS.values() if v)], ids=str)
def test_helm_lint_passes_strictly_for_every_scenario(values_files):
    args = [tool("helm"), "lint", "--strict", str(CHART_DIR)]
    for values_file in values_files:
        args += ["--values", str(CHART_DIR / values_file)]
    run(args)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["minio.persistance.size=1Gi"], "additional properties 'persistance' not allowed"),
        (["mlfow.image.tag=1.0.0"], "additional properties 'mlfow' not allowed"),
        (["networkPolicy.enabled=yes"], "got string, want boolean"),
        (["mlflow.backendStore.type=mysql"], "value must be one of 'postgresql', 'sqlite'"),
        (["pipeline.image.tag=latest"], "/pipeline/image/tag"),
        (["objectStore.external.enabled=true"], "/objectStore/external/endpoint"),
        (["containerSecurityContext.allowPrivilegeEscalation=true"], "allowPrivilegeEscalation"),
        (
            ["minio.auth.existingSecret=acme-minio-root", "minio.auth.rootPassword=s3cr3t-pass"],
            "/minio/auth/rootPassword",
        ),
        (
            ["postgresql.auth.existingSecret=acme-postgresql", "postgresql.auth.password=s3cr3t-pass"],
            "/postgresql/auth/password",
        ),
        (["postgresql.auth.password=short"], "/postgresql/auth/password"),
        (["mlflow.s3.existingSecret=Not_A_Secret_Name"], "/mlflow/s3/existingSecret"),
        (["serving.models[0].name=Churn_Model"], "/serving/models/0/name"),
        (["serving.models[0].name=" + "m" * 41], "/serving/models/0/name"),
        (["serving.canary.weights={0,25}"], "/serving/canary/weights/0"),
        (["serving.canary.weights={5,100}"], "/serving/canary/weights/1"),
        (
            ["serving.enabled=true", "serving.models[0].name=churn", "serving.canary.weights={25,5}"],
            "serving.canary.weights must increase",
        ),
        (
            ["serving.enabled=true", "serving.models[0].name=churn", "fullnameOverride=" + "f" * 50],
            "a Service name takes at most 63",
        ),
    ],
    ids=[
        "misspelt-nested-key",
        "misspelt-top-level-key",
        "bad-type",
        "bad-enum",
        "latest-tag",
        "external-without-endpoint",
        "privilege-escalation",
        "root-existing-secret-and-password",
        "postgresql-existing-secret-and-password",
        "short-password",
        "bad-secret-name",
        "bad-model-name",
        "long-model-name",
        "canary-weight-0",
        "canary-weight-100",
        "canary-weights-decreasing",
        "serving-names-too-long",
    ],
)
def test_values_schema_rejects_bad_values_with_a_clear_message(sets, message):
    proc = run(helm_template_args(sets=sets), check=False)
    assert proc.returncode != 0, f"helm template accepted {sets}"
    assert message in proc.stderr, proc.stderr


def test_every_values_key_has_a_helm_docs_comment():
    lines = (CHART_DIR / "values.yaml").read_text().splitlines()
    assert lines[0] == "# yaml-language-server: $schema=values.schema.json"
    undocumented = []
    for index, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z][\w-]*):(.*)$", line)
        if not match:
            continue
        indent, key, rest = match.groups()
        # Keys whose value is a nested block of keys are documented by their leaves.
        nxt = next((ln for ln in lines[index + 1 :] if ln.strip() and not ln.strip().startswith("#")), "")
        has_children = (
            rest.strip() == ""
            and len(nxt) - len(nxt.lstrip()) > len(indent)
            and re.match(r"^\s*[A-Za-z][\w-]*:", nxt)
        )
        if has_children:
            continue
        previous = lines[index - 1].strip() if index else ""
        if not previous.startswith("# --") and not _inside_documented_default(lines, index):
            undocumented.append(f"line {index + 1}: {key}")
    assert not undocumented, "values without a `# --` comment:\n" + "\n".join(undocumented)


def _inside_documented_default(lines: list[str], index: int) -> bool:
    """True when the key sits inside a documented map default (e.g. resources.requests.cpu)."""
    indent = len(lines[index]) - len(lines[index].lstrip())
    for j in range(index - 1, -1, -1):
        line = lines[j]
        if not line.strip() or line.strip().startswith("#"):
            continue
        parent_indent = len(line) - len(line.lstrip())
        if parent_indent < indent:
            above = lines[j - 1].strip() if j else ""
            if above.startswith("# --"):
                return True
            indent = parent_indent
            if indent == 0:
                return False
    return False


# --- Kubernetes and Argo validity ----------------------------------------------------------


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_kubernetes_object_passes_strict_validation(name, tmp_path):
    objs = builtin_objects(scenario(name))
    assert objs
    path = write_yaml(tmp_path / f"{name}.yaml", objs)
    run(
        [
            tool("kubernetes-validate"),
            "--strict",
            "--kubernetes-version",
            KUBERNETES_VERSION,
            "--quiet",
            str(path),
        ]
    )


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_argo_object_passes_the_strict_argo_v4_schema(name):
    argo = [o for o in scenario(name) if is_argo(o)]
    if name == "minimal":
        assert argo == []
        return
    assert {o["kind"] for o in argo} == {"WorkflowTemplate", "CronWorkflow"}
    assert {o["metadata"]["name"] for o in argo if o["kind"] == "CronWorkflow"} == {
        "modelyard-retrain",
        "modelyard-monitor",
    }
    for obj in argo:
        errors = sorted(argo_validator(obj["kind"]).iter_errors(obj), key=lambda e: list(e.path))
        assert not errors, f"{obj['kind']}/{obj['metadata']['name']}: " + "; ".join(
            f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors
        )


def test_the_strict_argo_schema_catches_fields_removed_in_v4():
    cron = one(scenario("default"), "CronWorkflow", "modelyard-retrain")
    cron["spec"]["schedule"] = "0 3 * * *"
    errors = [e.message for e in argo_validator("CronWorkflow").iter_errors(cron)]
    assert any("'schedule' was unexpected" in e for e in errors), errors


# --- checkov -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkov_report(tmp_path_factory):
    """One checkov run over every scenario's rendered Kubernetes objects."""
    checkov = tool("checkov")
    out_dir = tmp_path_factory.mktemp("rendered")
    for name in SCENARIOS:
        write_yaml(out_dir / f"{name}.yaml", builtin_objects(scenario(name)))
    proc = run(
        [
            checkov,
            "--directory",
            str(out_dir),
            "--framework",
            "kubernetes",
            "--skip-download",
            "--output",
            "json",
        ],
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    return report if isinstance(report, dict) else report[0]


def test_checkov_finds_no_failed_check_in_any_scenario(checkov_report):
    failed = checkov_report["results"]["failed_checks"]
    assert not failed, "\n".join(
        f"{c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']})" for c in failed
    )
    assert checkov_report["summary"]["passed"] > 500


def test_every_checkov_skip_is_an_annotation_with_a_reason(checkov_report):
    skipped = checkov_report["results"]["skipped_checks"]
    assert skipped
    for check in skipped:
        reason = (check.get("check_result") or {}).get("suppress_comment", "")
        assert len(reason) > 30, f"{check['check_id']} on {check['resource']} skipped without a reason"


def test_checkov_helm_framework_fails_only_on_the_default_namespace_it_renders_into():
    checkov = tool("checkov")
    tool("helm")  # checkov's helm framework shells out to helm
    proc = run(
        [
            checkov,
            "--directory",
            str(CHART_DIR),
            "--framework",
            "helm",
            "--skip-download",
            "--quiet",
            "--compact",
            "--output",
            "json",
        ],
        check=False,
    )
    report = json.loads(proc.stdout)
    report = report if isinstance(report, dict) else report[0]
    assert "results" in report, f"checkov's helm framework did not run: {proc.stderr[-2000:]}"
    assert report["summary"]["passed"] > 200
    failed = {c["check_id"] for c in report["results"]["failed_checks"]}
    # checkov renders without --namespace, so objects land in "default" (CKV_K8S_21);
    # the rendered-YAML scan above, with a real namespace, has no failure at all.
    assert failed <= {"CKV_K8S_21"}, failed


# --- pod security -------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_pod_meets_the_restricted_pod_security_standard(name):
    specs = list(pod_specs(scenario(name)))
    assert specs
    for label, spec in specs:
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, label
        assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault", label
        assert spec["automountServiceAccountToken"] is False, label
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC"), label
        for container in containers(spec):
            where = f"{label} container {container['name']}"
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert not sc["capabilities"].get("add"), where
            assert sc["runAsNonRoot"] is True, where
            assert sc.get("privileged") is not True, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", where
            assert int(pod_sc.get("runAsUser", sc.get("runAsUser", 0))) > 0, where


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_container_sets_resource_requests_and_limits(name):
    for label, spec in pod_specs(scenario(name)):
        for container in containers(spec):
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[kind]), f"{label} {container['name']} {kind}"


@pytest.mark.parametrize("name", ["default", "serving"])
def test_every_pod_has_a_writable_tmp_for_its_read_only_root_filesystem(name):
    for label, spec in pod_specs(scenario(name)):
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in containers(spec):
            tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            if label.startswith("Pod/") and "test-mlflow" in label:
                continue  # its Python writes nothing
            assert tmp, f"{label} {container['name']} has no /tmp"
            assert "emptyDir" in volumes[tmp[0]["name"]], label


def test_pipeline_workflow_pods_are_restricted_too():
    for obj in find(scenario("default"), "WorkflowTemplate"):
        name = obj["metadata"]["name"]
        pod_sc = obj["spec"]["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, name
        assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault", name
        for template in obj["spec"]["templates"]:
            container = template.get("container") or template.get("script")
            if not container:
                continue
            where = f"{name}/{template['name']}"
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), where


# --- RBAC ---------------------------------------------------------------------------------


TASK_RESULTS_RULE = {
    "apiGroups": ["argoproj.io"],
    "resources": ["workflowtaskresults"],
    "verbs": ["create", "patch"],
}


def test_workflow_role_grants_exactly_create_and_patch_on_workflowtaskresults():
    objs = scenario("default")
    role = one(objs, "Role", "modelyard-workflow")
    assert role["rules"] == [TASK_RESULTS_RULE]
    binding = one(objs, "RoleBinding", "modelyard-workflow")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "modelyard-workflow", "namespace": NAMESPACE}
    ]
    assert one(objs, "ServiceAccount", "modelyard-workflow")


def test_submitter_role_grants_exactly_create_on_workflows_and_create_and_patch_on_workflowtaskresults():
    objs = scenario("default")
    role = one(objs, "Role", "modelyard-submitter")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["metadata"]["labels"]["app.kubernetes.io/component"] == "submitter"
    assert role["rules"] == [
        {"apiGroups": ["argoproj.io"], "resources": ["workflows"], "verbs": ["create"]},
        TASK_RESULTS_RULE,
    ]
    binding = one(objs, "RoleBinding", "modelyard-submitter")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "modelyard-submitter",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "modelyard-submitter", "namespace": NAMESPACE}
    ]
    assert one(objs, "ServiceAccount", "modelyard-submitter")["metadata"]["namespace"] == NAMESPACE


def test_the_submitter_service_account_name_comes_from_values_and_can_be_left_to_the_cluster():
    objs = render(sets=["serviceAccounts.submitter.name=ml-submitter"])
    assert one(objs, "ServiceAccount", "ml-submitter")
    assert one(objs, "RoleBinding", "modelyard-submitter")["subjects"][0]["name"] == "ml-submitter"
    assert (
        _submit_template(one(objs, "CronWorkflow", "modelyard-monitor"))["serviceAccountName"]
        == "ml-submitter"
    )
    objs = render(sets=["serviceAccounts.submitter.create=false"])
    assert not find(objs, "ServiceAccount", "modelyard-submitter")
    assert not find(objs, "Role", "modelyard-submitter") and not find(
        objs, "RoleBinding", "modelyard-submitter"
    )
    assert _submit_template(one(objs, "CronWorkflow", "modelyard-monitor"))["serviceAccountName"] == (
        "modelyard-submitter"
    )


def test_the_chart_creates_no_cluster_wide_rbac_and_no_other_service_account():
    for name in SCENARIOS:
        objs = scenario(name)
        assert not find(objs, "ClusterRole") and not find(objs, "ClusterRoleBinding"), name
        accounts = {o["metadata"]["name"] for o in find(objs, "ServiceAccount")}
        assert accounts <= {"modelyard-workflow", "ml-pipeline", "modelyard-submitter"}, name
        for label, spec in pod_specs(objs):
            # Serving pods run as the pipeline's account, without its token (checked with the restricted pods).
            expected = "modelyard-workflow" if label.startswith("Rollout/") else None
            assert spec.get("serviceAccountName") == expected, f"{name} {label} should use no API token"


def test_the_workflow_service_account_name_comes_from_values():
    objs = scenario("overrides")
    assert one(objs, "ServiceAccount", "ml-pipeline")
    assert one(objs, "RoleBinding", "modelyard-workflow")["subjects"][0]["name"] == "ml-pipeline"
    for template in find(objs, "WorkflowTemplate"):
        assert template["spec"]["serviceAccountName"] == "ml-pipeline"


# --- Argo artifact repository ---------------------------------------------------------------


def _artifact_repository(objs):
    config_map = one(objs, "ConfigMap", "artifact-repositories")
    key = config_map["metadata"]["annotations"]["workflows.argoproj.io/default-artifact-repository"]
    return yaml.safe_load(config_map["data"][key])["s3"]


def test_default_artifact_repository_points_at_the_argo_bucket_with_argos_own_user():
    objs = scenario("default")
    s3 = _artifact_repository(objs)
    assert s3["bucket"] == "argo-artifacts"
    assert s3["endpoint"] == f"modelyard-minio.{NAMESPACE}.svc:9000"
    assert s3["insecure"] is True
    secret_name = s3["accessKeySecret"]["name"]
    assert s3["secretKeySecret"]["name"] == secret_name
    secret = decoded_secret(one(objs, "Secret", secret_name))
    assert secret[s3["accessKeySecret"]["key"]] == "argo-workflows"
    assert len(secret[s3["secretKeySecret"]["key"]]) >= 32
    # Argo's user is not MLflow's and not the root user.
    root = decoded_secret(one(objs, "Secret", "modelyard-minio-root"))
    assert secret["AWS_ACCESS_KEY_ID"] != root["MINIO_ROOT_USER"]


def test_external_object_store_switches_minio_off_and_points_everything_at_it():
    objs = scenario("external")
    assert not [o for o in objs if "minio" in o["metadata"]["name"]]
    assert not find(objs, "Job")
    assert not find(objs, "Secret", "modelyard-dataset-s3")
    s3 = _artifact_repository(objs)
    assert s3 == {
        "bucket": "acme-argo-artifacts",
        "endpoint": "s3.eu-west-1.amazonaws.com",
        "insecure": False,
        "region": "eu-west-1",
        "accessKeySecret": {"name": "acme-s3-credentials", "key": "AWS_ACCESS_KEY_ID"},
        "secretKeySecret": {"name": "acme-s3-credentials", "key": "AWS_SECRET_ACCESS_KEY"},
    }
    env = _mlflow_env(objs)
    assert env["MLFLOW_S3_ENDPOINT_URL"]["value"] == "https://s3.eu-west-1.amazonaws.com"
    assert env["MLFLOW_ARTIFACTS_DESTINATION"]["value"] == "s3://acme-mlflow-artifacts"
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "acme-s3-credentials"


def test_setup_job_creates_all_buckets_and_a_least_privilege_user_each():
    objs = scenario("default")
    job = one(objs, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["BUCKETS"].split() == ["mlflow-artifacts", "argo-artifacts", "datasets"]
    assert env["S3_ENDPOINT"] == MINIO_URL
    config = one(objs, "ConfigMap", "modelyard-minio-setup")["data"]
    expectations = {
        "modelyard-mlflow-rw": ("mlflow-artifacts", True),
        "modelyard-argo-rw": ("argo-artifacts", True),
        "modelyard-datasets-ro": ("datasets", False),
    }
    for policy, (bucket, writable) in expectations.items():
        statements = json.loads(config[f"{policy}.json"])["Statement"]
        resources = {r for s in statements for r in s["Resource"]}
        assert resources == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}, policy
        actions = {a for s in statements for a in s["Action"]}
        assert ("s3:PutObject" in actions) is writable, policy
        assert not any(a.endswith("*") for a in actions), policy
        assert f"ensure_user {policy.split('-')[1]} {policy}" in config["setup.sh"]
    # Only the Job mounts the root credentials.
    root_users = [
        label
        for label, spec in pod_specs(objs)
        if any(
            v.get("secret", {}).get("secretName") == "modelyard-minio-root" for v in spec.get("volumes", [])
        )
        or any(
            e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == "modelyard-minio-root"
            for c in containers(spec)
            for e in c.get("env", [])
        )
    ]
    assert sorted(root_users) == ["Job/modelyard-minio-setup", "StatefulSet/modelyard-minio"]


def test_dataset_secret_holds_a_read_only_user_and_the_endpoint():
    secret = decoded_secret(one(scenario("default"), "Secret", "modelyard-dataset-s3"))
    assert secret["AWS_ACCESS_KEY_ID"] == "dataset-reader"
    assert secret["AWS_ENDPOINT_URL"] == MINIO_URL
    assert len(secret["AWS_SECRET_ACCESS_KEY"]) >= 32


# --- secrets ------------------------------------------------------------------------------


def test_no_secret_holds_a_fixed_password():
    first, second = scenario("default"), render([])
    secrets = {o["metadata"]["name"]: decoded_secret(o) for o in find(first, "Secret")}
    again = {o["metadata"]["name"]: decoded_secret(o) for o in find(second, "Secret")}
    assert set(secrets) == {
        "modelyard-minio-root",
        "modelyard-mlflow-s3",
        "modelyard-argo-s3",
        "modelyard-dataset-s3",
        "modelyard-postgresql",
    }
    for name, data in secrets.items():
        for key, value in data.items():
            if not re.search(r"PASSWORD|SECRET", key):
                continue
            assert value.lower() not in WELL_KNOWN_PASSWORDS, f"{name}.{key}"
            assert len(value) >= 32 and value.isalnum(), f"{name}.{key} is not a long random token"
            assert again[name][key] != value, f"{name}.{key} is the same in two renders: fixed"


def test_generated_secrets_are_read_back_with_lookup_for_upgrades():
    helpers = (CHART_DIR / "templates" / "_helpers.tpl").read_text()
    assert 'lookup "v1" "Secret"' in helpers
    for template in (
        "minio/minio-secret.yaml",
        "minio/minio-user-secrets.yaml",
        "postgresql/postgresql-secret.yaml",
    ):
        text = (CHART_DIR / "templates" / template).read_text()
        assert "modelyard.secretValue" in text and "randAlphaNum" not in text, template


# The chart's own Secret -> the user's Secret in ci/existing-secrets-values.yaml.
USER_SECRETS = {
    "modelyard-minio-root": "acme-minio-root",
    "modelyard-postgresql": "acme-postgresql",
    "modelyard-mlflow-s3": "acme-mlflow-s3",
    "modelyard-argo-s3": "acme-argo-s3",
    "modelyard-dataset-s3": "acme-dataset-s3",
}
# Explicit credentials: values key -> (Secret, key that must hold the value, value).
EXPLICIT_CREDENTIALS = {
    "minio.auth.rootUser": ("modelyard-minio-root", "MINIO_ROOT_USER", "acme-root"),
    "minio.auth.rootPassword": ("modelyard-minio-root", "MINIO_ROOT_PASSWORD", "root-password-0123"),
    "postgresql.auth.password": ("modelyard-postgresql", "POSTGRES_PASSWORD", "db-password-0123"),
    "mlflow.s3.secretKey": ("modelyard-mlflow-s3", "AWS_SECRET_ACCESS_KEY", "mlflow-key-0123"),
    "argo.artifactRepository.secretKey": ("modelyard-argo-s3", "AWS_SECRET_ACCESS_KEY", "argo-key-0123"),
    "datasets.secret.secretKey": ("modelyard-dataset-s3", "AWS_SECRET_ACCESS_KEY", "dataset-key-0123"),
}


def test_with_every_existing_secret_helm_template_is_byte_identical_and_creates_no_secret():
    values = SCENARIOS["existing-secrets"]
    first, second = render_text(values), render_text(values)
    assert first == second, "two helm template renders with existingSecret values differ"
    objs = [o for o in yaml.safe_load_all(first) if o]
    assert find(objs, "Secret") == [], [o["metadata"]["name"] for o in find(objs, "Secret")]


def test_with_existing_secrets_every_consumer_reads_the_users_secret_with_the_same_keys():
    default = secret_references(scenario("default"))
    assert {name for _, _, name, _ in default} >= set(USER_SECRETS), "the default render uses every Secret"
    expected = {(obj, path, USER_SECRETS.get(name, name), key) for obj, path, name, key in default}
    refs = secret_references(scenario("existing-secrets"))
    assert refs == expected, (
        f"missing: {sorted(expected - refs, key=str)}\nunexpected: {sorted(refs - expected, key=str)}"
    )
    readers = {obj for obj, _, name, _ in refs if name in USER_SECRETS.values()}
    assert {
        "StatefulSet/modelyard-minio",
        "StatefulSet/modelyard-postgresql",
        "Deployment/modelyard-mlflow",
        "Job/modelyard-minio-setup",
        "ConfigMap/artifact-repositories",
        "WorkflowTemplate/modelyard-train",
        "CronWorkflow/modelyard-monitor",
    } <= readers


def test_with_explicit_credentials_helm_template_is_byte_identical_and_the_secrets_hold_them():
    sets = [f"{key}={value}" for key, (_, _, value) in EXPLICIT_CREDENTIALS.items()]
    first, second = render_text(sets=sets), render_text(sets=sets)
    assert first == second, "two helm template renders with explicit credentials differ"
    objs = [o for o in yaml.safe_load_all(first) if o]
    secrets = {o["metadata"]["name"]: decoded_secret(o) for o in find(objs, "Secret")}
    assert set(secrets) == set(USER_SECRETS)
    for key, (secret, field, value) in EXPLICIT_CREDENTIALS.items():
        assert secrets[secret][field] == value, key
    assert secrets["modelyard-mlflow-s3"]["AWS_ACCESS_KEY_ID"] == "mlflow"
    assert secret_references(objs) == secret_references(scenario("default"))


def test_workflow_pods_read_the_dataset_secret_under_its_configured_name():
    objs = render(sets=["datasets.secret.name=ml-datasets"])
    assert one(objs, "Secret", "ml-datasets") and not find(objs, "Secret", "modelyard-dataset-s3")
    workflow_refs = {name for obj, _, name, _ in secret_references([o for o in objs if is_argo(o)])}
    assert workflow_refs == {"ml-datasets", "modelyard-alerts"}
    volumes = one(objs, "Job")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "datasets", "secret": {"secretName": "ml-datasets"}} in volumes


def test_the_readme_documents_every_existing_secret_and_gitops_renders():
    readme = (CHART_DIR / "README.md").read_text()

    def existing_secrets(node, path=""):
        for key, value in node.items():
            if key == "existingSecret":
                yield f"{path}{key}"
            elif isinstance(value, dict):
                yield from existing_secrets(value, f"{path}{key}.")

    paths = list(existing_secrets(yaml.safe_load((CHART_DIR / "values.yaml").read_text())))
    assert len(paths) == len(USER_SECRETS)
    for path in paths:
        assert f"`{path}`" in readme, path
    assert "helm template" in readme and "Argo CD" in readme


def test_root_and_database_secrets_survive_uninstall():
    objs = scenario("default")
    for name in ("modelyard-minio-root", "modelyard-postgresql"):
        assert one(objs, "Secret", name)["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


# --- MLflow -------------------------------------------------------------------------------


def _mlflow_env(objs):
    deployment = one(objs, "Deployment", "modelyard-mlflow")
    return {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_mlflow_uses_postgresql_from_the_secret_and_proxies_artifacts_to_minio():
    env = _mlflow_env(scenario("default"))
    assert env["MLFLOW_DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "modelyard-postgresql",
        "key": "POSTGRES_PASSWORD",
    }
    assert env["MLFLOW_BACKEND_STORE_URI"]["value"] == (
        f"postgresql+psycopg2://mlflow:$(MLFLOW_DB_PASSWORD)@modelyard-postgresql.{NAMESPACE}.svc:5432/mlflow"
    )
    assert env["MLFLOW_ARTIFACTS_DESTINATION"]["value"] == "s3://mlflow-artifacts"
    assert env["MLFLOW_S3_ENDPOINT_URL"]["value"] == MINIO_URL
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "modelyard-mlflow-s3"
    # The password env var is defined before the URI that expands it.
    names = list(env)
    assert names.index("MLFLOW_DB_PASSWORD") < names.index("MLFLOW_BACKEND_STORE_URI")


def test_mlflow_allows_its_in_cluster_service_names_and_probes_health():
    objs = scenario("default")
    env = _mlflow_env(objs)
    hosts = env["MLFLOW_SERVER_ALLOWED_HOSTS"]["value"].split(",")
    assert f"modelyard-mlflow.{NAMESPACE}.svc:5000" in hosts
    assert f"modelyard-mlflow.{NAMESPACE}.svc.cluster.local:5000" in hosts
    assert "modelyard-mlflow:5000" in hosts and "localhost:*" in hosts
    assert "*" not in hosts
    container = one(objs, "Deployment", "modelyard-mlflow")["spec"]["template"]["spec"]["containers"][0]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"


def test_sqlite_backend_replaces_postgresql_with_a_pvc():
    objs = scenario("sqlite")
    assert not [o for o in objs if "postgresql" in o["metadata"]["name"]]
    assert _mlflow_env(objs)["MLFLOW_BACKEND_STORE_URI"]["value"] == "sqlite:////var/lib/mlflow/mlflow.db"
    assert one(objs, "PersistentVolumeClaim", "modelyard-mlflow-sqlite")
    assert one(objs, "Deployment")["spec"]["strategy"]["type"] == "Recreate"


def test_postgresql_runs_the_pinned_official_image_with_its_v18_data_layout():
    sts = one(scenario("default"), "StatefulSet", "modelyard-postgresql")
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "postgres:18.6"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PGDATA"].startswith("/var/lib/postgresql/")
    assert env["POSTGRES_PASSWORD_FILE"] == "/secrets/POSTGRES_PASSWORD"
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {
        "/var/lib/postgresql",
        "/var/run/postgresql",
    }


def test_minio_probes_its_health_endpoints_and_keeps_data_on_a_pvc():
    sts = one(scenario("default"), "StatefulSet", "modelyard-minio")
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/minio/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/minio/health/ready"
    # The chart's default is the image scripts/build-images.sh builds from images/minio.
    built = run(["bash", str(REPO_ROOT / "scripts" / "build-images.sh"), "--print-tags"]).stdout
    assert f"MODELYARD_MINIO_IMAGE={container['image']}" in built.splitlines()
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "10Gi"


# --- pipeline -----------------------------------------------------------------------------


# Parameter values ci/overrides-values.yaml sets, by name.
OVERRIDDEN = {
    "image": "registry.example.com/modelyard/trainer:1.2.3",
    "tracking-uri": "https://mlflow.example.com",
    "dataset": "s3://datasets/iris.csv",
    "label": "species",
    "model-name": "iris",
}


def _parameters(spec):
    return {p["name"]: p.get("value") for p in spec.get("arguments", {}).get("parameters", [])}


def _source(file_name):
    return yaml.safe_load((CHART_DIR / "files" / "workflows" / file_name).read_text())


def test_pipeline_templates_get_image_tracking_uri_and_service_account_from_values():
    objs = scenario("default")
    train = one(objs, "WorkflowTemplate", "modelyard-train")
    params = _parameters(train["spec"])
    assert params["image"] == "modelyard/trainer:0.1.0"
    assert params["tracking-uri"] == MLFLOW_URL
    assert train["spec"]["serviceAccountName"] == "modelyard-workflow"
    assert train["metadata"]["namespace"] == NAMESPACE
    assert train["metadata"]["labels"]["app.kubernetes.io/part-of"] == "modelyard"


def test_parameter_overrides_replace_only_declared_parameters_and_keep_the_rest():
    objs = scenario("overrides")
    for obj in find(objs, "WorkflowTemplate"):
        source = _source(f"{obj['metadata']['name'].removeprefix('modelyard-')}.yaml")
        before, after = _parameters(source["spec"]), _parameters(obj["spec"])
        assert list(after) == list(before), "no parameter is added or removed"
        for name, value in before.items():
            assert after[name] == OVERRIDDEN.get(name, value), name


def test_argo_expressions_survive_unchanged():
    objs = scenario("default")
    for obj in (o for o in objs if o["kind"] == "WorkflowTemplate"):
        rendered = json.dumps(obj)
        source = json.dumps(_source(f"{obj['metadata']['name'].removeprefix('modelyard-')}.yaml"))
        expressions = set(re.findall(r"\{\{[^}]+\}\}", source))
        assert expressions, "placeholder templates use Argo expressions"
        assert expressions == set(re.findall(r"\{\{[^}]+\}\}", rendered))


def test_cron_workflow_schedule_timezone_and_suspend_come_from_values():
    cron = one(scenario("overrides"), "CronWorkflow", "modelyard-retrain")
    assert cron["spec"]["schedules"] == ["30 2 * * 1", "30 2 * * 4"]
    assert cron["spec"]["timezone"] == "Europe/Berlin"
    assert "schedule" not in cron["spec"]
    assert cron["spec"]["workflowSpec"]["workflowTemplateRef"] == {"name": "modelyard-train"}
    before = _parameters(_source("retrain-cron.yaml")["spec"]["workflowSpec"])
    after = _parameters(cron["spec"]["workflowSpec"])
    assert list(after) == list(before)
    for name, value in before.items():
        assert after[name] == OVERRIDDEN.get(name, value), name
    assert one(scenario("kind"), "CronWorkflow", "modelyard-retrain")["spec"]["suspend"] is True


def test_empty_cron_settings_keep_the_generated_schedule():
    source = _source("retrain-cron.yaml")["spec"]
    cron = one(scenario("default"), "CronWorkflow", "modelyard-retrain")["spec"]
    assert cron["schedules"] == source["schedules"]
    assert cron.get("timezone") == source.get("timezone")
    assert cron["suspend"] is False


def _submit_template(cron):
    return one_template(cron, "submit-training")


def one_template(cron, name):
    (template,) = [t for t in cron["spec"]["workflowSpec"]["templates"] if t["name"] == name]
    return template


def test_the_monitor_cron_workflow_runs_its_steps_as_the_workflow_account_and_submits_as_the_submitter():
    cron = one(scenario("overrides"), "CronWorkflow", "modelyard-monitor")
    spec = cron["spec"]["workflowSpec"]
    assert spec["serviceAccountName"] == "ml-pipeline"  # renamed with serviceAccounts.workflow.name
    assert "serviceAccountName" not in one_template(cron, "monitor")
    assert _submit_template(cron)["serviceAccountName"] == "modelyard-submitter"  # not renamed with it
    submitted = yaml.safe_load(_submit_template(cron)["resource"]["manifest"])
    assert submitted["kind"] == "Workflow"
    assert submitted["spec"]["workflowTemplateRef"] == {"name": "modelyard-train"}
    assert "serviceAccountName" not in submitted["spec"], "the training Workflow runs as its template says"


def test_the_monitor_cron_workflow_takes_its_own_dataset_while_the_others_keep_the_pipeline_one():
    objs = scenario("overrides")
    monitor = _parameters(one(objs, "CronWorkflow", "modelyard-monitor")["spec"]["workflowSpec"])
    before = _parameters(_source("monitor-cron.yaml")["spec"]["workflowSpec"])
    assert list(monitor) == list(before), "no parameter is added or removed"
    own = {"dataset": "s3://datasets/batches/latest.csv", "min-rows": "500"}
    for name, value in before.items():
        assert monitor[name] == own.get(name, OVERRIDDEN.get(name, value)), name
    retrain = _parameters(one(objs, "CronWorkflow", "modelyard-retrain")["spec"]["workflowSpec"])
    train = _parameters(one(objs, "WorkflowTemplate", "modelyard-train")["spec"])
    assert retrain["dataset"] == train["dataset"] == OVERRIDDEN["dataset"]


def test_the_monitor_cron_workflow_keeps_its_generated_schedule_its_expressions_and_waits_for_a_dataset():
    source = _source("monitor-cron.yaml")
    cron = one(scenario("default"), "CronWorkflow", "modelyard-monitor")
    assert cron["spec"]["schedules"] == source["spec"]["schedules"] == ["0 * * * *"]
    assert cron["spec"]["timezone"] == source["spec"]["timezone"]
    assert cron["spec"]["suspend"] is True  # no batch to check until the user names one
    assert _parameters(cron["spec"]["workflowSpec"])["dataset"] == ""
    expressions = set(re.findall(r"\{\{[^}]+\}\}", json.dumps(source)))
    assert "{{steps.monitor.outputs.parameters.verdict}}" in expressions
    assert expressions == set(re.findall(r"\{\{[^}]+\}\}", json.dumps(cron)))
    assert one(scenario("kind"), "CronWorkflow", "modelyard-monitor")["spec"]["suspend"] is True
    objs = render(sets=["pipeline.cronWorkflows.modelyard-monitor.schedules={*/10 * * * *}"])
    assert one(objs, "CronWorkflow", "modelyard-monitor")["spec"]["schedules"] == ["*/10 * * * *"]
    assert (
        one(objs, "CronWorkflow", "modelyard-retrain")["spec"]["schedules"]
        == _source("retrain-cron.yaml")["spec"]["schedules"]
    )


def test_only_the_workflow_service_account_is_renamed(tmp_path):
    import shutil

    chart = tmp_path / "modelyard"
    shutil.copytree(CHART_DIR, chart)
    (chart / "files" / "workflows" / "other.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "WorkflowTemplate",
                "metadata": {"name": "other"},
                "spec": {
                    "serviceAccountName": "modelyard-submitter",
                    "entrypoint": "x",
                    "templates": [{"name": "x", "suspend": {}}],
                },
            }
        )
    )
    out = run(
        [tool("helm"), "template", "x", str(chart), "--set", "serviceAccounts.workflow.name=ml-pipeline"]
    ).stdout
    objs = {o["metadata"]["name"]: o for o in yaml.safe_load_all(out) if o and is_argo(o)}
    assert objs["other"]["spec"]["serviceAccountName"] == "modelyard-submitter"
    assert objs["modelyard-train"]["spec"]["serviceAccountName"] == "ml-pipeline"


def test_pipeline_can_be_switched_off_and_files_excluded():
    assert not [o for o in scenario("minimal") if is_argo(o)]
    objs = render(sets=["pipeline.exclude={rollback.yaml}"])
    names = {o["metadata"]["name"] for o in objs if is_argo(o)}
    assert "modelyard-rollback" not in names
    assert {"modelyard-train", "modelyard-retrain"} <= names


def test_a_broken_workflow_file_fails_the_render_with_its_name(tmp_path):
    import shutil

    chart = tmp_path / "modelyard"
    shutil.copytree(CHART_DIR, chart)
    (chart / "files" / "workflows" / "broken.yaml").write_text("kind: [unclosed\n")
    proc = run([tool("helm"), "template", "x", str(chart)], check=False)
    assert proc.returncode != 0
    assert "files/workflows/broken.yaml is not a single YAML document" in proc.stderr


# --- network policies ------------------------------------------------------------------------


def test_only_mlflow_workflow_pods_setup_job_and_tests_reach_minio():
    objs = scenario("default")
    policy = one(objs, "NetworkPolicy", "modelyard-minio")
    peers = policy["spec"]["ingress"][0]["from"]
    components = {p["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component") for p in peers}
    assert components == {"mlflow", "minio-setup", "test", None}
    workflow_peer = next(p for p in peers if "matchExpressions" in p["podSelector"])
    assert workflow_peer["podSelector"]["matchExpressions"] == [
        {"key": "workflows.argoproj.io/workflow", "operator": "Exists"}
    ]
    assert all("namespaceSelector" not in p for p in peers), "same namespace only"
    # With serving, the canary analysis reads its rows (an s3:// dataset) too.
    peers = one(scenario("serving"), "NetworkPolicy", "modelyard-minio")["spec"]["ingress"][0]["from"]
    components = {p["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component") for p in peers}
    assert components == {"mlflow", "minio-setup", "test", "canary-analysis", None}


def test_only_mlflow_reaches_postgresql():
    policy = one(scenario("default"), "NetworkPolicy", "modelyard-postgresql")
    assert policy["spec"]["ingress"] == [
        {
            "ports": [{"port": "postgresql", "protocol": "TCP"}],
            "from": [
                {
                    "podSelector": {
                        "matchLabels": {
                            "app.kubernetes.io/name": "modelyard",
                            "app.kubernetes.io/instance": "modelyard",
                            "app.kubernetes.io/component": "mlflow",
                        }
                    }
                }
            ],
        }
    ]


@pytest.mark.parametrize("name", ["default", "serving"])
def test_every_pod_is_selected_by_a_network_policy(name):
    objs = scenario(name)
    policies = find(objs, "NetworkPolicy")
    for label, _spec in pod_specs(objs):
        owner = next(o for o in objs if f"{o['kind']}/{o['metadata']['name']}" == label)
        labels = (
            owner["metadata"]["labels"]
            if owner["kind"] == "Pod"
            else owner["spec"]["template"]["metadata"]["labels"]
        )
        assert any(_selects(p["spec"]["podSelector"], labels) for p in policies), label


def _selects(selector, labels):
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        if expr["operator"] == "In" and labels.get(expr["key"]) not in expr["values"]:
            return False
        if expr["operator"] == "Exists" and expr["key"] not in labels:
            return False
    return True


# --- serving ---------------------------------------------------------------------------------

SERVING_KINDS = {"Rollout", "AnalysisTemplate", "TraefikService", "Middleware", "IngressRoute"}
SERVED_MODELS = ("churn", "iris")  # ci/serving-values.yaml


def _serving_container(rollout):
    (container,) = rollout["spec"]["template"]["spec"]["containers"]
    return container


def test_serving_is_off_by_default_and_renders_none_of_its_objects():
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert values["serving"]["enabled"] is False and values["serving"]["models"] == []
    for name in (n for n in SCENARIOS if n != "serving"):
        objs = scenario(name)
        assert not [o for o in objs if o["kind"] in SERVING_KINDS], name
        assert not [o for o in objs if o["apiVersion"].startswith("traefik.io/")], name
        assert not [
            o for o in objs if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "serving"
        ], name


def test_every_ci_values_file_is_a_rendered_scenario():
    scenario_files = {f for files in SCENARIOS.values() for f in files}
    # A file of no values (ci/default-values.yaml, for `helm lint`) is the "default" scenario.
    ci_files = {f"ci/{p.name}" for p in (CHART_DIR / "ci").glob("*.yaml") if yaml.safe_load(p.read_text())}
    assert ci_files <= scenario_files, ci_files - scenario_files
    assert SCENARIOS["default"] == []


@pytest.mark.parametrize("model", SERVED_MODELS)
def test_each_served_model_gets_a_rollout_its_two_services_and_a_traefik_route(model):
    objs = scenario("serving")
    name = f"modelyard-serve-{model}"
    rollout = one(objs, "Rollout", name)
    assert rollout["apiVersion"] == "argoproj.io/v1alpha1"
    assert rollout["spec"]["replicas"] == 2
    selector = rollout["spec"]["selector"]["matchLabels"]
    assert selector == {
        "app.kubernetes.io/name": "modelyard",
        "app.kubernetes.io/instance": "modelyard",
        "app.kubernetes.io/component": "serving",
        "modelyard.dev/model": model,
    }
    assert selector.items() <= rollout["spec"]["template"]["metadata"]["labels"].items()
    canary = rollout["spec"]["strategy"]["canary"]
    assert canary["stableService"] == f"{name}-stable"
    assert canary["canaryService"] == f"{name}-canary"
    assert canary["trafficRouting"] == {"traefik": {"weightedTraefikServiceName": name}}
    assert "abortScaleDownDelaySeconds" not in canary  # 0 would keep an aborted canary running
    assert canary["dynamicStableScale"] is False
    assert canary["scaleDownDelaySeconds"] == 600  # the previous version stays warm for a rollback
    for role in ("stable", "canary"):
        service = one(objs, "Service", f"{name}-{role}")
        assert service["spec"]["type"] == "ClusterIP"
        assert "selector" not in service["spec"]  # Argo Rollouts' own: the pod-template-hash
        assert service["spec"]["ports"] == [
            {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
        ]
    traefik_service = one(objs, "TraefikService", name)
    assert traefik_service["spec"] == {
        "weighted": {
            "services": [
                {"name": f"{name}-stable", "port": 80, "weight": 100},
                {"name": f"{name}-canary", "port": 80, "weight": 0},
            ]
        }
    }
    middleware = one(objs, "Middleware", name)
    assert middleware["spec"] == {"stripPrefix": {"prefixes": [f"/models/{model}"]}}
    route = one(objs, "IngressRoute", name)
    assert route["spec"] == {
        "entryPoints": ["web"],
        "routes": [
            {
                "match": f"Path(`/models/{model}/invocations`)",
                "kind": "Rule",
                "middlewares": [{"name": name}],
                "services": [{"name": name, "kind": "TraefikService"}],
            }
        ],
    }
    for obj in (traefik_service, middleware, route):
        assert obj["apiVersion"] == "traefik.io/v1alpha1"
    for obj in (rollout, traefik_service, middleware, route):
        assert obj["metadata"]["namespace"] == NAMESPACE
        assert obj["metadata"]["labels"]["modelyard.dev/model"] == model


def test_each_canary_weight_is_followed_by_the_analysis_or_without_it_a_pause():
    for model in SERVED_MODELS:
        name = f"modelyard-serve-{model}"
        steps = one(scenario("serving"), "Rollout", name)["spec"]["strategy"]["canary"]["steps"]
        analysis = {
            "analysis": {
                "templates": [{"templateName": "modelyard-canary-analysis"}],
                "args": [
                    {"name": "model-name", "value": model},
                    {"name": "rollout", "value": name},
                ],
            }
        }
        assert steps == [{"setWeight": 5}, analysis, {"setWeight": 25}, analysis]
    objs = render(
        SCENARIOS["serving"],
        sets=[
            "serving.canary.weights={10,50,90}",
            "serving.canary.stepSeconds=5",
            "serving.canary.analysis.enabled=false",
        ],
    )
    steps = one(objs, "Rollout", "modelyard-serve-iris")["spec"]["strategy"]["canary"]["steps"]
    assert steps == [
        step for weight in (10, 50, 90) for step in ({"setWeight": weight}, {"pause": {"duration": "5s"}})
    ]
    assert not find(objs, "AnalysisTemplate")


def test_the_canary_analysis_job_runs_the_analyze_step_with_the_chart_s_settings(tmp_path: Path):
    from modelyard.contract import STEPS, StepName, kebab

    analysis = {"dataset": "s3://d/rows.csv", "thresholds": {"minAgreement": 0.8}}
    values = tmp_path / "analysis.yaml"
    values.write_text(yaml.safe_dump({"serving": {"canary": {"analysis": analysis}}}))
    template = one(
        render([*SCENARIOS["serving"], str(values)]), "AnalysisTemplate", "modelyard-canary-analysis"
    )
    assert [a["name"] for a in template["spec"]["args"]] == ["model-name", "rollout"]
    (metric,) = template["spec"]["metrics"]
    job = metric["provider"]["job"]["spec"]
    assert job["backoffLimit"] == 0
    (container,) = job["template"]["spec"]["containers"]
    args = container["args"]
    assert args[:2] == ["step", kebab(StepName.ANALYZE)]
    flags = {a.split("=", 1)[0].removeprefix("--"): a.split("=", 1)[1] for a in args[2:]}
    assert set(flags) <= {kebab(f) for f in STEPS[StepName.ANALYZE].params.model_fields}
    assert flags["rollout"] == "{{args.rollout}}"
    assert flags["window-seconds"] == "30"
    assert flags["min-agreement"] == "0.8"
    assert flags["dataset"] == "s3://d/rows.csv"
    labels = job["template"]["metadata"]["labels"]
    policy = one(scenario("serving"), "NetworkPolicy", "modelyard-serving")
    admitted = [
        peer["podSelector"]["matchLabels"]
        for rule in policy["spec"]["ingress"]
        for peer in rule["from"]
        if "namespaceSelector" not in peer
    ]
    assert any(selector.items() <= labels.items() for selector in admitted)


def test_serving_pods_serve_the_annotated_version_or_the_champion_through_mlflow():
    objs = scenario("serving")
    rollout = one(objs, "Rollout", "modelyard-serve-iris")
    template = rollout["spec"]["template"]
    # Never rendered, so helm upgrade keeps the version `modelyard deploy` patches in.
    assert "modelyard.dev/model-version" not in (template["metadata"].get("annotations") or {})
    assert "modelyard.dev/model-version" not in json.dumps(rollout["metadata"])
    container = _serving_container(rollout)
    assert container["name"] == "serve"
    assert container["args"] == [
        "serve",
        "--model-name=iris",
        "--version=$(MODELYARD_MODEL_VERSION)",
        "--alias=champion",
        "--host=0.0.0.0",
        "--port=8080",
    ]
    env = {e["name"]: e for e in container["env"]}
    assert env["MODELYARD_MODEL_VERSION"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.annotations['modelyard.dev/model-version']"}
    }
    assert env["MLFLOW_TRACKING_URI"]["value"] == MLFLOW_URL
    assert not secret_references([rollout]), "artifacts come through MLflow's proxy"
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ping", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/ping", "port": "http"}
    assert container["livenessProbe"]["initialDelaySeconds"] >= 60
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "384Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    assert template["spec"]["serviceAccountName"] == "modelyard-workflow"
    assert template["spec"]["automountServiceAccountToken"] is False


def test_serving_runs_the_pipeline_image_unless_given_its_own():
    def image(*sets, files=()):
        objs = render([*SCENARIOS["serving"], *files], sets=list(sets))
        return _serving_container(one(objs, "Rollout", "modelyard-serve-churn"))

    assert image()["image"] == "modelyard/trainer:0.1.0"
    overridden = image(files=SCENARIOS["overrides"])
    assert overridden["image"] == OVERRIDDEN["image"]
    assert {e["name"]: e.get("value") for e in overridden["env"]}["MLFLOW_TRACKING_URI"] == OVERRIDDEN[
        "tracking-uri"
    ]
    assert image("serving.image.tag=2.0.0")["image"] == "modelyard/trainer:2.0.0"
    own = image("serving.image.repository=acme/serve", "serving.image.pullPolicy=Always")
    assert (own["image"], own["imagePullPolicy"]) == ("acme/serve:0.1.0", "Always")


def test_only_traefik_and_the_canary_analysis_reach_the_serving_pods_which_reach_only_dns_and_mlflow():
    objs = scenario("serving")
    policy = one(objs, "NetworkPolicy", "modelyard-serving")
    for model in SERVED_MODELS:
        labels = one(objs, "Rollout", f"modelyard-serve-{model}")["spec"]["template"]["metadata"]["labels"]
        assert _selects(policy["spec"]["podSelector"], labels), model
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert policy["spec"]["ingress"] == [
        {
            "ports": [{"port": "http", "protocol": "TCP"}],
            "from": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}},
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "traefik"}},
                },
                {
                    "podSelector": {
                        "matchLabels": {
                            "app.kubernetes.io/name": "modelyard",
                            "app.kubernetes.io/instance": "modelyard",
                            "app.kubernetes.io/component": "canary-analysis",
                        }
                    }
                },
            ],
        }
    ]
    dns, mlflow = policy["spec"]["egress"]
    assert dns == {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}
    assert mlflow["ports"] == [{"port": 5000, "protocol": "TCP"}]
    (peer,) = mlflow["to"]
    assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "mlflow"
    # An external MLflow (pipeline.trackingUri) is reached on its port.
    objs = render([*SCENARIOS["serving"], *SCENARIOS["overrides"]])
    egress = one(objs, "NetworkPolicy", "modelyard-serving")["spec"]["egress"]
    assert egress[1] == {"ports": [{"port": 443, "protocol": "TCP"}]}
    assert not find(render(SCENARIOS["serving"], sets=["networkPolicy.enabled=false"]), "NetworkPolicy")


def test_the_chart_serves_models_as_the_serving_contract_says():
    from modelyard.contract import serving

    objs = scenario("serving")
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert values["serving"]["port"] == serving.SERVING_PORT
    for model in SERVED_MODELS:
        rollout = one(objs, "Rollout", f"modelyard-serve-{model}")
        env = {e["name"]: e for e in _serving_container(rollout)["env"]}
        field = env[serving.MODEL_VERSION_ENV]["valueFrom"]["fieldRef"]["fieldPath"]
        assert field == f"metadata.annotations['{serving.MODEL_VERSION_ANNOTATION}']"
        route = one(objs, "IngressRoute", f"modelyard-serve-{model}")["spec"]["routes"][0]
        assert route["match"] == f"Path(`{serving.invocations_path(model)}`)"
        # How `modelyard deploy` finds the model's Rollout.
        labels = rollout["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == serving.SERVING_COMPONENT
        assert labels[serving.MODEL_LABEL] == model


def test_the_readme_documents_every_serving_value():
    readme = (CHART_DIR / "README.md").read_text()
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["serving"]

    # Blocks of settings are documented key by key; image, resources and maps as a whole.
    def paths(prefix: str, block: dict[str, Any]) -> list[str]:
        return [
            p
            for key, value in block.items()
            for p in (
                paths(f"{prefix}.{key}", value)
                if key in ("canary", "traefik", "analysis")
                else [f"{prefix}.{key}"]
            )
        ]

    missing = [path for path in paths("serving", values) if f"`{path}`" not in readme]
    assert not missing, missing


# --- helm tests, NOTES, kind values -------------------------------------------------------------


def test_helm_test_pods_check_mlflow_health_and_every_bucket():
    objs = scenario("default")
    tests = [o for o in find(objs, "Pod") if o["metadata"]["annotations"].get("helm.sh/hook") == "test"]
    scripts = {o["metadata"]["name"]: o["spec"]["containers"][0]["command"][-1] for o in tests}
    assert f'"{MLFLOW_URL}" + path' in scripts["modelyard-test-mlflow"]
    assert '"/health"' in scripts["modelyard-test-mlflow"]
    assert "/api/2.0/mlflow/experiments/search" in scripts["modelyard-test-mlflow"]
    buckets = scripts["modelyard-test-buckets"]
    for alias, bucket in (
        ("mlflow", "mlflow-artifacts"),
        ("argo", "argo-artifacts"),
        ("datasets", "datasets"),
    ):
        assert f"mc ls {alias}/{bucket}" in buckets


@pytest.mark.parametrize("name", ["default", "external"])
def test_notes_tell_how_to_reach_both_uis_and_submit_a_run(name):
    args = [
        tool("helm"),
        "install",
        "modelyard",
        str(CHART_DIR),
        "--namespace",
        NAMESPACE,
        "--dry-run=client",
    ]
    for values_file in SCENARIOS[name]:
        args += ["--values", str(CHART_DIR / values_file)]
    notes = run(args).stdout.split("NOTES:", 1)[1]
    assert f"kubectl -n {NAMESPACE} port-forward svc/modelyard-mlflow 5000:5000" in notes
    assert "kubectl -n argo port-forward svc/argo-workflows-server 2746:2746" in notes
    assert f"argo -n {NAMESPACE} submit --from workflowtemplate/modelyard-train" in notes
    assert f"argo -n {NAMESPACE} submit --from cronwf/modelyard-retrain" in notes
    assert MLFLOW_URL in notes
    assert ("modelyard-minio-root" in notes) is (name == "default")


def test_kind_values_use_if_not_present_and_small_resources():
    values = yaml.safe_load((CHART_DIR / "values-kind.yaml").read_text())
    for component in ("minio", "postgresql", "mlflow"):
        assert values[component]["image"]["pullPolicy"] == "IfNotPresent"
    for label, spec in pod_specs(scenario("kind")):
        for container in containers(spec):
            memory = container["resources"]["limits"]["memory"]
            assert memory.endswith("Mi") or memory in ("1Gi",), f"{label}: {memory}"


# --- image and scripts ------------------------------------------------------------------------


def test_minio_dockerfile_builds_static_binaries_from_the_go_module_proxy_as_a_non_root_user():
    text = (REPO_ROOT / "images" / "minio" / "Dockerfile").read_text()
    assert re.search(r"^ARG MINIO_MODULE_VERSION=v0\.0\.0-\d{14}-[0-9a-f]{12}$", text, re.MULTILINE)
    assert "CGO_ENABLED=0" in text
    assert "git clone" not in text and "github.com/minio/minio.git" not in text
    assert re.search(r"^USER 10001:10001$", text, re.MULTILINE)
    assert "latest" not in re.sub(r"#.*", "", text)


def test_kind_and_argo_values_pin_the_versions_the_cluster_scripts_pin():
    pins = dict(
        re.findall(
            r"^(KIND_[A-Z_]+)=(\S+)", (REPO_ROOT / "scripts" / "cluster" / "versions.env").read_text(), re.M
        )
    )
    assert re.fullmatch(r"v\d+\.\d+\.\d+", pins["KIND_VERSION"])
    assert re.fullmatch(r"kindest/node:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", pins["KIND_NODE_IMAGE"])
    kind_config = yaml.safe_load((REPO_ROOT / "scripts" / "kind-config.yaml").read_text())
    assert all("image" not in node for node in kind_config["nodes"]), "kind-up.sh passes the pinned image"
    argo_values = yaml.safe_load((REPO_ROOT / "scripts" / "argo-values.yaml").read_text())
    # kind runs the Argo release `make cluster-up` builds and tests.
    assert argo_values["images"]["tag"] == argo_version()
    assert argo_values["executor"]["image"]["tag"] == f"{argo_version()}-nonroot"
    assert argo_values["controller"]["workflowNamespaces"] == ["modelyard"]
    assert argo_values["server"]["authModes"] == ["server"]
    up = (REPO_ROOT / "scripts" / "kind-up.sh").read_text()
    assert re.search(r'ARGO_CHART_VERSION="\$\{ARGO_CHART_VERSION:-[0-9.]+\}"', up)


def test_the_github_workflow_runs_make_e2e_kind():
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "e2e-kind.yml").read_text())
    steps = [s.get("run", "") for job in workflow["jobs"].values() for s in job["steps"]]
    joined = "\n".join(steps)
    for command in ("make e2e-kind", "scripts/kind-down.sh"):
        assert command in joined


def test_a_schedule_sets_the_training_label_model_and_config_and_a_misspelt_parameter_fails_the_render():
    sets = [
        "pipeline.cronWorkflows.modelyard-retrain.parameters.label=churn",
        "pipeline.cronWorkflows.modelyard-retrain.parameters.model-name=churn-model",
    ]
    cron = one(render(sets=sets), "CronWorkflow", "modelyard-retrain")
    params = _parameters(cron["spec"]["workflowSpec"])
    assert (params["label"], params["model-name"]) == ("churn", "churn-model")
    assert "config" in params
    failed = run(
        helm_template_args(sets=["pipeline.cronWorkflows.modelyard-retrain.parameters.lable=x"]), check=False
    )
    assert failed.returncode != 0
    assert 'modelyard-retrain has no parameter "lable"' in failed.stderr
