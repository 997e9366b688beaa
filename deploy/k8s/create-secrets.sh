#!/usr/bin/env bash
# Creates, or replaces when rotating, the Secrets Parley's pods read (base/secret.template.yaml),
# from the folder `npm run secrets -- --out <folder>` wrote:
#   deploy/k8s/create-secrets.sh [--dry-run] [--nats-namespace <ns>] [--redis-namespace <ns>] [--redis-ca <pem>] <namespace> <folder>
# e.g. npm run secrets -- --out ~/parley-secrets
#      read -rsp 'DATABASE_URL: ' DATABASE_URL && export DATABASE_URL   # postgres://parley:…@parley-db-rw:5432/parley
#      deploy/k8s/create-secrets.sh --nats-namespace nats parley ~/parley-secrets
#
#   parley-env              <folder>/parley.env (JWT_SECRET, GATEWAY_SIGNING_KEY, GATEWAY_PUBLIC_KEY,
#                           REDIS_PASSWORD, CACHE_KEY; the containers take the keys they use by name)
#   parley-nats-<process>   <folder>/nkeys/<process>.nk, one Secret per process
#   parley-database         DATABASE_URL, when set in the environment (needed once; kept otherwise)
#   parley-smtp             SMTP_URL, when set in the environment (optional: password-reset mail)
#   parley-nats-auth        <folder>/nats-auth.conf in the NATS server's namespace, with --nats-namespace
#                           (overlays/prod/README.md shows how the NATS chart includes it)
#   parley-redis            REDIS_PASSWORD of parley.env in Redis's namespace, with --redis-namespace
#                           (the Redis chart's auth.existingSecret)
#   parley-redis-ca         ca.crt from --redis-ca <file>: the CA of Redis's TLS certificate
#                           (overlays/prod/redis-tls.yaml mounts it)
# The URLs come from the environment, not arguments, which other users of the machine can see (ps)
# and the shell keeps in its history. --dry-run prints the Secrets as YAML instead of applying them
# (scripts/check-deploy.sh checks them against the manifests); KUBECTL picks the kubectl binary.
set -euo pipefail
kubectl=${KUBECTL:-kubectl}
dry_run=false
nats_namespace=""
redis_namespace=""
redis_ca=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=true; shift ;;
    --nats-namespace) nats_namespace=${2:?--nats-namespace needs a namespace}; shift 2 ;;
    --redis-namespace) redis_namespace=${2:?--redis-namespace needs a namespace}; shift 2 ;;
    --redis-ca) redis_ca=${2:?--redis-ca needs a PEM file}; shift 2 ;;
    -*) echo "create-secrets: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
if [ $# -ne 2 ]; then
  echo "usage: deploy/k8s/create-secrets.sh [--dry-run] [--nats-namespace <ns>] [--redis-namespace <ns>] [--redis-ca <pem>] <namespace> <folder of npm run secrets>" >&2
  exit 2
fi
namespace=$1
dir=$2
principals=(gateway users messages retention backup)

required=(parley.env nats-auth.conf)
for p in "${principals[@]}"; do required+=("nkeys/$p.nk"); done
for f in "${required[@]}"; do
  if [ ! -f "$dir/$f" ]; then
    echo "create-secrets: $dir/$f is missing: make the secrets with npm run secrets -- --out $dir" >&2
    exit 1
  fi
done

first=true
# `create --dry-run=client -o yaml | apply` creates a Secret or replaces its data (a rotation).
secret() { # namespace name create-args...
  local ns=$1 name=$2
  shift 2
  local yaml
  yaml=$("$kubectl" -n "$ns" create secret generic "$name" "$@" --dry-run=client -o yaml)
  if $dry_run; then
    $first || echo "---"
    first=false
    printf '%s\n' "$yaml"
  else
    printf '%s\n' "$yaml" | "$kubectl" -n "$ns" apply -f -
  fi
}

secret "$namespace" parley-env --from-env-file="$dir/parley.env"
for p in "${principals[@]}"; do
  secret "$namespace" "parley-nats-$p" --from-file="$p.nk=$dir/nkeys/$p.nk"
done
if [ -n "${DATABASE_URL:-}" ]; then
  # Process substitution: the value reaches kubectl as a file, without a trailing newline.
  secret "$namespace" parley-database --from-file=DATABASE_URL=<(printf '%s' "$DATABASE_URL")
else
  echo "create-secrets: DATABASE_URL not set: parley-database left as it is (users, messages and backup need it)" >&2
fi
if [ -n "${SMTP_URL:-}" ]; then
  secret "$namespace" parley-smtp --from-file=SMTP_URL=<(printf '%s' "$SMTP_URL")
fi
if [ -n "$nats_namespace" ]; then
  secret "$nats_namespace" parley-nats-auth --from-file="nats-auth.conf=$dir/nats-auth.conf"
fi
if [ -n "$redis_namespace" ]; then
  secret "$redis_namespace" parley-redis --from-file=REDIS_PASSWORD=<(sed -n 's/^REDIS_PASSWORD=//p' "$dir/parley.env" | tr -d '\n')
fi
if [ -n "$redis_ca" ]; then
  secret "$namespace" parley-redis-ca --from-file="ca.crt=$redis_ca"
fi
