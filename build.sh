#!/usr/bin/env bash
# build.sh: install what dtrain needs and build it.
#
#   ./build.sh            install system packages (once), build bin/libdtorch.so and bin/dtrain
#   ./build.sh test       the same, then run the whole test suite
#   ./build.sh native     only (re)build bin/libdtorch.so, installing nothing
#   ./build.sh native --cuda   build it against a CUDA libtorch instead of Debian's
#
# CUDA: LIBTORCH names the libtorch: an official archive's root, or a pip
# torch's python3 -c 'import torch; print(torch.utils.cmake_prefix_path)';
# default third_party/libtorch (an archive unpacked there). The Go binary does not
# change: libdtorch.so is found beside bin/dtrain, so a CUDA build made on a
# GPU machine (without Go) drops in next to a dtrain built anywhere.
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

need_apt() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    local sudo=""
    [[ $(id -u) == 0 ]] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

deps() {
  # libtorch 1.13 (CPU) + OpenBLAS (Debian's libtorch otherwise falls back to
  # the reference BLAS, ~50x slower matmuls); python3-torch gives the PyTorch
  # baselines that benchmarks and compatibility tests compare against.
  need_apt g++ cmake make pkg-config libtorch-dev libopenblas0-pthread python3 python3-torch python3-numpy
  # Network tests build their own hosts: namespaces, veth and tc (iproute2),
  # NAT routers (iptables).
  need_apt iproute2 iptables
  if ! command -v go >/dev/null; then
    [[ -x /usr/local/go/bin/go ]] && export PATH=$PATH:/usr/local/go/bin || { echo "build.sh: Go is required (https://go.dev/dl/)" >&2; exit 1; }
  fi
}

native() {
  local prefix="" builddir=native/build
  if [[ ${cuda:-0} == 1 ]]; then
    prefix=${LIBTORCH:-$root/third_party/libtorch}
    [[ -d $prefix ]] || { echo "build.sh --cuda: no libtorch at $prefix (set LIBTORCH)" >&2; exit 1; }
    builddir=native/build-cuda
  fi
  log "building libdtorch.so${prefix:+ against $prefix}"
  cmake -S native -B "$builddir" -DCMAKE_BUILD_TYPE=Release ${prefix:+-DCMAKE_PREFIX_PATH="$prefix"} >/dev/null
  cmake --build "$builddir" -j "$(nproc)"
  mkdir -p bin
  cp "$builddir/libdtorch.so" bin/libdtorch.so.tmp && mv bin/libdtorch.so.tmp bin/libdtorch.so
}

gobuild() {
  log "building bin/dtrain"
  go build -o bin/dtrain ./cmd/dtrain
}

cuda=0
cmd=build
for a in "$@"; do
  case $a in
    --cuda) cuda=1 ;;
    test|native|build) cmd=$a ;;
    *) echo "build.sh: unknown argument $a (want: test, native, --cuda)" >&2; exit 2 ;;
  esac
done

case $cmd in
  native) native ;;
  build) deps; native; gobuild; log "done: bin/dtrain ($(bin/dtrain version))" ;;
  test)
    deps; native; gobuild
    log "go vet"
    go vet ./...
    log "go test"
    go test -count=1 -timeout 30m ./...
    ;;
esac
