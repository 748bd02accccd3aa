package verify

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/dtrain-dev/dtrain/torch"
)

// behaviour is what a simulated miner does with its epoch.
type behaviour int

const (
	honest behaviour = iota
	cheatRandom
	cheatZero
	cheatScaled
	cheatCopy
	cheatReplay
	cheatStaleParams
	cheatOtherData
	cheatEcho
	cheatInflated
)

var behaviourNames = [...]string{
	honest:           "honest",
	cheatRandom:      "random update, honest norm",
	cheatZero:        "zero update",
	cheatScaled:      "honest update x5",
	cheatCopy:        "copy of another miner",
	cheatReplay:      "replay of its epoch-0 update",
	cheatStaleParams: "trained from last epoch's params",
	cheatOtherData:   "trained on another lane",
	cheatEcho:        "echo of the last average",
	cheatInflated:    "claims 4x its samples",
}

func (b behaviour) String() string { return behaviourNames[b] }

// simPeer is one simulated miner: what it does, how many inner steps it
// trains in an epoch (its speed), and its model.
type simPeer struct {
	id    string
	kind  behaviour
	steps int
	m     *simMiner
	first []float32 // its epoch-0 update, which a replayer sends again
}

// simTrial is the record of one seeded run.
type simTrial struct {
	peers    []*simPeer
	outcomes [][]Outcome // [epoch][peer]
	// Work, in forward-pass token equivalents (a forward+backward counts
	// 3) and in CPU seconds (one libtorch thread), of the honest miners'
	// training and of the validator's audits of them.
	minerTokens, validatorTokens   float64
	minerSeconds, validatorSeconds float64
}

// honestSpeeds are the inner steps per epoch of the honest miners, as a
// fraction of inner_steps: three at full speed and three slower ones that
// stopped early when the others were ready.
var honestSpeeds = []float64{1, 1, 1, 0.75, 0.5, 0.25}

// runTrial simulates cfg.epochs epochs of a swarm of honest miners and the
// given cheaters (who train honestly in epoch 0 and cheat from epoch 1 on),
// all averaged by claimed samples as the all-reduce does, and audits every
// miner every epoch with one Verifier.
func runTrial(cfg simConfig, vcfg Config, seed uint64, cheats []behaviour) (*simTrial, error) {
	c := newCorpus(seed, cfg.model.VocabSize, cfg.model.NPositions, cfg.fanout, cfg.noise)
	init, err := torch.NewModel(cfg.model, torch.CPU, seed)
	if err != nil {
		return nil, err
	}
	theta := make([]float32, init.NumParams())
	err = init.Params(theta)
	init.Close()
	if err != nil {
		return nil, err
	}
	tr := &simTrial{}
	for i, f := range honestSpeeds {
		tr.peers = append(tr.peers, &simPeer{id: fmt.Sprintf("honest-%d", i), kind: honest, steps: max(1, int(f*float64(cfg.innerSteps)))})
	}
	for _, b := range cheats {
		steps := cfg.innerSteps
		if b == cheatInflated {
			steps /= 4
		}
		tr.peers = append(tr.peers, &simPeer{id: fmt.Sprintf("cheat-%d", b), kind: b, steps: steps})
	}
	for _, p := range tr.peers {
		if p.m, err = newSimMiner(cfg, theta); err != nil {
			return nil, err
		}
		defer p.m.close()
	}
	vcfg.Seed = seed ^ 0x5eed
	v, err := New(vcfg, cfg.model, torch.CPU)
	if err != nil {
		return nil, err
	}
	defer v.Close()

	spp := int64(cfg.micro * cfg.accum)
	momentum := make([]float32, len(theta))
	var prevStart, prevMean []float32
	for e := 0; e < cfg.epochs; e++ {
		vecs := make([][]float32, len(tr.peers))
		claims := make([]int64, len(tr.peers))
		// Honest work first: the copier, the random cheater's norm and the
		// cost figures need it.
		var honestNorms []float64
		for i, p := range tr.peers {
			if p.kind != honest && e > 0 {
				continue
			}
			d, took, err := p.m.train(cfg, e, theta, c.lane(uint64(e), p.id, cfg.micro), p.steps)
			if err != nil {
				return nil, err
			}
			vecs[i], claims[i] = d, int64(p.steps)*spp
			if e == 0 {
				p.first = d
			}
			if p.kind == honest {
				honestNorms = append(honestNorms, math.Sqrt(dot(d, d)))
				tr.minerSeconds += took.Seconds()
				tr.minerTokens += 3 * float64(int64(p.steps)*spp*int64(cfg.model.NPositions))
			}
		}
		for i, p := range tr.peers {
			if p.kind == honest || e == 0 {
				continue
			}
			if vecs[i], claims[i], err = p.cheat(cfg, c, e, theta, prevStart, prevMean, tr.peers, vecs, median(honestNorms), seed); err != nil {
				return nil, err
			}
		}

		ep := Epoch{
			Number: uint64(e), Start: theta, PrevMean: prevMean,
			LR: cfg.lrs(e), AdamW: cfg.adam, MicroBatch: cfg.micro, Accum: cfg.accum,
			Reference: c.lane(uint64(e), fmt.Sprintf("reference-%d", seed), cfg.micro).batch,
		}
		ups := make([]Update, len(tr.peers))
		for i, p := range tr.peers {
			ups[i] = Update{Miner: p.id, Vector: vecs[i], Samples: claims[i], Batches: c.lane(uint64(e), p.id, cfg.micro).batch}
		}
		t0 := time.Now()
		out, shared, err := v.Audit(ep, ups)
		if err != nil {
			return nil, err
		}
		took := time.Since(t0).Seconds()
		tr.outcomes = append(tr.outcomes, out)
		var honestN int
		for i, p := range tr.peers {
			if p.kind == honest {
				honestN++
				tr.validatorTokens += float64(out[i].Evidence.Cost.Tokens)
			}
		}
		// The shared evaluations and the wall time split evenly over the
		// audited miners.
		tr.validatorTokens += float64(shared.Tokens) * float64(honestN) / float64(len(tr.peers))
		tr.validatorSeconds += took * float64(honestN) / float64(len(tr.peers))

		mean := make([]float32, len(theta))
		var total float64
		for _, n := range claims {
			total += float64(n)
		}
		for i, d := range vecs {
			w := float32(float64(claims[i]) / total)
			for j, x := range d {
				mean[j] += w * x
			}
		}
		prevStart, prevMean = slices.Clone(theta), mean
		if err := cfg.outer.Step(theta, mean, momentum); err != nil {
			return nil, err
		}
	}
	return tr, nil
}

