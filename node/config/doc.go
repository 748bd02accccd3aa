// Package config loads, checks and documents dtrain's TOML configuration
// files: LoadTrain reads a file over the defaults and reports every unknown
// key, wrongly typed value and impossible setting with the key's dotted name
// and line, and Template writes a commented file with every default, built
// from the structs' `toml` and `doc` tags so the docs cannot drift from the
// code.
//
// The package is pure Go (no cgo): it checks values such as the device name
// itself instead of asking libtorch.
package config
