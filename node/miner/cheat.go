package miner

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/dtrain-dev/dtrain/node/allreduce"
	"github.com/dtrain-dev/dtrain/node/matchmaking"
)

// Cheat makes a miner misbehave in one of the ways a validator must catch
// (issue 16, "Cheats to catch"): a test and demo facility (`dtrain swarm
// --cheat`), not a miner setting. The zero Cheat is an honest miner. The
// miner trains honestly in every epoch and, from epoch From on, replaces
// what it contributes (its update, its claimed samples) or what it trains
// on, as Kind says.
type Cheat struct {
	Kind string // one of CheatKinds, or CheatCopySource; "" is honest
	From uint64 // the first epoch it cheats in
	// Dir is where a copier and its source share updates (copy,
	// copysource): a sybil pair on one machine.
	Dir  string
	Seed uint64 // seeds the random values (random, splitview)
}

// CheatKinds are the cheats a miner can play, by their short names:
//
//   - random: a random update of the honest update's norm;
//   - zero: an all-zero update;
//   - scale5: the honest update ×5;
//   - copy: the update its sybil partner (a miner with CheatCopySource and
//     the same Dir) computed for the epoch, bit for bit;
//   - stale: its own honest update of the epoch before, sent again;
//   - otherdata: an honest update, trained on a lane assigned to no one;
//   - echo: the average the swarm applied in the epoch before;
//   - inflate: its honest update, claiming 4× the samples it trained;
//   - splitview: its honest values on the range the run's validator owned
//     in its last round with it, random values of the same norm elsewhere;
//   - signflip: the honest update ×−10, to push the model uphill.
var CheatKinds = []string{"random", "zero", "scale5", "copy", "stale", "otherdata", "echo", "inflate", "splitview", "signflip"}

// CheatCopySource is the copier's partner: it trains and contributes
// honestly, and writes each epoch's update to Cheat.Dir for the copier.
const CheatCopySource = "copysource"

// CheatLyingOwner is a miner that trains and contributes honestly but,
// as the owner of a span, sends the others a mean it shifted (every value
// of its all-gather parts moved by 1e-3): what the members' owner checks
// catch (checkOwners), not a validator.
const CheatLyingOwner = "lieowner"

// inflation is how many times its trained samples an inflate cheater
// claims.
const inflation = 4

// copyWait bounds how long a copier waits for its source's update.
const copyWait = time.Minute

// Check reports an unknown kind.
func (c Cheat) Check() error {
	if c.Kind == "" || c.Kind == CheatCopySource || c.Kind == CheatLyingOwner || slices.Contains(CheatKinds, c.Kind) {
		if (c.Kind == "copy" || c.Kind == CheatCopySource) && c.Dir == "" {
			return fmt.Errorf("cheat %s needs a directory to share updates through", c.Kind)
		}
		return nil
	}
	return fmt.Errorf("unknown cheat %q (want one of %s)", c.Kind, strings.Join(CheatKinds, ", "))
}

// cheater plays a Cheat. A nil *cheater is an honest miner: its methods
// then change nothing.
type cheater struct {
	Cheat
	rng  *rand.Rand
	log  zerolog.Logger
	prev []float32 // stale: the honest update of the epoch before
	mean []float32 // echo: the average applied in the epoch before
	// span is the range the run's validator owned in this miner's last
	// round with it (splitview); empty before one.
	span [2]int
}

func newCheater(c Cheat, log zerolog.Logger) (*cheater, error) {
	if c.Kind == "" {
		return nil, nil
	}
	if err := c.Check(); err != nil {
		return nil, err
	}
	if c.Dir != "" {
		if err := os.MkdirAll(c.Dir, 0o755); err != nil {
			return nil, err
		}
	}
	log.Warn().Str("cheat", c.Kind).Uint64("from_epoch", c.From).Msg("this miner cheats (a test and demo facility)")
	return &cheater{Cheat: c, rng: rand.New(rand.NewPCG(c.Seed, 0x636865617473)), log: log}, nil
}

func (c *cheater) active(epoch uint64) bool { return c != nil && epoch >= c.From }

// lanePeer is the peer id whose lane the miner trains on in epoch: its
// own, or (otherdata) one no miner has.
func (c *cheater) lanePeer(epoch uint64, self string) string {
	if c.active(epoch) && c.Kind == "otherdata" {
		return self + "/otherdata"
	}
	return self
}

