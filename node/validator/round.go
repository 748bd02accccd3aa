package validator

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/allreduce"
	"github.com/dtrain-dev/dtrain/node/allreduce/p2p"
	"github.com/dtrain-dev/dtrain/node/epoch"
	"github.com/dtrain-dev/dtrain/node/matchmaking"
	"github.com/dtrain-dev/dtrain/node/miner"
	"github.com/dtrain-dev/dtrain/node/score"
)

// maxAudits bounds the contributions fetched after one round: each is the
// whole encoded update of a miner, so the validator's download per epoch
// is at most this many updates.
const maxAudits = 4

// roundOutcome is what the validator saw of one round it joined.
type roundOutcome struct {
	contributors []string
	weight       float64
	faults       map[string]error // members whose parts failed their commitment
	err          error
	obs          []score.Observation
	took         time.Duration
	sent         int64 // frame bytes written on the round's streams
	received     int64 // and read
}

// average runs the round of an Average action as its aux member, then
// audits the contributors' committed updates; the observations go to the
// scorer for the action's epoch.
func (d *driver) average(a epoch.Action) {
	v := d.v
	g, e := a.Group, a.Epoch
	d.begin(e)
	d.goWork(func(ctx context.Context) func() []epoch.Action {
		out := v.runRound(ctx, g)
		return func() []epoch.Action {
			for _, o := range out.obs {
				d.observe(o)
			}
			if out.err != nil && ctx.Err() == nil {
				v.log.Warn().Err(out.err).Uint64("epoch", e).Msg("all-reduce as aux")
			}
			v.log.Info().Uint64("epoch", e).Int("group", len(g.Members)).Int("contributors", len(out.contributors)).
				Int("faults", len(out.faults)).Msg("round observed")
			ev := RoundEvent{Epoch: e, Group: len(g.Members), Contributors: len(out.contributors), Faults: len(out.faults), Took: out.took,
				BytesSent: out.sent, BytesReceived: out.received,
				Delivered: slices.DeleteFunc(slices.Clone(out.contributors), v.trusted)}
			for _, mb := range g.Members {
				if !v.trusted(mb.ID) {
					ev.Expected = append(ev.Expected, mb.ID)
				}
			}
			if out.err != nil {
				ev.Err = out.err.Error()
			}
			v.event(ev)
			if out.err == nil {
				d.auditLater(g, out.contributors)
			}
			d.end(e)
			return d.mach.Averaged(clock(), a.Stage, out.contributors, out.weight, out.err)
		}
	})
}

// auditLater audits g's contributors in the background: the validator
// follows the swarm into the next epoch meanwhile, and the epoch's weights
// wait for the verdicts (begin, end). One audit by the configured verifier
// runs at a time, and one by NormCheck beside it: a round that ends while
// the verifier is still busy with an earlier epoch gets the norm checks
// only (they need no model and take milliseconds), and one that ends while
// both are busy is not audited. A validator slower than the epochs so
// checks work every other epoch (or fewer) instead of queueing audits, and
// the fetched vectors they hold, without bound.
func (d *driver) auditLater(g matchmaking.Group, contributors []string) {
	v := d.v
	var vf Verifier
	var busy *bool
	switch {
	case !d.auditing:
		vf, busy = v.verifier, &d.auditing
	case !d.normAudit:
		vf, busy = NormCheck{}, &d.normAudit
		v.log.Debug().Uint64("epoch", g.Epoch).Msg("norm checks only: the last work check is still running")
	default:
		v.log.Info().Uint64("epoch", g.Epoch).Msg("audit skipped: the last ones are still running")
		return
	}
	*busy = true
	d.begin(g.Epoch)
	d.goWork(func(ctx context.Context) func() []epoch.Action {
		obs := v.audit(ctx, g, contributors, vf)
		return func() []epoch.Action {
			for _, o := range obs {
				d.observe(o)
			}
			if w, ok := vf.(heldOutTaker); ok {
				for _, h := range w.TakeHeldOut() {
					v.event(EvalEvent{Epoch: h.Epoch, ValLoss: h.Loss, Tokens: h.Tokens})
				}
			}
			*busy = false
			d.end(g.Epoch)
			return nil
		}
	})
}

// heldOutTaker is a verifier that evaluates held-out losses (WorkCheck).
type heldOutTaker interface{ TakeHeldOut() []HeldOut }

