#!/usr/bin/env bash
# Run the webhook offline on the example policies, over HTTPS on localhost.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-8443}"
METRICS_PORT="${METRICS_PORT:-8080}"
.venv/bin/python scripts/devcert.py .demo
cat <<MSG

portieris-webhook demo: offline mode on examples/manifests, https://127.0.0.1:${PORT}
Send it a review from another terminal:

  curl -s --cacert .demo/ca.crt -H 'Content-Type: application/json' \\
       --data-binary @examples/reviews/pod-denied.json https://127.0.0.1:${PORT}/admit

  (also examples/reviews/pod-allowed.json and pod-team-a.json)
Metrics: curl -s http://127.0.0.1:${METRICS_PORT}/metrics | grep portieris_
Stop with Ctrl-C.

MSG
exec .venv/bin/portieris-webhook serve --manifests examples/manifests \
  --tls-cert-file .demo/tls.crt --tls-key-file .demo/tls.key \
  --host 127.0.0.1 --port "$PORT" --metrics-port "$METRICS_PORT"