// contribution is what the miner contributes in epoch for its honest
// update vec of samples: the update and the samples it claims.
func (c *cheater) contribution(ctx context.Context, epoch uint64, vec []float32, samples int64) ([]float32, float64) {
	claimed := float64(samples)
	if c == nil {
		return vec, claimed
	}
	if c.Kind == "stale" {
		defer func(honest []float32) { c.prev = honest }(slices.Clone(vec))
	}
	if c.Kind == CheatCopySource && c.active(epoch) {
		if err := writeUpdate(c.updatePath(epoch), vec); err != nil {
			c.log.Warn().Err(err).Uint64("epoch", epoch).Msg("cheat: share the update")
		}
	}
	if !c.active(epoch) {
		return vec, claimed
	}
	out := vec
	switch c.Kind {
	case "random":
		out = c.randomLike(vec, 0, len(vec))
	case "zero":
		out = make([]float32, len(vec))
	case "scale5", "signflip":
		k := float32(5)
		if c.Kind == "signflip" {
			k = -10
		}
		out = make([]float32, len(vec))
		for i, v := range vec {
			out[i] = k * v
		}
	case "copy":
		got, err := readUpdate(ctx, c.updatePath(epoch), len(vec))
		if err != nil {
			c.log.Warn().Err(err).Uint64("epoch", epoch).Msg("cheat: no update to copy; sending its own")
		} else {
			out = got
		}
	case "stale":
		if len(c.prev) == len(vec) {
			out = c.prev
		}
	case "echo":
		if len(c.mean) == len(vec) {
			out = c.mean
		}
	case "inflate":
		claimed *= inflation
	case "splitview":
		out = slices.Clone(vec)
		lo, hi := min(c.span[0], len(vec)), min(c.span[1], len(vec))
		copy(out[:lo], c.randomLike(vec, 0, lo))
		copy(out[hi:], c.randomLike(vec, hi, len(vec)))
	}
	c.log.Warn().Str("cheat", c.Kind).Uint64("epoch", epoch).Float64("claimed_samples", claimed).Msg("cheating")
	return out, claimed
}

// randomLike is normal random values with the norm of vec[lo:hi].
func (c *cheater) randomLike(vec []float32, lo, hi int) []float32 {
	out := make([]float32, hi-lo)
	var want, got float64
	for i := range out {
		x := c.rng.NormFloat64()
		out[i] = float32(x)
		got += x * x
		want += float64(vec[lo+i]) * float64(vec[lo+i])
	}
	if got > 0 {
		s := float32(math.Sqrt(want / got))
		for i := range out {
			out[i] *= s
		}
	}
	return out
}

// applied notes the average the miner applied (echo sends it next epoch).
func (c *cheater) applied(mean []float32) {
	if c != nil && c.Kind == "echo" {
		c.mean = slices.Clone(mean)
	}
}

// sawRound notes the range the first of the run's validators owned in
// group g's round (splitview keeps honest values there next epoch). The
// spans are the ones every member derives from the group (matchmaking
// RoundConfig), computed here once more.
func (c *cheater) sawRound(g matchmaking.Group, self string, n int, validators []string) {
	if c == nil || c.Kind != "splitview" {
		return
	}
	cfg, err := g.RoundConfig(self, nil, matchmaking.RoundOptions{Len: n, CommitChunk: allreduce.DefaultCommitChunk})
	if err != nil {
		return
	}
	for _, s := range cfg.Spans {
		if slices.Contains(validators, cfg.Group.Members[s.Peer].ID) {
			c.span = [2]int{s.Begin, s.End}
			return
		}
	}
}

func (c *cheater) updatePath(epoch uint64) string {
	return filepath.Join(c.Dir, fmt.Sprintf("update-%d.f32", epoch))
}

// writeUpdate writes vec as little-endian float32s, atomically.
func writeUpdate(path string, vec []float32) error {
	b := make([]byte, 0, 4*len(vec))
	for _, v := range vec {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// readUpdate waits up to copyWait for the update at path, of n values.
func readUpdate(ctx context.Context, path string, n int) ([]float32, error) {
	deadline := time.Now().Add(copyWait)
	for {
		b, err := os.ReadFile(path)
		switch {
		case err == nil && len(b) == 4*n:
			out := make([]float32, n)
			for i := range out {
				out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			}
			return out, nil
		case err == nil:
			return nil, fmt.Errorf("%s holds %d bytes, want %d", path, len(b), 4*n)
		case !errors.Is(err, os.ErrNotExist):
			return nil, err
		case time.Now().After(deadline):
			return nil, fmt.Errorf("%s: none after %s", path, copyWait)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// rewrite is what a lying owner does to the messages of its round of
// epoch with config cfg (p2p.RunRoundRewriting): nil for every other
// miner and epoch.
func (c *cheater) rewrite(epoch uint64, cfg allreduce.RoundConfig) func(allreduce.Outgoing) allreduce.Outgoing {
	if !c.active(epoch) || c.Kind != CheatLyingOwner {
		return nil
	}
	return func(o allreduce.Outgoing) allreduce.Outgoing {
		m, ok := o.Msg.(allreduce.PartMsg)
		if !ok || m.Phase != allreduce.AllGather || m.Span < 0 || m.Span >= len(cfg.Spans) {
			return o
		}
		s := cfg.Spans[m.Span]
		lo := s.Begin + m.Part*cfg.PartSize
		vals := make([]float32, max(0, min(lo+cfg.PartSize, s.End)-lo))
		if cfg.Codec.Decode(vals, m.Payload) != nil {
			return o
		}
		for i := range vals {
			vals[i] += 1e-3
		}
		m.Payload = cfg.Codec.Encode(nil, vals)
		o.Msg = m
		return o
	}
}
