// Package metrics reports what a training run or a miner does, besides the
// log: an append-only JSONL event log that survives crashes and resumes,
// and Prometheus metrics served over HTTP (Training, Miner).
package metrics
