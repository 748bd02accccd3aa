# dtrain GPU image: a miner on an NVIDIA GPU (CUDA libtorch).
#
#   docker build -t dtrain .
#   docker run --gpus all --network host -v $PWD/miner.toml:/config/miner.toml:ro -v $PWD/data:/data \
#     dtrain miner --config /config/miner.toml
#
# /data is the working directory: the default out_dir (runs/miner, with the
# miner's identity key) and the tokenized-data cache land there. The host
# needs only the NVIDIA driver and the NVIDIA Container Toolkit.
# A CPU install needs no Docker: ./build.sh (Debian's libtorch); README has both.
#
# linux/amd64 only: download.pytorch.org publishes CUDA libtorch archives for
# x86_64 Linux. CUDA_VERSION and LIBTORCH_URL must name the same CUDA
# major.minor (12.8 = cu128).
ARG CUDA_VERSION=12.8.1
ARG UBUNTU=ubuntu24.04

# Builder: the CUDA toolkit (nvcc, headers), which a CUDA libtorch's CMake
# config needs, and cuDNN's headers, which it looks for.
FROM nvidia/cuda:${CUDA_VERSION}-cudnn-devel-${UBUNTU} AS build
# Go: the version go.mod names (cmd/dtrain's dockerfile test checks it).
ARG GO_VERSION=1.26.6
# The official cxx11-ABI archive; since 2.8 its name has no "cxx11-abi-"
# (2.7.x: libtorch-cxx11-abi-shared-with-deps-2.7.1%2Bcu128.zip). The name
# follows download.pytorch.org's pattern as used in public build scripts; it
# was not fetched from the development machine (no internet there).
ARG LIBTORCH_URL=https://download.pytorch.org/libtorch/cu128/libtorch-shared-with-deps-2.9.0%2Bcu128.zip
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates curl unzip g++ cmake make \
 && rm -rf /var/lib/apt/lists/*
RUN curl -fsSL "https://go.dev/dl/go${GO_VERSION}.linux-amd64.tar.gz" | tar -C /usr/local -xz
ENV PATH=/usr/local/go/bin:$PATH GOTOOLCHAIN=local
# build.sh --cuda reads LIBTORCH; the archive unpacks to libtorch/.
ENV LIBTORCH=/opt/libtorch
RUN curl -fsSL -o /tmp/libtorch.zip "$LIBTORCH_URL" \
 && unzip -q /tmp/libtorch.zip -d /opt \
 && rm /tmp/libtorch.zip \
 && test -f "$LIBTORCH/lib/libtorch_cuda.so"
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# bin/libdtorch.so (CUDA) and bin/dtrain, the same way as on a host.
RUN GOFLAGS=-trimpath ./build.sh --cuda
# Only the shared libraries travel on.
RUN find "$LIBTORCH/lib" -name '*.a' -delete

# Runtime: -base carries the CUDA runtime (libcudart) but not cuBLAS or
# cuDNN; the with-deps libtorch archive bundles those and the rest of what
# libtorch_cuda.so loads in its lib/, so -runtime or -cudnn-runtime would only
# add second copies (the ldd check below fails the build if one is missing).
# The driver (libcuda.so.1) comes from the host through the NVIDIA runtime.
FROM nvidia/cuda:${CUDA_VERSION}-base-${UBUNTU}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# libtorch keeps the absolute path it had in the builder: libdtorch.so's rpath
# (CMake's link path at build time) points there.
COPY --from=build /opt/libtorch/lib /opt/libtorch/lib
# libdtorch.so sits beside the binary: dtrain finds it through its $ORIGIN rpath.
COPY --from=build /src/bin/dtrain /src/bin/libdtorch.so /opt/dtrain/bin/
# The PyTorch baseline scripts (dtrain bench looks in the binary's ../third_party).
COPY --from=build /src/third_party/pytorch /opt/dtrain/third_party/pytorch
# The built-in training corpus is the Go standard library's sources
# (node/data: builtin:gosrc); DTRAIN_GOROOT tells dtrain where they are.
COPY --from=build /usr/local/go/VERSION /usr/local/go/VERSION
COPY --from=build /usr/local/go/src /usr/local/go/src
ENV DTRAIN_GOROOT=/usr/local/go \
    PATH=/opt/dtrain/bin:$PATH \
    XDG_CACHE_HOME=/data/cache \
    DTRAIN_DEVICE=cuda \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
# Fail the build, not the miner, on a library the image lacks (the driver's
# libcuda.so.1 excepted: the host brings it).
RUN ! ldd /opt/dtrain/bin/dtrain | grep -v 'libcuda\.so' | grep 'not found' \
 && dtrain version
WORKDIR /data
VOLUME /data
# A miner's default listen port (QUIC and TCP); a validator's is 4003.
EXPOSE 4002/udp 4002/tcp
ENTRYPOINT ["dtrain"]
# Without arguments: mine the default configuration. DTRAIN_DEVICE=cuda puts
# every command that runs a model (miner, train, eval, bench) on the GPU,
# over the config's device; -e DTRAIN_DEVICE=cuda:1 picks another GPU.
CMD ["miner"]
