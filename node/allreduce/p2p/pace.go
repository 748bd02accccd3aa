package p2p

import (
	"context"

	"golang.org/x/time/rate"
)

// Option configures a round's transport.
type Option func(*transport)

// WithUplinkLimit makes every writer of the round take its frames' bytes
// from lim before writing them, so that what this member sends in all
// stays under lim's rate. Share one limiter among a process's rounds: it
// is the uplink's.
//
// Set just under the uplink's rate, it keeps the link's queue empty. That
// is worth more than the few percent it gives up: an all-reduce sends and
// receives at once, and a full uplink queue delays this member's
// acknowledgements by the whole queue, which starves the flows coming in
// (dtrain bench allreduce over tbf at 200 Mbit/s, 4 peers: 0.73–0.84 of the
// bound without a limit, 0.90–0.92 with 186–188 Mbit/s of frames; README).
func WithUplinkLimit(lim *rate.Limiter) Option {
	return func(t *transport) { t.uplink = lim }
}

// pace waits until lim grants n bytes, taking them a burst at a time, or
// until ctx ends (the write then goes ahead: the round's deadline decides).
func pace(ctx context.Context, lim *rate.Limiter, n int) {
	if lim == nil {
		return
	}
	for n > 0 {
		k := min(n, lim.Burst())
		if k <= 0 || lim.WaitN(ctx, k) != nil {
			return
		}
		n -= k
	}
}

// NewUplinkLimit returns a limiter of bitsPerSecond for WithUplinkLimit,
// or nil for a rate <= 0 (no limit). Its burst is 40 ms at the rate, and
// at least 256 KiB (a part of float32 at the default part size): a writer
// that waited for parts to reduce may catch up by that much at once, which
// a link's queue absorbs. With 64 KiB bursts, 4 peers at 186 of 200
// Mbit/s reached 0.85–0.88 of the bound; with 1 MiB, 0.90.
func NewUplinkLimit(bitsPerSecond float64) *rate.Limiter {
	if !(bitsPerSecond > 0) {
		return nil
	}
	return rate.NewLimiter(rate.Limit(bitsPerSecond/8), max(256<<10, int(bitsPerSecond/8*0.040)))
}
