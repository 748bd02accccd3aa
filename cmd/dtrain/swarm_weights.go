package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/dtrain-dev/dtrain/node/score"
)

// weightsEvent is one line of a validator's weights.jsonl (node/score
// JSONLSink): an epoch's weights and what they are made of.
type weightsEvent struct {
	Event  string              `json:"event"`
	Epoch  uint64              `json:"epoch"`
	Miners []score.MinerWeight `json:"miners"`
}

// minerWeight is a miner's weight in an epoch, as --json prints it: the
// scorer's MinerWeight with the swarm's miner number and its cheat.
type minerWeight struct {
	Miner int    `json:"miner"` // 0: a peer the swarm does not know as one of its miners
	Peer  string `json:"peer"`
	Cheat string `json:"cheat"` // "" for an honest miner
	score.MinerWeight
}

// weightsLine is one validator's weights of one epoch, as --json prints it.
type weightsLine struct {
	Event     string        `json:"event"`
	T         float64       `json:"t"`
	Validator int           `json:"validator"`
	Epoch     uint64        `json:"epoch"`
	Miners    []minerWeight `json:"miners"`
}

// byPeer is the swarm's miner with peer id p, nil if none reported it.
func (r *swarmReport) byPeer(p string) *minerStat {
	for _, m := range r.miners {
		if m.peer == p {
			return m
		}
	}
	return nil
}

// weights handles one line of validator v's weights.jsonl: it prints the
// epoch's weights, and the first validator's are each miner's final ones.
func (r *swarmReport) weights(now time.Time, v int, text string) {
	var ev weightsEvent
	if !strings.HasPrefix(text, "{") || json.Unmarshal([]byte(text), &ev) != nil || ev.Event != "weights" {
		return
	}
	l := weightsLine{Event: "weights", T: r.since(now).Seconds(), Validator: v, Epoch: ev.Epoch}
	for _, mw := range ev.Miners {
		w := minerWeight{Peer: mw.Miner, MinerWeight: mw}
		if m := r.byPeer(mw.Miner); m != nil {
			w.Miner, w.Cheat = m.idx, m.cheat
			if v == 1 {
				m.weight, m.weightEpoch = &w.MinerWeight, ev.Epoch
			}
		}
		l.Miners = append(l.Miners, w)
	}
	if r.json {
		r.emit(l)
		return
	}
	fmt.Fprintf(r.w, "%6s  * validator %d, weights after epoch %d:\n", fmtClock(r.since(now)), v, ev.Epoch)
	fmt.Fprintf(r.w, "%8s %-22s %7s %6s %5s %5s %8s %7s %5s\n", "", "miner", "weight", "score", "gate", "work", "delivery", "network", "sync")
	for _, w := range l.Miners {
		name := fmt.Sprintf("miner %d", w.Miner)
		if w.Miner == 0 {
			name = shortPeer(w.Peer)
		}
		if w.Cheat != "" {
			name += " (" + w.Cheat + ")"
		}
		fmt.Fprintf(r.w, "%8s %-22s %7.3f %6.3f %5.2f %5.2f %8s %7.2f %5s\n", "", name, w.Weight, w.Score, w.Gate, w.Work,
			optFloat(w.Delivery), w.Network, optFloat(w.Sync))
	}
}

// optFloat is a component the scorer may not have: "-" when absent.
func optFloat(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", *p)
}
