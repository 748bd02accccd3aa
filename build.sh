#!/usr/bin/env bash
# build.sh: install what dtrain needs and build it.
#
#   ./build.sh            install system packages (once), build bin/libdtorch.so and bin/dtrain
#   ./build.sh test       the same, then run the whole test suite
#   ./build.sh native     only (re)build bin/libdtorch.so, installing nothing
#   ./build.sh --cuda     build bin/libdtorch.so against a CUDA libtorch, and bin/dtrain
#   ./build.sh native --cuda   only the CUDA bin/libdtorch.so
#
# CUDA: LIBTORCH names the libtorch: the root of an official archive
# (default third_party/libtorch, git-ignored: unpack one there), "pip" for the
# torch that ${PYTHON:-python3} imports, or the directory a pip torch reports
# (python3 -c 'import torch; print(torch.utils.cmake_prefix_path)'). A CUDA
# libtorch's CMake config also needs the CUDA toolkit (nvcc and headers, on
# PATH or in ${CUDA_HOME:-/usr/local/cuda}). --cuda installs no CPU libtorch
# from Debian, only g++, cmake and make when missing. The Go binary does not
# change: libdtorch.so is found beside bin/dtrain, so a CUDA build made on a
# GPU machine (without Go) drops in next to a dtrain built anywhere.
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { echo "build.sh: $*" >&2; exit 1; }

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
  if [[ $cuda == 1 ]]; then
    # The CUDA libtorch brings its own libraries: only a compiler and CMake,
    # and only when missing (GPU machines are not always Debian).
    local missing=()
    for t in g++ cmake make; do command -v "$t" >/dev/null || missing+=("$t"); done
    ((${#missing[@]} == 0)) || need_apt "${missing[@]}"
    [[ $cmd != test ]] || need_apt iproute2 iptables
  else
    # libtorch 1.13 (CPU) + OpenBLAS (Debian's libtorch otherwise falls back to
    # the reference BLAS, ~50x slower matmuls); python3-torch gives the PyTorch
    # baselines that benchmarks and compatibility tests compare against.
    need_apt g++ cmake make pkg-config libtorch-dev libopenblas0-pthread python3 python3-torch python3-numpy
    # Network tests build their own hosts: namespaces, veth and tc (iproute2),
    # NAT routers (iptables).
    need_apt iproute2 iptables
  fi
  # The dashboard's browser test drives a headless Chromium.
  [[ $cmd != test ]] || need_apt chromium
  if ! command -v go >/dev/null; then
    [[ -x /usr/local/go/bin/go ]] && export PATH=$PATH:/usr/local/go/bin || { echo "build.sh: Go is required (https://go.dev/dl/)" >&2; exit 1; }
  fi
}

# cuda_libtorch resolves LIBTORCH to the directory holding TorchConfig.cmake
# (torch_dir) and libtorch's lib directory (torch_lib), and checks that it is a
# CUDA build and that a CUDA toolkit is there for its CMake config.
cuda_libtorch() {
  local want=${LIBTORCH:-$root/third_party/libtorch} prefix py=""
  if [[ $want == pip ]]; then
    py=${PYTHON:-python3}
    # From /: in the repository root, `import torch` finds dtrain's Go package torch/.
    prefix=$(cd / && "$py" -c 'import torch, torch.utils; print(torch.utils.cmake_prefix_path)') ||
      die "LIBTORCH=pip: $py cannot import torch (pip install torch, or set PYTHON to the interpreter that can)"
  else
    [[ -d $want ]] || die "--cuda: no libtorch at $want: unpack an official CUDA libtorch archive there (https://pytorch.org/get-started/locally/, LibTorch) or set LIBTORCH to a libtorch directory, or to pip"
    prefix=$want
  fi
  [[ -d $prefix ]] || die "--cuda: $prefix is not a directory${py:+: this torch ships no CMake config (Debian python3-torch does not)}"
  prefix=$(cd "$prefix" && pwd)
  # An archive keeps its config in share/cmake/Torch; a pip torch's
  # cmake_prefix_path is that share/cmake itself.
  torch_dir=""
  for d in "$prefix/share/cmake/Torch" "$prefix/Torch"; do
    [[ -f $d/TorchConfig.cmake ]] && { torch_dir=$d; break; }
  done
  [[ -n $torch_dir ]] || die "--cuda: no TorchConfig.cmake under $prefix (share/cmake/Torch or Torch): not a libtorch archive's root nor a pip torch's cmake_prefix_path"
  torch_lib=$(cd "$torch_dir/../../.." && pwd)/lib
  [[ -f $torch_lib/libtorch_cuda.so ]] ||
    die "--cuda: no $torch_lib/libtorch_cuda.so: $prefix is not a CUDA libtorch (a CPU build, or not laid out as an official archive or a pip torch); for the CPU, run ./build.sh native without --cuda"
  if ! command -v nvcc >/dev/null; then
    local home=${CUDA_HOME:-/usr/local/cuda}
    [[ -x $home/bin/nvcc ]] ||
      die "--cuda: no CUDA toolkit: nvcc is neither on PATH nor in $home/bin (set CUDA_HOME). A CUDA libtorch's CMake config needs the toolkit (nvcc, headers) of the CUDA version it was built for: install it, or build in an nvidia/cuda *-devel image"
    export PATH=$home/bin:$PATH
  fi
  log "CUDA libtorch: $torch_dir; $(nvcc --version | grep -o 'release [0-9.]*' | head -1 || true) at $(command -v nvcc)"
}

native() {
  local builddir=native/build args=()
  if [[ $cuda == 1 ]]; then
    cuda_libtorch
    builddir=native/build-cuda
    # CMake caches what it found (libraries, CUDA paths) beside Torch_DIR:
    # start afresh when LIBTORCH names another libtorch.
    if [[ -f $builddir/CMakeCache.txt && $(sed -n 's/^Torch_DIR:[A-Z]*=//p' "$builddir/CMakeCache.txt") != "$torch_dir" ]]; then
      rm -rf "$builddir"
    fi
    args=(-DTorch_DIR="$torch_dir")
  fi
  log "building libdtorch.so${args[*]:+ against ${torch_dir%/share/cmake/Torch}}"
  cmake -S native -B "$builddir" -DCMAKE_BUILD_TYPE=Release "${args[@]}" >/dev/null
  cmake --build "$builddir" -j "$(nproc)"
  mkdir -p bin
  cp "$builddir/libdtorch.so" bin/libdtorch.so.tmp && mv bin/libdtorch.so.tmp bin/libdtorch.so
}

gobuild() {
  log "building bin/dtrain"
  if [[ $cuda == 1 ]]; then
    # The linker follows libdtorch.so into libtorch's own dependencies: show it
    # libtorch's lib directory, and let the loader, not the linker, resolve
    # what libtorch needs from the CUDA driver (absent on GPU-less builders).
    # (Exported: ./build.sh test --cuda links its test binaries the same way.)
    export CGO_LDFLAGS="${CGO_LDFLAGS:--g -O2} -Wl,-rpath-link,$torch_lib -Wl,--allow-shlib-undefined"
  fi
  # dtrain version prints the commit it was built from, which go build
  # stamps from git: asked for explicitly, since a GOFLAGS=-buildvcs=false
  # in Go's environment turns it off. Without git or .git (the Docker
  # build), or should git fail, the version is "devel".
  if [[ -e .git ]] && git rev-parse HEAD >/dev/null 2>&1; then
    go build -buildvcs=true -o bin/dtrain ./cmd/dtrain 2>/dev/null && return
  fi
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
