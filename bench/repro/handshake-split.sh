#!/bin/bash
# Who spends the CPU of a handshake, per process: starts the bench's backend and a gateway with
# --processes P (built dist/, bench certificates from a previous `npm run bench`), drives 8 handshakes in
# flight for 8 s with the bench's load generator, and prints the load generator's result and the CPU
# ticks (1/100 s) of each gateway process (the primary first). Loopback only; bounded by count and time.
# usage: bench/repro/handshake-split.sh P [PORT]
set -euo pipefail
P=${1:?usage: handshake-split.sh PROCESSES [PORT]}; PORT=${2:-19900}
ROOT=$(cd "$(dirname "$0")/../.." && pwd); W=$ROOT/bench/work; C=$W/certs
out=$(mktemp -d)
"$W/bin/backend" 0 > "$out/backend" 2>&1 & BE=$!
trap 'kill $BE ${GW:-} 2>/dev/null || true; rm -rf "$out"' EXIT
for _ in $(seq 50); do BPORT=$(grep -o '[0-9]\+' "$out/backend" | head -1 || true); [ -n "$BPORT" ] && break; sleep 0.1; done
node "$ROOT/dist/cli/bin.js" run --processes "$P" --tls-ca "$C/ca.pem" --tls-cert "$C/gw.pem" --tls-key "$C/gw-key.pem" \
  --cluster bench --listen "127.0.0.1:$PORT" --scheduler "127.0.0.1:$BPORT" --inspect=false --max-connections 20000 \
  --max-connections-per-identity 20000 --max-connections-per-address 20000 --max-handshakes-per-address 128 \
  --reserve-workers-percent 0 --dashboard=false --metrics-listen 127.0.0.1:0 --failed-handshake-rate 100000 > "$out/gw" 2>&1 &
GW=$!
for _ in $(seq 100); do grep -q '"gateway_started"' "$out/gw" && break; sleep 0.1; done
pids="$GW $(pgrep -P $GW || true)"
ticks() { for p in $pids; do echo "$p $(awk '{print $14+$15}' /proc/$p/stat)"; done; }
ticks > "$out/t1"
"$W/bin/loadgen" handshake --port "$PORT" --count 20000 --seconds 8 --parallel 8 --tls --ca "$C/ca.pem" --cert "$C/client.pem" \
  --key "$C/client-key.pem" --ciphersuites TLS_AES_128_GCM_SHA256 --deadline 30 | tail -1
ticks > "$out/t2"
join "$out/t1" "$out/t2" | awk '{print "pid " $1 " cpu_ticks " $3-$2}'
