//! The deployment files, checked as far as this machine allows (no cluster runs here): the
//! Kubernetes manifests against the Kubernetes schemas of current versions
//! (`kubernetes-validate`, PyPI, offline), every container with resource limits and a
//! securityContext; the KEDA ScaledObject against KEDA's CRD schema (`cloudcoil.models.keda`,
//! PyPI) and against what the workers really use (the stream key, the consumer group, the
//! Deployment's name); the Prometheus config with `promtool`; the
//! Grafana dashboard's queries against the metrics `/metrics` exports.

use std::path::PathBuf;
use std::process::Command;

use crate::util::repo_root;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The test venv's python (scripts/setup-test-deps), with kubernetes-validate and PyYAML.
fn venv_python() -> Option<PathBuf> {
    let python = std::env::var("TARS_TEST_LLM_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/tars-fleet/venv/bin/python")
        });
    let ok = Command::new(&python)
        .args(["-c", "import kubernetes_validate, yaml"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !in_ci(),
            "kubernetes-validate is required in CI: run scripts/setup-test-deps"
        );
        eprintln!("SKIPPED: kubernetes-validate is not installed (scripts/setup-test-deps)");
        return None;
    }
    Some(python)
}

#[test]
fn kubernetes_manifests_validate_against_current_schemas_with_limits_everywhere() {
    let Some(python) = venv_python() else {
        return;
    };
    let manifest = repo_root().join("deploy/kubernetes/tars-fleet.yaml");
    for version in ["1.33.0", "1.37.0"] {
        let out = Command::new(python.with_file_name("kubernetes-validate"))
            .args(["--strict", "-k", version])
            .arg(&manifest)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "kubernetes-validate {version}: {text}"
        );
        assert!(!text.contains("WARN") && !text.contains("ERROR"), "{text}");
        assert!(text.matches(" passed for resource ").count() >= 8, "{text}");
    }
    // Every pod: non-root, no service-account token; every container: limits, read-only root,
    // no privilege escalation, all capabilities dropped.
    let check = r#"
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
pods = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
assert len(pods) == 3, [d["metadata"]["name"] for d in pods]
for d in pods:
    spec = d["spec"]["template"]["spec"]
    name = d["metadata"]["name"]
    assert spec["securityContext"]["runAsNonRoot"] is True, name
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
    assert spec.get("automountServiceAccountToken") is False, name
    for c in spec["containers"]:
        lim = c["resources"]["limits"]
        assert "memory" in lim and "cpu" in lim, (name, c["name"])
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True, (name, c["name"])
        assert sc["allowPrivilegeEscalation"] is False, (name, c["name"])
        assert sc["capabilities"]["drop"] == ["ALL"], (name, c["name"])
kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
assert ("NetworkPolicy", "tars-redis") in kinds, kinds
print("ok", len(docs))
"#;
    run_check(&python, check, &[manifest.into_os_string()]);
}

