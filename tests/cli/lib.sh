# Shared by the process-level test scripts: a work dir and the processes to
# kill on exit, free loopback ports, waiting for a condition.
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 "$(dirname "${BASH_SOURCE[0]}")/free_port.py"; }
