package verify

import (
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dtrain-dev/dtrain/node/score"
	"github.com/dtrain-dev/dtrain/torch"
)

// trialsEnv sets how many seeded trials the simulation tests run: the
// figures in the package documentation come from
//
//	DTRAIN_VERIFY_TRIALS=20 go test -count=1 -run Simulated -v ./node/verify/
const trialsEnv = "DTRAIN_VERIFY_TRIALS"

func trials(t *testing.T, quick int) int {
	t.Helper()
	s := os.Getenv(trialsEnv)
	if s == "" {
		return quick
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive count", trialsEnv, s)
	}
	return n
}

var allCheats = []behaviour{cheatRandom, cheatZero, cheatScaled, cheatCopy, cheatReplay, cheatStaleParams, cheatOtherData, cheatEcho, cheatInflated}

// TestSimulatedCheaters runs swarms of six honest miners (three of them
// slower, stopping after 3/4, 1/2 and 1/4 of the inner steps) and one
// cheater of each kind, who cheats from epoch 1 on, audits every miner
// every epoch, and feeds the verdicts to node/score. It reports per cheat
// in how many trials the cheater was caught within 3 epochs of starting,
// the honest miners' verdicts, and the compute the audits took against
// the audited honest miners' training.
func TestSimulatedCheaters(t *testing.T) {
	if err := torch.SetThreads(1); err != nil {
		t.Fatal(err)
	}
	n := trials(t, 2)
	cfg := tinySim()
	caught := map[behaviour]int{}
	firstAt := map[behaviour][]int{}
	reasons := map[behaviour]map[string]int{}
	var honestKinds [4]int // verdict kinds of honest miners, by score.VerdictKind
	var honestZ []float64
	var minerTokens, validatorTokens, minerSec, validatorSec float64
	mg := newMargins()
	for trial := range n {
		tr, err := runTrial(cfg, DefaultConfig(), uint64(1000+trial), allCheats)
		if err != nil {
			t.Fatal(err)
		}
		minerTokens += tr.minerTokens
		validatorTokens += tr.validatorTokens
		minerSec += tr.minerSeconds
		validatorSec += tr.validatorSeconds
		mg.add(tr)
		for i, p := range tr.peers {
			first := -1
			for e, out := range tr.outcomes {
				o := out[i]
				if p.kind == honest {
					honestKinds[o.Verdict.Kind]++
					if !math.IsNaN(o.Evidence.Lane.All) {
						honestZ = append(honestZ, min(o.Evidence.Lane.All, o.Evidence.Lane.Tail))
					}
					if o.Verdict.Kind == score.Cheat {
						t.Errorf("trial %d epoch %d: honest miner %s (%d steps) caught: %q, evidence %+v", trial, e, p.id, p.steps, o.Verdict.Reason, o.Evidence)
					}
					continue
				}
				if e == 0 {
					if o.Verdict.Kind == score.Cheat {
						t.Errorf("trial %d: %s caught in epoch 0, when it still trained honestly: %q", trial, p.kind, o.Verdict.Reason)
					}
					continue
				}
				if o.Verdict.Kind == score.Cheat && first < 0 {
					first = e
					if reasons[p.kind] == nil {
						reasons[p.kind] = map[string]int{}
					}
					reasons[p.kind][o.Verdict.Reason]++
				}
			}
			if p.kind != honest {
				firstAt[p.kind] = append(firstAt[p.kind], first)
				if first >= 1 && first <= 3 {
					caught[p.kind]++
				}
			}
		}
		checkWeights(t, tr, trial)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d trials, cheating from epoch 1; caught within 3 epochs:\n", n)
	for _, k := range allCheats {
		fmt.Fprintf(&b, "  %-34s %2d/%d  first caught in epoch %v by %v\n", k, caught[k], n, firstAt[k], reasons[k])
	}
	slices.Sort(honestZ)
	fmt.Fprintf(&b, "honest verdicts: %d pass, %d inconclusive, %d cheat; lane statistic min %.2f, 1%% %.2f, median %.2f\n",
		honestKinds[score.Pass], honestKinds[score.Inconclusive], honestKinds[score.Cheat],
		honestZ[0], honestZ[len(honestZ)/100], honestZ[len(honestZ)/2])
	b.WriteString(mg.String())
	ratio := validatorTokens / minerTokens
	fmt.Fprintf(&b, "validator compute / audited honest miners' compute: %.3f counted (forward tokens, a backward = 2 forwards), %.3f CPU seconds (%.1f s / %.1f s)",
		ratio, validatorSec/minerSec, validatorSec, minerSec)
	t.Log(b.String())
	for _, k := range allCheats {
		// Every cheat is caught within 3 epochs in at least 9 trials of 10:
		// the checks that decide it are exact but for the lane test, whose
		// mean over 3 epochs of a cheater is near 0 against a threshold of
		// LaneMean (see the package documentation for the rates measured).
		if caught[k]*10 < n*9 {
			t.Errorf("%s: caught within 3 epochs in %d of %d trials", k, caught[k], n)
		}
	}
	if ratio > 0.10 {
		t.Errorf("the audits took %.3f of the audited miners' compute, want at most 0.10", ratio)
	}
}

// checkWeights feeds a trial's verdicts to node/score, with every miner
// equally fast, on time and in sync, and checks what the acceptance of
// the scoring asks of the verdicts: every honest miner keeps at least half
// the honest median weight, and a caught cheater falls below a tenth of it.
func checkWeights(t *testing.T, tr *simTrial, trial int) {
	t.Helper()
	s, err := score.New(score.DefaultConfig(), 0)
	if err != nil {
		t.Fatal(err)
	}
	caughtBy := map[string]bool{}
	for e, out := range tr.outcomes {
		for _, o := range out {
			id := o.Verdict.Miner
			for _, obs := range []score.Observation{
				o.Verdict,
				score.Probe{Epoch: uint64(e), Miner: id, RTT: 50 * time.Millisecond, Up: 100e6 / 8, Down: 100e6 / 8},
				score.Round{Epoch: uint64(e), Miner: id, Delivery: score.OnTime, Rate: 100e6 / 8},
				score.Seen{Epoch: uint64(e), Miner: id},
			} {
				if err := s.Observe(obs); err != nil {
					t.Fatal(err)
				}
			}
			if o.Verdict.Kind == score.Cheat {
				caughtBy[id] = true
			}
		}
		w, err := s.Weights(uint64(e))
		if err != nil {
			t.Fatal(err)
		}
		var honestW []float64
		kind := map[string]behaviour{}
		for _, p := range tr.peers {
			kind[p.id] = p.kind
		}
		for _, m := range w.Miners {
			if kind[m.Miner] == honest {
				honestW = append(honestW, m.Weight)
			}
		}
		med := median(honestW)
		for _, m := range w.Miners {
			switch {
			case kind[m.Miner] == honest && m.Weight < med/2:
				t.Errorf("trial %d epoch %d: honest %s has weight %.4f, under half the honest median %.4f", trial, e, m.Miner, m.Weight, med)
			case kind[m.Miner] != honest && caughtBy[m.Miner] && m.Weight >= med/10:
				t.Errorf("trial %d epoch %d: caught cheater %s has weight %.4f, the honest median %.4f", trial, e, m.Miner, m.Weight, med)
			}
		}
	}
}

// TestSimulatedHonest runs swarms of honest miners only, of the same mixed
// speeds: none may be caught, and none may fall under half the median
// weight.
func TestSimulatedHonest(t *testing.T) {
	if err := torch.SetThreads(1); err != nil {
		t.Fatal(err)
	}
	n := trials(t, 2)
	var kinds [4]int
	mg := newMargins()
	for trial := range n {
		tr, err := runTrial(tinySim(), DefaultConfig(), uint64(2000+trial), nil)
		if err != nil {
			t.Fatal(err)
		}
		mg.add(tr)
		for e, out := range tr.outcomes {
			for i, o := range out {
				kinds[o.Verdict.Kind]++
				if o.Verdict.Kind == score.Cheat {
					t.Errorf("trial %d epoch %d: honest %s (%d steps) caught: %q, evidence %+v", trial, e, tr.peers[i].id, tr.peers[i].steps, o.Verdict.Reason, o.Evidence)
				}
			}
		}
		checkWeights(t, tr, trial)
	}
	t.Logf("%d honest swarms of %d miners, %d epochs: %d pass, %d inconclusive, %d cheat\n%s",
		n, len(honestSpeeds), tinySim().epochs, kinds[score.Pass], kinds[score.Inconclusive], kinds[score.Cheat], mg)
}

// margins gathers, over trials, how close honest miners and cheaters came
// to each threshold: the extremes of the evidence each check decides on.
type margins struct {
	honest, cheat map[string]float64
}

func newMargins() *margins {
	return &margins{honest: map[string]float64{}, cheat: map[string]float64{}}
}

// note keeps the largest (hi) or smallest value of a measure.
func note(m map[string]float64, key string, v float64, hi bool) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	old, ok := m[key]
	if !ok || hi && v > old || !hi && v < old {
		m[key] = v
	}
}