/// Runs `check` (Python, with PyYAML) with `args`; it must succeed.
fn run_check(python: &std::path::Path, check: &str, args: &[std::ffi::OsString]) {
    let out = Command::new(python)
        .args(["-c", check])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_keda_scaled_object_scales_the_worker_deployment_on_the_real_stream() {
    let Some(python) = venv_python() else {
        return;
    };
    let check = r#"
import sys, yaml
stream, group = sys.argv[2], sys.argv[3]
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
so = next(d for d in docs if d["kind"] == "ScaledObject")
manifest = [d for d in yaml.safe_load_all(open(sys.argv[4])) if d]
workers = next(d for d in manifest if d["kind"] == "Deployment" and d["metadata"]["name"] == so["spec"]["scaleTargetRef"]["name"])
assert workers["spec"]["template"]["spec"]["containers"][0]["name"] == "worker"
assert so["spec"]["maxReplicaCount"] >= 1 and so["spec"]["minReplicaCount"] == 0
triggers = so["spec"]["triggers"]
assert all(t["type"] == "redis-streams" for t in triggers)
assert all(t["metadata"]["stream"] == stream and t["metadata"]["consumerGroup"] == group for t in triggers), triggers
kinds = {k for t in triggers for k in t["metadata"]}
# lagCount AND pending entries (pending alone never scales: kedacore/keda#2819).
assert "lagCount" in kinds and "pendingEntriesCount" in kinds, kinds
auth = next(d for d in docs if d["kind"] == "TriggerAuthentication")
assert all(t["authenticationRef"]["name"] == auth["metadata"]["name"] for t in triggers)
print("ok")
"#;
    run_check(
        &python,
        check,
        &[
            repo_root()
                .join("deploy/kubernetes/keda-scaledobject.yaml")
                .into(),
            tars_fleet::queue::keys::tasks_stream().into(),
            tars_fleet::queue::keys::GROUP.into(),
            repo_root().join("deploy/kubernetes/tars-fleet.yaml").into(),
        ],
    );
}

/// The ScaledObject and its TriggerAuthentication against KEDA's CRD schema, as the models that
/// `cloudcoil.models.keda` (PyPI) generates from KEDA 2.16.1's CRDs: every field's type and
/// enum, every required field, and (checked here, since the models ignore extras) no field the
/// CRD does not have, at any depth. A typo is shown to fail.
#[test]
fn the_keda_objects_validate_against_kedas_crd_schema() {
    let Some(python) = venv_python() else {
        return;
    };
    let check = r#"
import sys, typing, yaml, pydantic
from cloudcoil.models.keda import v1alpha1 as keda

def models(annotation):
    """The pydantic models an annotation can hold (through Optional, List, Dict, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        if issubclass(annotation, pydantic.RootModel):
            return models(annotation.model_fields["root"].annotation)
        return [annotation]
    return [m for a in typing.get_args(annotation) for m in models(a)]

def unknown(model, value, path):
    """Paths of keys in `value` that the CRD (the model) does not define."""
    if isinstance(value, list):
        return [u for i, v in enumerate(value) for u in unknown(model, v, f"{path}[{i}]")]
    if not isinstance(value, dict) or model is None:
        return []
    by_key = {(f.alias or n): f for n, f in model.model_fields.items()}
    out = []
    for k, v in value.items():
        f = by_key.get(k)
        if f is None:
            out.append(f"{path}.{k}")
            continue
        inner = models(f.annotation)
        origin = [typing.get_origin(a) for a in typing.get_args(f.annotation)] + [typing.get_origin(f.annotation)]
        if dict in origin and isinstance(v, dict) and inner:
            out += [u for kk, vv in v.items() for u in unknown(inner[0], vv, f"{path}.{k}.{kk}")]
        else:
            out += unknown(inner[0] if inner else None, v, f"{path}.{k}")
    return out

def validate(doc):
    cls = getattr(keda, doc["kind"])
    cls.model_validate(doc)
    extra = unknown(cls, doc, doc["kind"])
    assert not extra, f"fields KEDA's CRD does not have: {extra}"

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
assert sorted(d["kind"] for d in docs) == ["ScaledObject", "TriggerAuthentication"], docs
for d in docs:
    validate(d)
# The check can fail: a misspelt field, a wrong type, a missing required field.
so = next(d for d in docs if d["kind"] == "ScaledObject")
import copy
for mutate, what in [
    (lambda s: s["spec"].__setitem__("maxReplicaCont", 3), "maxReplicaCont"),
    (lambda s: s["spec"]["triggers"][0].__setitem__("authRef", {}), "authRef"),
    (lambda s: s["spec"].__setitem__("pollingInterval", "often"), "pollingInterval"),
    (lambda s: s["spec"].pop("scaleTargetRef"), "scaleTargetRef"),
]:
    bad = copy.deepcopy(so)
    mutate(bad)
    try:
        validate(bad)
    except (AssertionError, pydantic.ValidationError) as e:
        assert what in str(e), (what, str(e))
    else:
        raise SystemExit(f"a ScaledObject with {what} wrong passed")
print("ok")
"#;
    let ok = Command::new(&python)
        .args(["-c", "import cloudcoil.models.keda"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !in_ci(),
            "cloudcoil.models.keda is required in CI: run scripts/setup-test-deps"
        );
        eprintln!("SKIPPED: cloudcoil.models.keda is not installed (scripts/setup-test-deps)");
        return;
    }
    run_check(
        &python,
        check,
        &[repo_root()
            .join("deploy/kubernetes/keda-scaledobject.yaml")
            .into()],
    );
}

/// The Grafana dashboard asks only for metrics that `/metrics` exports, and the Prometheus
/// config is valid.
#[test]
fn grafana_queries_name_exported_metrics_and_the_prometheus_config_is_valid() {
    let grafana = std::fs::read_to_string(repo_root().join("deploy/grafana/tars-fleet.json"))
        .expect("deploy/grafana/tars-fleet.json");
    let dash: serde_json::Value = serde_json::from_str(&grafana).expect("valid JSON");
    let exported = std::fs::read_to_string(repo_root().join("src/dashboard/metrics.rs")).unwrap();
    let mut names = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().unwrap_or_default();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("tars_") {
                    names.push(word.to_string());
                }
            }
        }
    }
    assert!(names.len() >= 8, "{names:?}");
    for n in &names {
        assert!(
            exported.contains(&format!("\"{n}\"")),
            "the Grafana dashboard queries {n}, which /metrics does not export"
        );
    }
    if Command::new("promtool").arg("--version").output().is_ok() {
        let out = Command::new("promtool")
            .args(["check", "config"])
            .arg(repo_root().join("deploy/prometheus/prometheus.yml"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr)
        );
    } else {
        assert!(
            !in_ci(),
            "promtool is required in CI: run scripts/setup-test-deps"
        );
    }
}
