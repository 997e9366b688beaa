#!/usr/bin/env bash
# Offline checks of the deployment files (docs/deployment.md, "Checked in CI"). Run by .ci/run after
# `npm test`; needs `npm ci` done. Installs what it needs from Debian's packages when missing:
#   promtool  <- package prometheus (apt-get install; Debian's policy-rc.d keeps its daemon stopped,
#                and any prometheus process the install started is stopped again by its pid)
#   kustomize <- `kubectl kustomize` of kubectl 1.20 unpacked from the package kubernetes-client into
#                .cache/ (not installed: it would clash with other kubectls), and of the kubectl on PATH
# The manifests need generated secrets (the dev overlay makes Secrets from files, prod's come from
# deploy/k8s/create-secrets.sh): throwaway ones are made in a temporary folder, with a copy of
# deploy/k8s, and removed at the end. Real secrets in the working tree are never read.
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
echo "== deploy/k8s/monitoring/prometheusrule.yaml matches scripts/prometheus-rule.mjs"
node scripts/prometheus-rule.mjs --check

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== throwaway secrets (npm run secrets)"
# The build `npm test` did is reused (turbo's cache); on its own this builds @parley/secrets.
if ! built=$(npx turbo run build --filter=@parley/secrets --output-logs=errors-only 2>&1); then
  echo "$built" >&2
  exit 1
fi
node scripts/secrets.mjs --out "$work/secrets" >/dev/null

echo "== compose files"
node scripts/check-deploy.mjs compose

nats_server=${NATS_SERVER_BIN:-$(command -v nats-server || echo /usr/sbin/nats-server)}
if [ -x "$nats_server" ]; then
  echo "== nats-server -t: compose's configuration with the generated users, and the dev overlay's"
  mkdir -p "$work/nats"
  cp deploy/nats/nats-server.conf "$work/nats/nats-server.conf"
  cp "$work/secrets/nats-auth.conf" "$work/nats/parley-auth.conf"
  "$nats_server" -t -c "$work/nats/nats-server.conf"
  # overlays/dev/nats-deployment.yaml: the generated file as the configuration, plus flags
  "$nats_server" -t -c "$work/secrets/nats-auth.conf" -js -sd "$work/nats/data" -m 8222
else
  echo "== nats-server not found: the NATS configurations are not parsed (set NATS_SERVER_BIN)"
fi

# Both kustomizes the files are kept to: kubectl 1.20's (kustomize 2.0, from Debian's package, always)
# and the kubectl on PATH when there is one (a current kustomize). They differ: 2.0 does not know
# batch/v1 CronJob, and a strategic-merge patch of one replaced its whole container there.
kubectls=()
if command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; then
  kubectls+=("$(command -v kubectl)")
fi
old_kubectl=.cache/kubernetes-client/usr/bin/kubectl
if [ ! -x "$old_kubectl" ]; then
  echo "check-deploy: unpacking kubectl from Debian package kubernetes-client"
  mkdir -p .cache/deb
  apt-get update -qq
  (cd .cache/deb && apt-get download -qq kubernetes-client 2>/dev/null)
  dpkg-deb -x .cache/deb/kubernetes-client_*.deb .cache/kubernetes-client
fi
kubectls+=("$old_kubectl")
# Any PEM stands in for the Redis chart's CA (create-secrets.sh --redis-ca; overlays/prod/redis-tls.yaml).
printf -- '-----BEGIN CERTIFICATE-----\nY2hlY2s=\n-----END CERTIFICATE-----\n' >"$work/redis-ca.pem"
# A copy without any secrets/ folder, given the throwaway secrets where the dev overlay reads them.
tar -C deploy -cf - --exclude=secrets k8s | tar -C "$work" -xf -
cp -r "$work/secrets" "$work/k8s/overlays/dev/secrets"
n=0
for kubectl_bin in "${kubectls[@]}"; do
  n=$((n + 1))
  echo "== kustomize build ($("$kubectl_bin" version --client 2>/dev/null | head -n1 | cut -c1-100)) and schema validation"
  out="$work/out$n"
  mkdir -p "$out"
  # kustomize 5 warns about the 2.0-era fields (bases, patchesStrategicMerge) kept for 2.0's sake.
  "$kubectl_bin" kustomize "$work/k8s/overlays/dev" 2> >(grep -v "is deprecated" >&2) >"$out/dev.yaml"
  "$kubectl_bin" kustomize "$work/k8s/overlays/prod" 2> >(grep -v "is deprecated" >&2) >"$out/prod.yaml"
  node scripts/check-deploy.mjs k8s dev "$out/dev.yaml"
  # prod's Secrets are made out of band: check the ones create-secrets.sh makes from the same files.
  DATABASE_URL=postgres://parley:check@parley-db-rw:5432/parley SMTP_URL=smtp://check@mail:587 KUBECTL="$kubectl_bin" \
    bash deploy/k8s/create-secrets.sh --dry-run --nats-namespace nats --redis-namespace redis --redis-ca "$work/redis-ca.pem" parley "$work/secrets" >"$out/prod-secrets.yaml"
  node scripts/check-deploy.mjs k8s prod "$out/prod.yaml" "$out/prod-secrets.yaml"
  # For the Prometheus operator, applied beside the overlay (its CRDs' kinds build offline).
  "$kubectl_bin" kustomize deploy/k8s/monitoring >"$out/monitoring.yaml"
  node scripts/check-deploy.mjs monitoring "$out/monitoring.yaml" "$out/prod.yaml"
done
# Applied apart from the overlay: the NATS chart's namespace's policy (overlays/prod/README.md) and
# the two examples of a way in (Ingress; Gateway API Gateway and HTTPRoute).
node scripts/check-deploy.mjs objects deploy/k8s/overlays/prod/nats-networkpolicy.yaml deploy/k8s/overlays/prod/ingress.yaml deploy/k8s/overlays/prod/httproute.yaml deploy/k8s/overlays/prod/networkpolicy-backup-s3.yaml
echo "check-deploy: all deployment checks passed"
