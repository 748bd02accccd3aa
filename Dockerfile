# dtrain CPU image: Debian 12's libtorch 1.13 + OpenBLAS.
#   docker build -t dtrain .
#   docker run --rm -v $PWD/ckpt:/ckpt dtrain ckpt init --out /ckpt/tiny --layers 4 --heads 4 --embd 128 --ctx 128
# The GPU image (CUDA libtorch) is built from the same sources with
# ./build.sh --cuda; see README.

FROM golang:1.26-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      g++ cmake make libtorch-dev libopenblas0-pthread \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN cmake -S native -B native/build -DCMAKE_BUILD_TYPE=Release \
 && cmake --build native/build -j "$(nproc)" \
 && mkdir -p bin && cp native/build/libdtorch.so bin/ \
 && go build -trimpath -o bin/dtrain ./cmd/dtrain

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libtorch1.13 libopenblas0-pthread ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# libdtorch.so sits beside the binary: dtrain finds it through its $ORIGIN rpath.
COPY --from=build /src/bin/dtrain /src/bin/libdtorch.so /opt/dtrain/bin/
COPY --from=build /src/third_party/pytorch /opt/dtrain/third_party/pytorch
# The built-in training corpus is the Go standard library's sources
# (node/data: builtin:gosrc); DTRAIN_GOROOT tells dtrain where they are.
COPY --from=build /usr/local/go/VERSION /usr/local/go/VERSION
COPY --from=build /usr/local/go/src /usr/local/go/src
ENV DTRAIN_GOROOT=/usr/local/go
RUN ln -s /opt/dtrain/bin/dtrain /usr/local/bin/dtrain && dtrain version
ENTRYPOINT ["dtrain"]
CMD ["--help"]
