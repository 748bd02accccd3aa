package miner

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/config"
	"github.com/dtrain-dev/dtrain/node/data"
	"github.com/dtrain-dev/dtrain/node/matchmaking"
	"github.com/dtrain-dev/dtrain/node/progress"
)

// laneKey names one peer's epoch.
type laneKey struct {
	peer  string
	epoch uint64
}

// gossipObserver is a peer that only listens to a run's gossip, as a
// validator would, and keeps the most samples each peer reported for each
// epoch (a peer's reports of an epoch count up while it trains; the last
// ones carry the epoch's total).
type gossipObserver struct {
	mu      sync.Mutex
	samples map[laneKey]uint64
	reports int
	stop    context.CancelFunc
	done    chan struct{}
}

func startObserver(t *testing.T, ctx context.Context, boot []string, run string) *gossipObserver {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	nd, err := netx.New(ctx, netx.Config{ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, DHTMode: netx.DHTServer, Bootstrap: boot})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { nd.Close() })
	topic, err := nd.JoinGossip(ctx, run)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	// The miners' validators: an observer forwards what they would.
	topic.Handle(progress.GossipType, func(from peer.ID, body []byte) error {
		_, err := progress.UnmarshalReport(from.String(), body)
		return err
	})
	topic.Handle(matchmaking.GossipType, func(from peer.ID, body []byte) error {
		_, err := matchmaking.UnmarshalEnvelope(from.String(), body)
		return err
	})
	o := &gossipObserver{samples: map[laneKey]uint64{}, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(o.done)
		for {
			from, msg, err := topic.Next(ctx)
			if err != nil {
				return
			}
			if msg.Type != progress.GossipType {
				continue
			}
			r, err := progress.UnmarshalReport(from.String(), msg.Body)
			if err != nil {
				continue
			}
			o.mu.Lock()
			k := laneKey{r.Peer, r.Epoch}
			o.samples[k] = max(o.samples[k], r.Samples)
			o.reports++
			o.mu.Unlock()
		}
	}()
	return o
}

// heard stops the observer and returns what it heard.
func (o *gossipObserver) heard() (map[laneKey]uint64, int) {
	o.stop()
	<-o.done
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.samples, o.reports
}

// recomputeLane is what an observer derives from a peer's reported
// samples for an epoch and the run's config: the digest of the micro-batch
// windows and dropout seeds the peer trained on (laneDigest). The samples
// come from the network, so they are checked against what the config
// allows before any work is done for them.
func recomputeLane(cfg config.Miner, order data.Order, peer string, epoch, samples uint64) (string, error) {
	// The most a miner trains in an epoch: its inner steps' micro-batches
	// in diloco, the target batch rounded up to whole micro-batches in
	// gradients mode (a miner alone stops there).
	micro := uint64(cfg.Loop.MicroBatch)
	most := uint64(cfg.Swarm.InnerSteps) * uint64(max(1, cfg.AccumSteps())) * micro
	if cfg.Swarm.Mode == "gradients" {
		most = (uint64(cfg.Swarm.TargetBatchSize) + micro - 1) / micro * micro
	}
	if samples == 0 || samples%micro != 0 || samples > most {
		return "", fmt.Errorf("peer %s reports %d samples for epoch %d: want a positive multiple of %d, at most %d", peer, samples, epoch, micro, most)
	}
	lane, d := order.Lane(epoch, peer), newLaneDigest()
	for k := range int64(samples / micro) {
		windows, err := lane.MicroBatch(int(micro), k)
		if err != nil {
			return "", err
		}
		d.add(windows, lane.DropoutSeed(k))
	}
	return d.sum(), nil
}

// TestObserverRecomputesBatches: a peer that only listens to the run's
// gossip recomputes, from each miner's progress reports (its id, its
// epoch, the samples it trained) and the run's config alone, exactly the
// windows and dropout seeds every miner trained on in every epoch, with
// no knowledge of the peer set; and miners of one epoch train on
// different lanes with different dropout masks. In both modes: a diloco
// miner that others wait for stops its inner steps early, and a gradients
// miner stops when the swarm's samples reach the target, so the samples
// differ between miners and epochs.
func TestObserverRecomputesBatches(t *testing.T) {
	for _, c := range []struct {
		mode   string
		epochs int // tinyMiner's max_epochs
	}{{"diloco", 4}, {"gradients", 5}} {
		t.Run(c.mode, func(t *testing.T) { observeSwarm(t, tinyMiner(c.mode), c.epochs) })
	}
}

func observeSwarm(t *testing.T, cfg config.Miner, epochs int) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h := newHarness(t, ctx, cfg)
	for range 3 {
		h.start(nil)
	}
	obs := startObserver(t, ctx, h.boot, cfg.RunID)
	events := h.wait()
	heard, reports := obs.heard()
	t.Logf("observer heard %d progress reports", reports)

	order, err := data.NewOrder(cfg.RunID, cfg.Seed, h.tr.Len())
	if err != nil {
		t.Fatal(err)
	}
	byEpoch := map[uint64]map[string]string{} // epoch → data hash → miner
	for i, evs := range events {
		checked := map[uint64]bool{}
		for _, ev := range evs {
			if ev.Dropped {
				// Its reports may have been overtaken by the epoch's next try.
				t.Logf("miner %d dropped epoch %d: not checked", i, ev.Epoch)
				continue
			}
			n, ok := heard[laneKey{ev.Peer, ev.Epoch}]
			if !ok {
				t.Errorf("miner %d epoch %d: the observer heard no report of it", i, ev.Epoch)
				continue
			}
			if n != uint64(ev.Samples) {
				t.Errorf("miner %d epoch %d: trained %d samples, its reports said at most %d", i, ev.Epoch, ev.Samples, n)
				continue
			}
			got, err := recomputeLane(cfg, order, ev.Peer, ev.Epoch, n)
			if err != nil {
				t.Errorf("miner %d epoch %d: %v", i, ev.Epoch, err)
				continue
			}
			if got != ev.DataHash {
				t.Errorf("miner %d epoch %d: trained on micro-batches of digest %s, the observer recomputed %s from %d samples", i, ev.Epoch, ev.DataHash, got, n)
				continue
			}
			checked[ev.Epoch] = true
			if byEpoch[ev.Epoch] == nil {
				byEpoch[ev.Epoch] = map[string]string{}
			}
			if other, ok := byEpoch[ev.Epoch][got]; ok && other != ev.Peer {
				t.Errorf("epoch %d: miners %s and %s trained on the same windows with the same dropout seeds", ev.Epoch, other, ev.Peer)
			}
			byEpoch[ev.Epoch][got] = ev.Peer
		}
		var samples []int64
		for _, ev := range evs {
			samples = append(samples, ev.Samples)
		}
		t.Logf("miner %d: samples per epoch %v, %d of its epochs recomputed from gossip", i, samples, len(checked))
		if len(checked) != epochs {
			t.Errorf("miner %d: %d of its %d epochs recomputed from gossip, want all %d", i, len(checked), len(evs), epochs)
		}
	}
}