func (mg *margins) add(tr *simTrial) {
	cfg := DefaultConfig()
	for e, out := range tr.outcomes {
		for i, o := range out {
			p, ev := tr.peers[i], o.Evidence
			if p.kind != honest {
				if e == 0 {
					continue
				}
				switch p.kind {
				case cheatScaled:
					note(mg.cheat, "x5 bound (min)", ev.Bound, false)
				case cheatRandom:
					note(mg.cheat, "random peer cosine (max)", ev.PeerCos, true)
				case cheatStaleParams:
					note(mg.cheat, "stale prev-now (min)", ev.Prev-ev.Now, false)
				case cheatReplay:
					note(mg.cheat, "replay past cosine (min)", ev.PastCos, false)
				case cheatEcho:
					note(mg.cheat, "echo prev cosine (min)", ev.PrevCos, false)
				}
				// Lane means over audits that all cheated only.
				if e < cfg.LaneEpochs {
					continue
				}
				switch p.kind {
				case cheatOtherData, cheatCopy:
					note(mg.cheat, "other lane/copy All mean (max)", ev.LaneMean.All, true)
				case cheatInflated:
					note(mg.cheat, "4x samples Tail mean (max)", ev.LaneMean.Tail, true)
				}
				continue
			}
			note(mg.honest, "bound (max)", ev.Bound, true)
			note(mg.honest, "peer cosine (min)", ev.PeerCos, false)
			if p.steps >= cfg.StaleMinSteps {
				note(mg.honest, "prev-now (max)", ev.Prev-ev.Now, true)
			}
			if ev.Copy == "" {
				note(mg.honest, "closest (max)", ev.Closest, true)
			}
			note(mg.honest, "past cosine (max)", ev.PastCos, true)
			note(mg.honest, "All (min)", ev.Lane.All, false)
			note(mg.honest, "Tail (min)", ev.Lane.Tail, false)
			note(mg.honest, "All mean (min)", ev.LaneMean.All, false)
			note(mg.honest, "Head mean (min)", ev.LaneMean.Head, false)
			note(mg.honest, "Tail mean (min)", ev.LaneMean.Tail, false)
			note(mg.honest, "power All (min)", ev.Power.All, false)
			note(mg.honest, "power Head (min)", ev.Power.Head, false)
			note(mg.honest, "power Tail (min)", ev.Power.Tail, false)
		}
	}
}

func (mg *margins) String() string {
	var b strings.Builder
	for _, side := range []struct {
		name string
		m    map[string]float64
	}{{"honest", mg.honest}, {"cheaters", mg.cheat}} {
		keys := slices.Sorted(maps.Keys(side.m))
		fmt.Fprintf(&b, "%s:", side.name)
		for _, k := range keys {
			fmt.Fprintf(&b, " %s %.3f;", k, side.m[k])
		}
		b.WriteString("\n")
	}
	return b.String()
}
