// Package torch is the Go face of libdtorch (native/): GPT-2 models whose
// parameters and gradients are single flat float32 buffers, AdamW, devices,
// and HuggingFace-compatible checkpoints (config.json + safetensors).
//
// Every handle is freed by an explicit Close; memory never depends on Go
// finalizers running. The package links libdtorch.so dynamically (from the
// binary's own directory, then from bin/ of the source tree), so a CUDA
// build of the library drops in beside a dtrain binary without rebuilding Go.
package torch