// cheat returns what cheater p sends in epoch e ≥ 1 and the samples it
// claims.
func (p *simPeer) cheat(cfg simConfig, c *corpus, e int, theta, prevStart, prevMean []float32, peers []*simPeer, vecs [][]float32, honestNorm float64, seed uint64) ([]float32, int64, error) {
	spp := int64(cfg.micro * cfg.accum)
	full := int64(cfg.innerSteps) * spp
	own := c.lane(uint64(e), p.id, cfg.micro)
	switch p.kind {
	case cheatRandom:
		r := srng(seed ^ uint64(e)<<32)
		d := make([]float32, len(theta))
		for j := range d {
			d[j] = float32(r.norm())
		}
		scale := float32(honestNorm / math.Sqrt(dot(d, d)))
		for j := range d {
			d[j] *= scale
		}
		return d, full, nil
	case cheatZero:
		return make([]float32, len(theta)), full, nil
	case cheatScaled:
		d, _, err := p.m.train(cfg, e, theta, own, cfg.innerSteps)
		for j := range d {
			d[j] *= 5
		}
		return d, full, err
	case cheatCopy:
		return slices.Clone(vecs[0]), full, nil // honest-0's update
	case cheatReplay:
		return slices.Clone(p.first), full, nil
	case cheatStaleParams:
		d, _, err := p.m.train(cfg, e, prevStart, own, cfg.innerSteps)
		return d, full, err
	case cheatOtherData:
		d, _, err := p.m.train(cfg, e, theta, c.lane(uint64(e), p.id+"/elsewhere", cfg.micro), cfg.innerSteps)
		return d, full, err
	case cheatEcho:
		return slices.Clone(prevMean), full, nil
	case cheatInflated:
		d, _, err := p.m.train(cfg, e, theta, own, p.steps)
		return d, 4 * int64(p.steps) * spp, err
	}
	return nil, 0, fmt.Errorf("no cheat %d", p.kind)
}