// runRound joins g's committed round with no vector and reports who
// delivered: a contributor in the result on time, any other member that
// should have contributed missed, a member whose part failed its
// commitment caught.
func (v *Validator) runRound(ctx context.Context, g matchmaking.Group) roundOutcome {
	var out roundOutcome
	timeout := time.Duration(v.cfg.Swarm.RoundSeconds * float64(time.Second))
	cfg, err := g.RoundConfig(v.self, nil, matchmaking.RoundOptions{Len: v.length, Codec: v.codec, Aggregation: v.agg, Timeout: timeout,
		CommitChunk: allreduce.DefaultCommitChunk})
	if err == nil {
		var peers []peer.ID
		var r *allreduce.Round
		if peers, err = p2p.Peers(cfg.Group); err == nil {
			r, err = allreduce.NewRound(cfg)
		}
		if err == nil {
			rctx, cancel := context.WithTimeout(ctx, 2*timeout)
			var res allreduce.Result
			start := time.Now()
			var traffic p2p.Traffic
			res, traffic, err = p2p.RunRoundTraffic(v.log.WithContext(rctx), v.node, netx.Protocol(v.cfg.RunID, g.RoundName()), peers, r, 10*time.Millisecond, p2p.WithUplinkLimit(v.uplink))
			out.took, out.sent, out.received = time.Since(start), traffic.Sent, traffic.Received
			cancel()
			for _, i := range res.Contributors {
				out.contributors = append(out.contributors, g.Members[i].ID)
				out.weight += g.Members[i].Weight
			}
			for _, f := range r.Faults() {
				if out.faults == nil {
					out.faults = map[string]error{}
				}
				out.faults[g.Members[f.Member].ID] = f.Err
			}
		}
	}
	out.err = err
	in := map[string]bool{}
	for _, id := range out.contributors {
		in[id] = true
	}
	for _, mb := range g.Members {
		if mb.Role == matchmaking.Aux || v.trusted(mb.ID) {
			continue
		}
		d := score.Missed
		if in[mb.ID] {
			d = score.OnTime
		}
		out.obs = append(out.obs, score.Round{Epoch: g.Epoch, Miner: mb.ID, Delivery: d})
		if ferr, ok := out.faults[mb.ID]; ok {
			out.obs = append(out.obs, score.Verdict{Epoch: g.Epoch, Miner: mb.ID, Kind: score.Cheat, Reason: reason("commitment", ferr)})
		}
	}
	return out
}

// audit fetches up to maxAudits contributors' committed updates, each
// checked against the root the group agreed on, and hands them to vf. A contributor that does not serve its committed update (or
// serves other bytes) gets an Inconclusive verdict: it may have restarted,
// and its round's parts were checked by their owners anyway.
func (v *Validator) audit(ctx context.Context, g matchmaking.Group, contributors []string, vf Verifier) []score.Observation {
	byID := map[string]matchmaking.Member{}
	for _, mb := range g.Members {
		byID[mb.ID] = mb
	}
	// Rotate which contributors are audited with the epoch.
	n := len(contributors)
	var audits []Audit
	var obs []score.Observation
	for k := 0; k < n && len(audits)+len(obs) < maxAudits; k++ {
		id := contributors[(k+int(g.Epoch%uint64(max(n, 1))))%n]
		mb := byID[id]
		if mb.Commit.IsZero() || v.trusted(id) {
			continue
		}
		p, err := peer.Decode(id)
		if err != nil {
			continue
		}
		sc := allreduce.CommitScope{Run: g.Run, Epoch: g.Epoch, Member: id}
		l := allreduce.CommitLayout{Codec: v.codec.ID(), Len: v.length, Chunk: allreduce.DefaultCommitChunk}
		fctx, cancel := context.WithTimeout(ctx, time.Duration(v.cfg.Swarm.RoundSeconds*float64(time.Second)))
		enc, err := p2p.FetchContribution(fctx, v.node, p, miner.AuditProtocol(v.cfg.RunID), mb.Commit, sc, l)
		cancel()
		var vals []float32
		if err == nil {
			vals, err = l.Decode(enc)
		}
		if err != nil {
			v.log.Debug().Err(err).Str("miner", id).Msg("audit fetch")
			obs = append(obs, score.Verdict{Epoch: g.Epoch, Miner: id, Kind: score.Inconclusive})
			continue
		}
		audits = append(audits, Audit{Epoch: g.Epoch, Miner: id, Weight: mb.Weight, Update: vals})
	}
	for _, vd := range vf.Verify(ctx, audits) {
		if vd.Kind == score.Cheat {
			v.log.Info().Uint64("epoch", vd.Epoch).Str("miner", vd.Miner).Str("reason", vd.Reason).Msg("cheat caught")
		}
		obs = append(obs, vd)
	}
	return obs
}

// reason is a verdict's reason: what failed and why, cut to
// score.MaxReason bytes.
func reason(what string, err error) string {
	s := fmt.Sprintf("%s: %v", what, err)
	if len(s) > score.MaxReason {
		s = strings.ToValidUTF8(s[:score.MaxReason], "")
	}
	return s
}

func hex8(h [32]byte) string { return hex.EncodeToString(h[:8]) }
