#!/usr/bin/env bash
# A private vitrine stack on the real fashion catalog, for the relevance benchmark (`make relevance`).
#
#   loadtests/relevance/serve_fashion.sh [WORKDIR]      # serves on $RELEVANCE_PORT (default 3077) until stopped
#
# Everything lives under WORKDIR (default var/relevance/stack, wiped first): the database (SQLite, or the
# PostgreSQL database named by RELEVANCE_DATABASE_URL, which must exist and be empty or hold this catalog),
# the BentoML model store with the offline MiniLM model, and the index. The cache is the in-process one and
# result caching is off, so every request is an uncached search; API keys are required, as in production
# (the key is $RELEVANCE_API_KEY, default relevance-key). The catalog is read in place from ../shared/data.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="${VITRINE_BIN:-$REPO/.venv/bin}"
WORKDIR="${1:-$REPO/var/relevance/stack}"
FEED="$REPO/../shared/data/fashion-product-images/awin-feed.csv"
PORT="${RELEVANCE_PORT:-3077}"

if [[ ! -f "$FEED" ]]; then
    echo "the fashion catalog is missing: $FEED (../shared/data beside the repository)" >&2
    exit 1
fi
rm -rf "$WORKDIR"
mkdir -p "$WORKDIR"

export VITRINE_DATA_DIR="$WORKDIR/var"
export DATABASE_URL="${RELEVANCE_DATABASE_URL:-sqlite+aiosqlite:///$WORKDIR/vitrine.db}"
export BENTOML_HOME="$WORKDIR/bentoml"
export FAISS_INDEX_PATH="$WORKDIR/index"
export API_REQUIRE_KEY=true
export API_KEYS="${RELEVANCE_API_KEY:-relevance-key}"
export API_ENABLE_CACHE=false
export API_WORKERS="${RELEVANCE_API_WORKERS:-1}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 BENTOML_DO_NOT_TRACK=True PYTHONUNBUFFERED=1
unset REDIS_URL

cd "$REPO"
"$BIN/vitrine" db upgrade
"$BIN/vitrine" catalog import "$FEED"
"$BIN/vitrine" model import minilm >/dev/null
"$BIN/vitrine" index build
exec "$BIN/bentoml" serve service:Vitrine --host 127.0.0.1 --port "$PORT"
