package validator

import (
	"math"
	"time"

	"github.com/dtrain-dev/dtrain/node/progress"
	"github.com/dtrain-dev/dtrain/node/score"
)

// Event is one thing the validator did or saw, for its observers (its
// metrics log, its dashboard): a RoundEvent, a ProbeEvent, a
// VerdictEvent, an EvalEvent or an EpochEvent. Options.Events gets them one at a time,
// from the validator's loop: it must not block. Kind names the event and
// Fields are its metrics.jsonl fields (durations in seconds, rates in
// Mbit/s, times in RFC 3339).
type Event interface {
	Kind() string
	Fields() map[string]any
}

// RoundEvent is an all-reduce round the validator joined as an aux member.
type RoundEvent struct {
	Epoch        uint64
	Group        int // members, this validator included
	Contributors int // members whose parts it received
	Faults       int
	// Expected are the miners of the group, Delivered those whose parts
	// this validator received.
	Expected, Delivered []string
	Took                time.Duration
	// BytesSent and BytesReceived are the frame bytes this validator
	// wrote and read on the round's streams.
	BytesSent, BytesReceived int64
	Err                      string // why the round failed; "" when it did not
}

// ProbeEvent is one probe of a miner's link. Rates are the miner's, in
// Mbit/s: Up is what it sent.
type ProbeEvent struct {
	Epoch            uint64
	Miner            string
	RTT              time.Duration
	UpMbps, DownMbps float64
	Failed           bool
}

// VerdictEvent is a work check's or a commitment check's outcome for one
// miner's update of an epoch.
type VerdictEvent struct {
	Epoch   uint64
	Miner   string
	Verdict string // pass, inconclusive or cheat
	Reason  string // for a cheat
}

// EpochEvent closes an epoch: its weights, and what the miners reported
// in it.
type EpochEvent struct {
	Epoch   uint64
	Weights score.Weights
	// Samples the miners reported for the epoch (each miner's largest
	// count), and their mean last training loss in it (NaN: none).
	Samples int64
	Loss    float64
	// Miners are the miners this validator has heard, by id.
	Miners []MinerSeen
	// Validators is how many of the run's validators were heard in the
	// last 30 s, this one included.
	Validators int
}

// MinerSeen is what a miner's latest progress report said, and when it
// came.
type MinerSeen struct {
	Miner string
	Epoch uint64
	Loss  float64 // NaN when the report had none
	Seen  time.Time
}

// EvalEvent is the held-out loss of the swarm's state after Epoch, as
// this validator evaluated it (a WorkCheck with the run's held-out data).
type EvalEvent struct {
	Epoch   uint64
	ValLoss float64
	Tokens  int // held-out tokens counted
}

func (EvalEvent) Kind() string { return "eval" }

func (e EvalEvent) Fields() map[string]any {
	return map[string]any{"epoch": e.Epoch, "val_loss": e.ValLoss, "tokens": e.Tokens}
}

func (RoundEvent) Kind() string   { return "round" }
func (ProbeEvent) Kind() string   { return "probe" }
func (VerdictEvent) Kind() string { return "verdict" }
func (EpochEvent) Kind() string   { return "epoch" }

func (e RoundEvent) Fields() map[string]any {
	f := map[string]any{"epoch": e.Epoch, "members": e.Group, "contributors": e.Contributors, "faults": e.Faults,
		"took_s": e.Took.Seconds(), "expected": e.Expected, "delivered": e.Delivered,
		"bytes_sent": e.BytesSent, "bytes_received": e.BytesReceived}
	if e.Err != "" {
		f["error"] = e.Err
	}
	return f
}

func (e ProbeEvent) Fields() map[string]any {
	f := map[string]any{"epoch": e.Epoch, "miner": e.Miner, "failed": e.Failed}
	if !e.Failed {
		f["rtt_ms"], f["up_mbps"], f["down_mbps"] = float64(e.RTT)/float64(time.Millisecond), e.UpMbps, e.DownMbps
	}
	return f
}

