// Package metrics reports what a training run (and later a miner or
// validator) does, besides the log: an append-only JSONL event log that
// survives crashes and resumes, and Prometheus metrics served over HTTP.
package metrics
