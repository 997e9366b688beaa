#!/usr/bin/env bash
# Prints the path of the nats-server binary the cluster fault scenario (e2e/faults/cluster.test.ts)
# runs its three nodes on, fetching it first if it is not here yet: Debian's package of NATS 2.15.1,
# pinned by its SHA-256, unpacked under ~/.cache/parley (or $PARLEY_CACHE_DIR).
#
# Why not the machine's own 2.9.10: in a cluster under that scenario (the stream leader killed, a
# follower frozen, every node restarted in turn) 2.9.10 answered an append "wrong last sequence"
# and stored it all the same, let replicas of the chats stream hold different events at one stream
# sequence, and left projector consumers led by copies that delivered nothing more; 4 runs of 4
# failed on 2026-12-07 (docs/reliability.md, "NATS versions side by side"). Those are the
# server's defects, which Parley cannot repair from the client side; the scenario is there to
# prove Parley's own handling of a cluster, so it runs on a server that keeps Raft's promises.
# Every other test, and the single-server fault scenarios, still run on the machine's NATS.
#
# Exits non-zero, printing nothing on stdout, when the package cannot be fetched or does not match;
# the fault harness (clusterServerBin in e2e/faults/harness/servers.ts) then runs the scenario on
# the machine's NATS and warns. Debian's pool keeps a version while a suite refers to it: when sid
# moves past 2.15.1 the URL below must move with it (same check: the SHA-256 of the new package).
set -euo pipefail

version=2.15.1
deb="nats-server_${version}-1_amd64.deb"
sha256=31ef4ceaa84e8248d449e508472e3770c17c3695cb5cb0ee96e03912724ea884
url="http://deb.debian.org/debian/pool/main/n/nats-server/${deb}"
dir="${PARLEY_CACHE_DIR:-$HOME/.cache/parley}/nats-server-${version}"
bin="$dir/usr/sbin/nats-server"

# A cached copy that does not run (an unpack cut short) is fetched again.
if [ -x "$bin" ] && ! "$bin" --version > /dev/null 2>&1; then rm -rf "$dir"; fi
if [ ! -x "$bin" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  if ! curl -sSf --max-time 60 -o "$tmp/$deb" "$url" >&2; then
    echo "nats-cluster-server: could not fetch $url" >&2
    exit 1
  fi
  if ! echo "$sha256  $tmp/$deb" | sha256sum -c --status; then
    echo "nats-cluster-server: $deb does not match its pinned SHA-256" >&2
    exit 1
  fi
  # Unpacked aside and moved into place whole: the cache holds a complete copy or none.
  dpkg-deb -x "$tmp/$deb" "$tmp/unpacked"
  mkdir -p "$(dirname "$dir")"
  rm -rf "$dir"
  mv "$tmp/unpacked" "$dir"
fi
"$bin" --version >&2
echo "$bin"
