package verify

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/dtrain-dev/dtrain/node/score"
	"github.com/dtrain-dev/dtrain/torch"
)

// auditFixture is a Verifier on a tiny untrained model and an epoch of it
// whose updates tests fill in.
type auditFixture struct {
	v     *Verifier
	ep    Epoch
	c     *corpus
	n     int
	micro int
}

func newAuditFixture(t *testing.T) *auditFixture {
	t.Helper()
	if err := torch.SetThreads(1); err != nil {
		t.Fatal(err)
	}
	mc := torch.NewConfig(1, 2, 16, 16, 64)
	v, err := New(DefaultConfig(), mc, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	m, err := torch.NewModel(mc, torch.CPU, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	start := make([]float32, m.NumParams())
	if err := m.Params(start); err != nil {
		t.Fatal(err)
	}
	f := &auditFixture{v: v, c: newCorpus(3, 64, 16, 4, 0.3), n: len(start), micro: 4}
	f.ep = Epoch{
		Number: 2, Start: start, LR: slices.Repeat([]float64{1e-3}, 10), AdamW: torch.DefaultAdamW,
		MicroBatch: f.micro, Accum: 1, Reference: f.c.lane(2, "ref", f.micro).batch,
	}
	return f
}

func (f *auditFixture) update(id string, vec []float32, samples int64) Update {
	return Update{Miner: id, Vector: vec, Samples: samples, Batches: f.c.lane(2, id, f.micro).batch}
}

// small returns a plausible update: every coordinate well inside AdamW's
// bound for a few steps.
func (f *auditFixture) small(seed uint64) []float32 {
	r := srng(seed)
	v := make([]float32, f.n)
	for j := range v {
		v[j] = float32(1e-3 * r.norm())
	}
	return v
}

func TestAuditRefusesABadEpoch(t *testing.T) {
	f := newAuditFixture(t)
	ok := []Update{f.update("a", f.small(1), 40)}
	for name, change := range map[string]func(ep *Epoch, ups *[]Update){
		"short start":     func(ep *Epoch, _ *[]Update) { ep.Start = ep.Start[1:] },
		"NaN start":       func(ep *Epoch, _ *[]Update) { ep.Start = slices.Clone(ep.Start); ep.Start[3] = float32(math.NaN()) },
		"short prev mean": func(ep *Epoch, _ *[]Update) { ep.PrevMean = make([]float32, 3) },
		"no rates":        func(ep *Epoch, _ *[]Update) { ep.LR = nil },
		"negative rate":   func(ep *Epoch, _ *[]Update) { ep.LR = []float64{-1} },
		"NaN rate":        func(ep *Epoch, _ *[]Update) { ep.LR = []float64{math.NaN()} },
		"no micro-batch":  func(ep *Epoch, _ *[]Update) { ep.MicroBatch = 0 },
		"no reference":    func(ep *Epoch, _ *[]Update) { ep.Reference = nil },
		"miner twice":     func(_ *Epoch, ups *[]Update) { *ups = append(*ups, (*ups)[0]) },
		"no batches":      func(_ *Epoch, ups *[]Update) { (*ups)[0].Batches = nil },
	} {
		ep, ups := f.ep, slices.Clone(ok)
		change(&ep, &ups)
		if _, _, err := f.v.Audit(ep, ups); !errors.Is(err, ErrBadEpoch) {
			t.Errorf("%s: %v, want ErrBadEpoch", name, err)
		}
	}
}

// TestAuditHostileUpdates: whatever a miner sends is a verdict, never a
// panic or an error of the audit.
func TestAuditHostileUpdates(t *testing.T) {
	f := newAuditFixture(t)
	nan := f.small(2)
	nan[7] = float32(math.NaN())
	inf := f.small(3)
	inf[0] = float32(math.Inf(-1))
	huge := f.small(4)
	huge[9] = 1e30
	broken := f.update("broken", f.small(6), 40)
	broken.Batches = func(k int) (torch.Batch, error) { return torch.Batch{}, errors.New("no such shard") }
	ragged := f.update("ragged", f.small(7), 40)
	ragged.Batches = func(k int) (torch.Batch, error) {
		return torch.Batch{B: 2, T: 16, X: make([]int32, 32), Y: make([]int32, 32)}, nil
	}
	cases := []struct {
		u    Update
		kind score.VerdictKind
		why  string
	}{
		{f.update("nil", nil, 40), score.Cheat, ReasonInvalid},
		{f.update("short", f.small(1)[1:], 40), score.Cheat, ReasonInvalid},
		{f.update("nan", nan, 40), score.Cheat, ReasonInvalid},
		{f.update("inf", inf, 40), score.Cheat, ReasonInvalid},
		{f.update("no samples", f.small(5), 0), score.Cheat, ReasonSamples},
		{f.update("negative samples", f.small(5), -4), score.Cheat, ReasonSamples},
		{f.update("more samples than steps", f.small(5), 41), score.Cheat, ReasonSamples},
		{f.update("zero", make([]float32, f.n), 40), score.Cheat, ReasonZero},
		{f.update("huge", huge, 40), score.Cheat, ReasonBound},
		{broken, score.Inconclusive, ""},
		{ragged, score.Inconclusive, ""},
	}
	ups := make([]Update, len(cases))
	for i, c := range cases {
		ups[i] = c.u
	}
	out, _, err := f.v.Audit(f.ep, ups)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		o := out[i]
		if o.Verdict.Kind != c.kind || o.Verdict.Reason != c.why || o.Verdict.Miner != c.u.Miner || o.Verdict.Epoch != f.ep.Number {
			t.Errorf("%s: verdict %+v, want kind %v reason %q", c.u.Miner, o.Verdict, c.kind, c.why)
		}
		if c.kind == score.Inconclusive && o.Err == nil {
			t.Errorf("%s: inconclusive without an error saying why", c.u.Miner)
		}
	}
}

// TestVerdictsAreScorable: every verdict the package can give is one
// node/score accepts.
func TestVerdictsAreScorable(t *testing.T) {
	s, err := score.New(score.DefaultConfig(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{ReasonInvalid, ReasonSamples, ReasonZero, ReasonBound, ReasonEcho, ReasonReplay,
		ReasonUncorrelated, ReasonStale, ReasonCopy, ReasonLane, ReasonHead, ReasonTail} {
		if err := s.Observe(score.Verdict{Miner: "m", Kind: score.Cheat, Reason: r}); err != nil {
			t.Errorf("reason %q: %v", r, err)
		}
	}
	for _, q := range []float64{-2, 0, 0.3, score.MaxQuality} {
		if err := s.Observe(score.Verdict{Miner: "m", Kind: score.Pass, Quality: q}); err != nil {
			t.Errorf("quality %v: %v", q, err)
		}
	}
}

// TestAuditEchoAndCopy: an update equal to the previous average, and two
// equal updates, are found without training anything.
func TestAuditEchoAndCopy(t *testing.T) {
	f := newAuditFixture(t)
	f.ep.PrevMean = f.small(10)
	same := f.small(11)
	ups := []Update{
		f.update("echo", slices.Clone(f.ep.PrevMean), 40),
		f.update("x", same, 40),
		f.update("y", slices.Clone(same), 40),
		f.update("z", f.small(12), 40),
	}
	out, _, err := f.v.Audit(f.ep, ups)
	if err != nil {
		t.Fatal(err)
	}
	if v := out[0].Verdict; v.Kind != score.Cheat || v.Reason != ReasonEcho {
		t.Errorf("echo: %+v", v)
	}
	if out[1].Evidence.Copy != "y" || out[2].Evidence.Copy != "x" || out[3].Evidence.Copy != "" {
		t.Errorf("copies: %q %q %q", out[1].Evidence.Copy, out[2].Evidence.Copy, out[3].Evidence.Copy)
	}
	// The next epoch, the same vectors are replays.
	f.ep.Number++
	out, _, err = f.v.Audit(f.ep, ups[1:3])
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out {
		if o.Verdict.Kind != score.Cheat || o.Verdict.Reason != ReasonReplay || o.Evidence.Replay != 2 {
			t.Errorf("%s: %+v, replay %d", o.Verdict.Miner, o.Verdict, o.Evidence.Replay)
		}
	}
}

// TestLanePower: each threshold of the lane test catches only where the
// median of its statistic over the last LaneEpochs audited epochs clears
// it by PowerZ noise widths (DefaultConfig: 2 for one audit's floor, 2/√3
// for the 3-audit means: a median All of 1 for the floor, means of All
// 2.65, Tail 3.15, Head 1.15), whatever the other statistics do.
func TestLanePower(t *testing.T) {
	cfg := DefaultConfig()
	for _, c := range []struct {
		name        string
		epochs      int
		honest, low LaneStats // every epoch, four honest miners and one low
		want        string    // the low miner's reason in the last epoch
	}{
		{"weak run: a low mean is not caught", 3, LaneStats{1.8, 1.8, 1.8}, LaneStats{1, 1, 1}, ""},
		{"weak run: not even an untrained update", 3, LaneStats{2.5, 1, 3}, LaneStats{0, 0, 0}, ""},
		{"powered run: an untrained update", 3, LaneStats{5, 4, 5}, LaneStats{0, 0, 0}, ReasonLane},
		{"All powered, Tail not: a low Tail", 3, LaneStats{4, 3, 3}, LaneStats{4, 4, 0.5}, ""},
		{"Tail powered: a low Tail", 3, LaneStats{4, 3, 4.5}, LaneStats{4, 4, 0.5}, ReasonTail},
		{"Head powered: a low Head", 3, LaneStats{4, 2.5, 4.5}, LaneStats{4, -0.5, 4}, ReasonHead},
		{"Head not powered", 3, LaneStats{4, 1, 4.5}, LaneStats{4, -0.5, 4}, ""},
		{"one audit under LaneFloor, powered", 1, LaneStats{3, 3, 3}, LaneStats{-1.5, 3, 3}, ReasonLane},
		{"one audit under LaneFloor, weak", 1, LaneStats{0.5, 3, 3}, LaneStats{-1.5, 3, 3}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := &Verifier{cfg: cfg, history: newHistory(cfg)}
			ids := []string{"h0", "h1", "h2", "h3", "low"}
			for e := range c.epochs {
				a := &audit{v: v, ep: Epoch{Number: uint64(e)}, out: make([]Outcome, len(ids)),
					reason: make([]string, len(ids)), tested: make([]bool, len(ids)), copyOf: make([]int, len(ids))}
				for i, id := range ids {
					a.ups = append(a.ups, Update{Miner: id})
					a.out[i].Evidence = blankEvidence()
					a.out[i].Evidence.Lane = c.honest
					a.tested[i], a.copyOf[i] = true, -1
				}
				a.out[len(ids)-1].Evidence.Lane = c.low
				a.decide()
				for i, o := range a.out {
					if i < len(ids)-1 && o.Verdict.Kind == score.Cheat {
						t.Errorf("epoch %d: honest %s caught: %q", e, ids[i], o.Verdict.Reason)
					}
				}
				low := a.out[len(ids)-1].Verdict
				if e < c.epochs-1 {
					continue
				}
				if got := map[bool]string{true: low.Reason}[low.Kind == score.Cheat]; got != c.want {
					t.Errorf("epoch %d: the low miner's verdict %v %q, want %q (power %+v)", e, low.Kind, low.Reason, c.want, a.out[0].Evidence.Power)
				}
			}
		})
	}
}

// TestUncorrelatedFewPeers: against the mean of fewer than
// UncorrelatedMinPeers others, only an update whose cosine is what a
// random direction's would be is unrelated; against more, one far under
// the epoch's median cosine is, as in a swarm an update pointing away from
// the others' training is.
func TestUncorrelatedFewPeers(t *testing.T) {
	mix := func(f *auditFixture, g float32, seed uint64) []float32 {
		v, d := f.small(seed), f.small(100)
		for j := range v {
			v[j] = 0.5*v[j] + g*d[j]
		}
		return v
	}
	for _, c := range []struct {
		aligned int
		away    bool // the update pointing away from the others is caught
	}{{2, false}, {5, true}} {
		f := newAuditFixture(t)
		var ups []Update
		for k := range c.aligned {
			ups = append(ups, f.update(fmt.Sprint("aligned", k), mix(f, 1, uint64(20+k)), 40))
		}
		ups = append(ups, f.update("away", mix(f, -0.3, 30), 40), f.update("random", f.small(31), 40))
		out, _, err := f.v.Audit(f.ep, ups)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range out {
			want := o.Verdict.Miner == "random" || c.away && o.Verdict.Miner == "away"
			if got := o.Verdict.Kind == score.Cheat && o.Verdict.Reason == ReasonUncorrelated; got != want {
				t.Errorf("%d others: %s (peer cosine %.3f, √n·cos %.1f): uncorrelated %v, want %v",
					len(ups)-1, ups[i].Miner, o.Evidence.PeerCos, o.Evidence.PeerCos*math.Sqrt(float64(f.n)), got, want)
			}
		}
	}
}
