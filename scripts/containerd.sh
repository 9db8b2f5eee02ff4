#!/usr/bin/env bash
# A private containerd for the quick start, tests and benchmarks (docs/edged.md):
#   containerd.sh start DIR   starts containerd with its root, state, socket
#                             and CNI config under DIR, imports the local
#                             images (localhost/busybox:local and the sandbox
#                             image localhost/pause:local), prints the socket
#   containerd.sh stop DIR    removes every pod sandbox through CRI's state
#                             (ctr), stops containerd and its shims, removes
#                             the CNI bridge
# Needs root and Debian's containerd, runc, containernetworking-plugins and
# busybox-static. No registry is used: the images are built here from
# busybox-static as docker-archive tarballs and imported with ctr.
set -euo pipefail
cmd=${1:?usage: containerd.sh start|stop DIR}
dir=$(realpath -m "${2:?usage: containerd.sh start|stop DIR}")
sock=$dir/containerd.sock
bridge=kedge-cni$(( $(cksum <<<"$dir" | cut -d' ' -f1) % 1000 ))
ctr_() { ctr -a "$sock" -n k8s.io "$@"; }

stop() {
  [ -f "$dir/containerd.pid" ] || { unmount_all; return 0; }
  local pid
  pid=$(cat "$dir/containerd.pid")
  if kill -0 "$pid" 2>/dev/null; then
    # Tasks first (the shims outlive containerd), then containers.
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
    sleep 0.3
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$t" >/dev/null 2>&1 || true; done
    for c in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers delete "$c" >/dev/null 2>&1 || true; done
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  # Shims of this containerd (their command line names its socket's dir).
  pkill -KILL -f "containerd-shim-runc-v2 .*-address $sock" 2>/dev/null || true
  rm -f "$dir/containerd.pid"
  ip link del "$bridge" 2>/dev/null || true
  for n in $(ip netns list 2>/dev/null | awk '/^cni-/ {print $1}'); do
    # only namespaces no process uses any more
    [ -z "$(ip netns pids "$n" 2>/dev/null)" ] && ip netns del "$n" 2>/dev/null || true
  done
  unmount_all
}

# What CRI mounted for sandboxes (shm) and snapshots, deepest first, or the
# directory cannot be removed.
unmount_all() {
  awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

# A docker-archive tarball of busybox-static: NAME CMD... -> stdout path
image() {
  local name=$1; shift
  python3 - "$dir/images" "$name" "$@" <<'PY'
import hashlib, io, json, os, subprocess, sys, tarfile
out, name, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
os.makedirs(out, exist_ok=True)
applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True, check=True).stdout.split()
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w", format=tarfile.USTAR_FORMAT) as t:
    def add_dir(p):
        i = tarfile.TarInfo(p); i.type = tarfile.DIRTYPE; i.mode = 0o755; t.addfile(i)
    def add_file(p, data, mode=0o644):
        i = tarfile.TarInfo(p); i.size = len(data); i.mode = mode; t.addfile(i, io.BytesIO(data))
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "root", "var", "usr", "usr/bin"]:
        add_dir(d)
    with open("/bin/busybox", "rb") as f:
        add_file("bin/busybox", f.read(), 0o755)
    for a in applets:
        if a == "busybox":
            continue
        i = tarfile.TarInfo("bin/" + a); i.type = tarfile.SYMTYPE; i.linkname = "busybox"; t.addfile(i)
    add_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    add_file("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
layer_bytes = layer.getvalue()
diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
config = {"architecture": "amd64", "os": "linux",
          "config": {"Cmd": cmd, "Env": ["PATH=/bin:/usr/bin"], "WorkingDir": "/"},
          "rootfs": {"type": "layers", "diff_ids": [diff_id]}, "history": [{"created_by": "kedge tests"}]}
config_bytes = json.dumps(config).encode()
config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
manifest = [{"Config": config_name, "RepoTags": [name], "Layers": ["layer.tar"]}]
path = os.path.join(out, name.replace("/", "_").replace(":", "_") + ".tar")
with tarfile.open(path, "w") as t:
    for n, data in [("layer.tar", layer_bytes), (config_name, config_bytes),
                    ("manifest.json", json.dumps(manifest).encode())]:
        i = tarfile.TarInfo(n); i.size = len(data); t.addfile(i, io.BytesIO(data))
print(path)
PY
}

start() {
  mkdir -p "$dir/cni/conf" "$dir/root" "$dir/state"
  stop
  cat >"$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
[grpc]
  address = "$sock"
[ttrpc]
  address = "$dir/containerd.ttrpc.sock"
[debug]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:local"
  restrict_oom_score_adj = true
  enable_cdi = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/conf"
EOF
  cat >"$dir/cni/conf/10-kedge.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "kedge-test",
 "plugins": [
  {"type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.$(( 100 + ${bridge#kedge-cni} % 100 )).0.0/16"}]],
            "dataDir": "$dir/cni/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
  containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 &
  echo $! >"$dir/containerd.pid"
  for _ in $(seq 100); do
    ctr -a "$sock" version >/dev/null 2>&1 && break
    sleep 0.1
  done
  ctr -a "$sock" version >/dev/null 2>&1 || { cat "$dir/containerd.log" >&2; echo "containerd did not start" >&2; exit 1; }
  ctr_ images import --no-unpack=false "$(image localhost/busybox:local sh)" >/dev/null
  ctr_ images import "$(image localhost/pause:local sleep 2147483647)" >/dev/null
  echo "$sock"
}

case $cmd in
  start) start ;;
  stop) stop ;;
  *) echo "usage: containerd.sh start|stop DIR" >&2; exit 2 ;;
esac
