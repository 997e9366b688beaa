#!/usr/bin/env bash
# Offline checks of the deployment files (docs/deployment.md, "Checked in CI"). Run by .ci/run after
# `npm test`; needs `npm ci` done. Installs what it needs from Debian's packages when missing:
#   promtool  <- package prometheus (apt-get install; Debian's policy-rc.d keeps its daemon stopped,
#                and any prometheus process the install started is stopped again by its pid)
#   kustomize <- `kubectl kustomize` of the kubectl on PATH, else kubectl 1.20 unpacked from the
#                package kubernetes-client into .cache/ (not installed: it would clash with other kubectls)
set -euo pipefail
cd "$(dirname "$0")/.."
mon=deploy/monitoring

if ! command -v promtool >/dev/null; then
  echo "check-deploy: installing promtool (Debian package prometheus)"
  before=$(pgrep -x prometheus || true)
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  for pid in $(pgrep -x prometheus || true); do
    if ! grep -qx "$pid" <<<"$before"; then kill "$pid"; fi
  done
fi

echo "== promtool check config / check rules / test rules"
promtool check config "$mon/prometheus.yml"
promtool check rules "$mon"/rules/*.yml
promtool test rules "$mon"/rules-tests/*.test.yml

echo "== Grafana dashboards match scripts/grafana-dashboards.mjs"
node scripts/grafana-dashboards.mjs --check

echo "== compose files"
node scripts/check-deploy.mjs compose

kubectl_bin=""
if command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; then
  kubectl_bin=$(command -v kubectl)
else
  kubectl_bin=.cache/kubernetes-client/usr/bin/kubectl
  if [ ! -x "$kubectl_bin" ]; then
    echo "check-deploy: unpacking kubectl from Debian package kubernetes-client"
    mkdir -p .cache/deb
    apt-get update -qq
    (cd .cache/deb && apt-get download -qq kubernetes-client 2>/dev/null)
    dpkg-deb -x .cache/deb/kubernetes-client_*.deb .cache/kubernetes-client
  fi
fi
echo "== kustomize build ($("$kubectl_bin" version --client 2>/dev/null | head -n1)) and schema validation"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$kubectl_bin" kustomize deploy/k8s/overlays/dev >"$out/dev.yaml"
"$kubectl_bin" kustomize deploy/k8s/overlays/prod >"$out/prod.yaml"
node scripts/check-deploy.mjs k8s dev "$out/dev.yaml"
# prod's Secret is created out of band (base/secret.template.yaml)
node scripts/check-deploy.mjs k8s prod "$out/prod.yaml" parley-secrets
echo "check-deploy: all deployment checks passed"