func (e VerdictEvent) Fields() map[string]any {
	f := map[string]any{"epoch": e.Epoch, "miner": e.Miner, "verdict": e.Verdict}
	if e.Reason != "" {
		f["reason"] = e.Reason
	}
	return f
}

// Fields of an epoch: the weights as the weights sink writes them, and
// each miner's last report (its loss omitted when it had none).
func (e EpochEvent) Fields() map[string]any {
	seen := make([]map[string]any, len(e.Miners))
	for i, m := range e.Miners {
		seen[i] = map[string]any{"miner": m.Miner, "epoch": m.Epoch, "seen": m.Seen.UTC().Format(time.RFC3339Nano)}
		if !math.IsNaN(m.Loss) {
			seen[i]["loss"] = m.Loss
		}
	}
	f := map[string]any{"epoch": e.Epoch, "samples": e.Samples, "weights": e.Weights.Miners, "seen": seen, "validators": e.Validators}
	if !math.IsNaN(e.Loss) {
		f["loss"] = e.Loss
	}
	return f
}

// verdictKinds name score's verdict kinds.
var verdictKinds = map[score.VerdictKind]string{score.Pass: "pass", score.Inconclusive: "inconclusive", score.Cheat: "cheat"}

// epochStat is what the miners reported for one epoch.
type epochStat struct {
	samples map[string]uint64  // each miner's largest count
	loss    map[string]float32 // each miner's last loss
}

// sightings holds the miners' latest reports and the recent epochs'
// counts, each bounded by maxMiners.
type sightings struct {
	last       map[string]MinerSeen
	epochs     map[uint64]*epochStat
	validators map[string]time.Time // the other trusted validators' last reports
}

// noteValidator records a report of another trusted validator.
func (s *sightings) noteValidator(id string, now time.Time) {
	if s.validators == nil {
		s.validators = map[string]time.Time{}
	}
	s.validators[id] = now
}

// liveValidators counts this validator and the others heard in the last
// 30 s.
func (s *sightings) liveValidators(now time.Time) int {
	n := 1
	for _, t := range s.validators {
		if now.Sub(t) <= 30*time.Second {
			n++
		}
	}
	return n
}

// note records report r, received at now while the validator observes
// epoch open: counts only for the epochs from open−1 to open+1 (others
// are stragglers' or lies), so at most three are held.
func (s *sightings) note(r progress.Report, now time.Time, open uint64) {
	if s.last == nil {
		s.last, s.epochs = map[string]MinerSeen{}, map[uint64]*epochStat{}
	}
	if _, ok := s.last[r.Peer]; !ok && len(s.last) >= maxMiners {
		return
	}
	loss := math.NaN()
	if r.HasLoss {
		loss = float64(r.Loss)
	}
	s.last[r.Peer] = MinerSeen{Miner: r.Peer, Epoch: r.Epoch, Loss: loss, Seen: now}
	if r.Epoch+1 < open || r.Epoch > open+1 {
		return
	}
	st := s.epochs[r.Epoch]
	if st == nil {
		st = &epochStat{samples: map[string]uint64{}, loss: map[string]float32{}}
		s.epochs[r.Epoch] = st
	}
	if len(st.samples) < maxMiners || st.samples[r.Peer] > 0 {
		st.samples[r.Peer] = max(st.samples[r.Peer], r.Samples)
		if r.HasLoss {
			st.loss[r.Peer] = r.Loss
		}
	}
}

// close returns epoch e's counts and forgets e and the epochs before it.
func (s *sightings) close(e uint64) (samples int64, loss float64) {
	loss = math.NaN()
	if st := s.epochs[e]; st != nil {
		for _, n := range st.samples {
			samples += int64(min(n, 1<<40))
		}
		var sum float64
		for _, l := range st.loss {
			sum += float64(l)
		}
		if len(st.loss) > 0 {
			loss = sum / float64(len(st.loss))
		}
	}
	for k := range s.epochs {
		if k <= e {
			delete(s.epochs, k)
		}
	}
	return samples, loss
}
