package validator

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/epoch"
	"github.com/dtrain-dev/dtrain/node/score"
)

// The validator remembers when it probed each miner for probeMemory
// epochs once it holds more than maxProbed ids.
const (
	maxProbed   = 4096
	probeMemory = 64
)

// probe measures, in epoch e, the links of the miners (peers that offer
// their state) live at e or the epoch before that were not probed in the last probe.every_epochs
// epochs, oldest-probed first, at most probe.max_miners of them, one after
// another: RTT, then probe.bytes each way. A miner that does not answer is
// a failed probe. The observations reach the scorer for e.
func (d *driver) probe(e uint64) {
	v := d.v
	p := v.cfg.Probe
	if p.EveryEpochs == 0 || d.probing {
		// One probe run at a time: epochs shorter than a run skip theirs.
		return
	}
	now := clock()
	var live []string
	for _, id := range append(d.mach.Peers(now, e), d.mach.Peers(now, e-min(e, 1))...) {
		if d.miners[id] && !v.trusted(id) && !slices.Contains(live, id) {
			live = append(live, id)
		}
	}
	v.mu.Lock()
	due := slices.DeleteFunc(live, func(id string) bool {
		at, ok := v.probed[id]
		return ok && at+uint64(p.EveryEpochs) > e
	})
	slices.SortFunc(due, func(a, b string) int {
		at, bt := v.probed[a], v.probed[b]
		switch {
		case at != bt && at < bt:
			return -1
		case at != bt:
			return 1
		}
		return strings.Compare(a, b)
	})
	due = due[:min(len(due), p.MaxMiners)]
	for _, id := range due {
		v.probed[id] = e
	}
	if len(v.probed) > maxProbed {
		// Bounded: ids not probed for long are forgotten (and probed
		// again first if they come back).
		for id, at := range v.probed {
			if at+probeMemory < e {
				delete(v.probed, id)
			}
		}
	}
	v.mu.Unlock()
	if len(due) == 0 {
		return
	}
	d.begin(e)
	d.probing = true
	d.goWork(func(ctx context.Context) func() []epoch.Action {
		var obs []score.Observation
		for _, id := range due {
			obs = append(obs, v.probeOne(ctx, e, id))
		}
		return func() []epoch.Action {
			for _, o := range obs {
				d.observe(o)
			}
			d.probing = false
			d.end(e)
			return nil
		}
	})
}

// probeOne measures one miner's link.
func (v *Validator) probeOne(ctx context.Context, e uint64, id string) score.Observation {
	failed := score.Probe{Epoch: e, Miner: id, Failed: true}
	p, err := peer.Decode(id)
	if err != nil {
		return failed
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(v.cfg.Probe.Seconds*float64(time.Second)))
	defer cancel()
	proto := netx.Protocol(v.cfg.RunID, "probe")
	rtt, err := netx.Ping(ctx, v.node, p, proto)
	if err != nil {
		v.log.Debug().Err(err).Str("miner", id).Msg("probe")
		return failed
	}
	obs := score.Probe{Epoch: e, Miner: id, RTT: rtt}
	n := int64(v.cfg.Probe.Bytes)
	// Directions are the miner's: what it sends us is its upload.
	if r, err := netx.MeasureBandwidth(ctx, v.node, p, proto, n, netx.Download); err == nil {
		obs.Up = r.BitsPerSecond / 8
	}
	if r, err := netx.MeasureBandwidth(ctx, v.node, p, proto, n, netx.Upload); err == nil {
		obs.Down = r.BitsPerSecond / 8
	}
	v.log.Debug().Str("miner", id).Dur("rtt_ms", rtt).Float64("up_mbps", obs.Up*8/1e6).Float64("down_mbps", obs.Down*8/1e6).Msg("probe")
	return obs
}
