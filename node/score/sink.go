package score

import (
	"context"
	"errors"
	"fmt"

	"github.com/dtrain-dev/dtrain/node/metrics"
)

// WeightsSink publishes a validator's weights, once per epoch. Write must
// return within a bounded time whatever the far end does, so that
// publishing never stalls scoring.
type WeightsSink interface {
	Write(ctx context.Context, w Weights) error
}

// Sinks writes to each sink in turn, all of them even when some fail.
type Sinks []WeightsSink

// Write writes w to every sink and joins their errors.
func (ss Sinks) Write(ctx context.Context, w Weights) error {
	var errs []error
	for _, s := range ss {
		if err := s.Write(ctx, w); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// JSONLSink appends each epoch's weights to a JSONL file as one "weights"
// event (metrics.JSONL: time and event first, then chain, epoch, miners):
//
//	{"time":"…","event":"weights","chain":{"uids":[0,1],"weights":[65535,31002],…},"epoch":7,"miners":[{"miner":"…","weight":0.68,…},…]}
type JSONLSink struct {
	log *metrics.JSONL
}

// OpenJSONLSink opens (appending to) or creates the file at path.
func OpenJSONLSink(path string) (*JSONLSink, error) {
	log, err := metrics.OpenJSONL(path)
	if err != nil {
		return nil, fmt.Errorf("open weights sink: %w", err)
	}
	return &JSONLSink{log: log}, nil
}

// Write appends one line for w.
func (s *JSONLSink) Write(ctx context.Context, w Weights) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("write weights of epoch %d: %w", w.Epoch, err)
	}
	err := s.log.Write("weights", map[string]any{"epoch": w.Epoch, "miners": w.Miners, "chain": w.Chain})
	if err != nil {
		return fmt.Errorf("write weights of epoch %d: %w", w.Epoch, err)
	}
	return nil
}

// Close closes the file.
func (s *JSONLSink) Close() error { return s.log.Close() }
