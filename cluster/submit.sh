#!/usr/bin/env bash
# Run a command on a Ray cluster as a job: this checkout is its working directory on every node, and the
# W&B settings of your shell (WANDB_API_KEY, WANDB_ENTITY, WANDB_PROJECT, if set) reach every trial as
# environment variables. Nothing secret is written into the repository or onto the command line.
#
#   ray dashboard cluster/gpu.yaml &                      # forwards the head's port 8265 here
#   cluster/submit.sh raydrift tune search_spaces/kernels.py --address auto --storage s3://BUCKET/studies
#
# RAY_ADDRESS: the dashboard to submit to (default http://127.0.0.1:8265). Extra `ray job submit` options
# go in RAYDRIFT_SUBMIT_OPTS, e.g. "--no-wait --submission-id kernels-cifar10". The cluster runs with Ray's
# token authentication (cluster/*.yaml): the submission carries the token from ~/.ray/auth_token, and only
# holders of that token can list jobs and read their runtime_env (where the W&B settings travel).
set -euo pipefail
export RAY_AUTH_MODE=token
[ -n "${RAY_AUTH_TOKEN:-}${RAY_AUTH_TOKEN_PATH:-}" ] || [ -s "$HOME/.ray/auth_token" ] || {
    echo "no Ray token: run 'ray get-auth-token --generate' before 'ray up' (cluster/README.md, Security)" >&2
    exit 1
}
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

env_file=$(mktemp "${TMPDIR:-/tmp}/raydrift-runtime-env.XXXXXX")
trap 'rm -f "$env_file"' EXIT
chmod 600 "$env_file"
python - "$env_file" <<'PY'
import json, os, sys

env = {k: os.environ[k] for k in ("WANDB_API_KEY", "WANDB_ENTITY", "WANDB_PROJECT") if os.environ.get(k)}
with open(sys.argv[1], "w") as f:
    json.dump({"env_vars": env}, f)  # JSON is YAML, which --runtime-env reads
PY
# shellcheck disable=SC2086
ray job submit --address "${RAY_ADDRESS:-http://127.0.0.1:8265}" --working-dir . --runtime-env "$env_file" \
    ${RAYDRIFT_SUBMIT_OPTS:-} -- "$@"
