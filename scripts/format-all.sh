#!/usr/bin/env bash
# Format the whole tree once and apply the linters' automatic fixes (`npm run format`), then
# report what is left for a person to fix. `npm run lint` (run by .ci/run) checks the same
# things without changing anything.
#   --exports   also let knip remove the `export` keyword from exports nothing imports
#               (then run `npx tsc --noEmit -p .`: a declaration left unused must be deleted)
set -uo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*"; }
status=0

# eslint's fixes first: prettier then formats what they leave.
log "eslint --fix ."
npx eslint --fix . || status=1

if [ "${1:-}" = "--exports" ]; then
  log "knip --fix (exports)"
  npx knip --fix --fix-type exports,types || true
fi

log "prettier --write ."
npx prettier --write --log-level warn . || status=1

log "knip"
npx knip || status=1

[ "$status" -eq 0 ] && log "clean" || log "some findings above need a person (see the messages)"
exit "$status"
