package miner

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/config"
)

// timedEvent is an event and when it reached the test.
type timedEvent struct {
	at time.Time
	ev Event
}

// runEvents runs n miners of cfg together over loopback QUIC and returns
// each one's events, when it called Run, and Run's error.
func runEvents(t *testing.T, cfg config.Miner, n int) ([][]Event, [][]timedEvent, []time.Time, []error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h := newHarness(t, ctx, cfg)
	events, timed, begun, errs := make([][]Event, n), make([][]timedEvent, n), make([]time.Time, n), make([]error, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var boot []string
	for i := range n {
		nd, err := netx.New(ctx, netx.Config{ListenAddrs: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, DHTMode: netx.DHTServer, Bootstrap: boot})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nd.Close() })
		if i == 0 {
			boot = []string{fmt.Sprintf("%s/p2p/%s", nd.Host().Addrs()[0], nd.ID())}
		}
		c := cfg
		c.OutDir = t.TempDir()
		log := zerolog.New(zerolog.NewTestWriter(t)).With().Int("miner", i).Logger().Level(zerolog.WarnLevel)
		m, err := New(ctx, Options{Config: c, Node: nd, Train: h.tr, Val: h.val, Log: log, Events: func(ev Event) {
			mu.Lock()
			events[i] = append(events[i], ev)
			timed[i] = append(timed[i], timedEvent{time.Now(), ev})
			mu.Unlock()
		}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		wg.Go(func() {
			begun[i] = time.Now()
			errs[i] = m.Run(ctx)
		})
	}
	wg.Wait()
	return events, timed, begun, errs
}

// TestEvents: two miners that average every epoch report, in order, their
// start, each epoch's all-reduce round and then the epoch, and their stop
// at swarm.max_epochs (between them, what they announce and their links'
// probes). An epoch's traffic is its round's, which moved
// bytes both ways; the state an epoch ends with is the one the next
// starts from.
func TestEvents(t *testing.T) {
	cfg := tinyMiner("diloco")
	events, _, _, errs := runEvents(t, cfg, 2)
	for i, evs := range events {
		if errs[i] != nil {
			t.Fatalf("miner %d: %v", i, errs[i])
		}
		if len(evs) < 2 {
			t.Fatalf("miner %d: events %+v", i, evs)
		}
		if s, ok := evs[0].(StartEvent); !ok || s.Epoch != 0 || s.Resumed || s.Params == 0 || s.Peer == "" {
			t.Errorf("miner %d: first event %+v, want a fresh start", i, evs[0])
		}
		if s, ok := evs[len(evs)-1].(StopEvent); !ok || s.Reason != "max_epochs" || s.Err != "" || s.Epoch != cfg.Swarm.MaxEpochs {
			t.Errorf("miner %d: last event %+v, want a stop at max_epochs", i, evs[len(evs)-1])
		}
		var rounds []RoundEvent
		var prev *EpochEvent
		epochs := 0
		for _, ev := range evs[1 : len(evs)-1] {
			switch e := ev.(type) {
			case RoundEvent:
				rounds = append(rounds, e)
			case EpochEvent:
				epochs++
				var sent, received int64
				for _, r := range rounds {
					if r.Epoch != e.Epoch || r.Err != "" || r.Members != 2 || r.Contributors != 2 || r.Took <= 0 {
						t.Errorf("miner %d: epoch %d's round %+v", i, e.Epoch, r)
					}
					sent, received = sent+r.BytesSent, received+r.BytesReceived
				}
				if len(rounds) != 1 || e.BytesSent != sent || e.BytesReceived != received || sent == 0 || received == 0 {
					t.Errorf("miner %d: epoch %d sent %d and received %d bytes; its %d rounds %d and %d",
						i, e.Epoch, e.BytesSent, e.BytesReceived, len(rounds), sent, received)
				}
				if e.Contributors != 2 || e.TokensPerSec <= 0 || e.ParamHash == e.StartHash || len(e.ParamHash) != 16 {
					t.Errorf("miner %d: epoch %+v", i, e)
				}
				if prev != nil && e.StartHash != prev.ParamHash {
					t.Errorf("miner %d: epoch %d starts from %s, epoch %d ended with %s", i, e.Epoch, e.StartHash, prev.Epoch, prev.ParamHash)
				}
				prev, rounds = &e, nil
			case AnnounceEvent:
				if e.Role != "full" {
					t.Errorf("miner %d: announces %+v, want the full role", i, e)
				}
			case ProbeEvent:
				if e.Peers < 1 || e.Bytes <= 0 || e.UpMbps <= 0 || e.DownMbps <= 0 {
					t.Errorf("miner %d: probe %+v", i, e)
				}
			default:
				t.Errorf("miner %d: unexpected %s event %+v", i, ev.Kind(), ev)
			}
		}
		if want := int(cfg.Swarm.MaxEpochs); epochs != want {
			t.Errorf("miner %d: %d epoch events, want %d", i, epochs, want)
		}
	}
}

// TestMaxMinutes: a miner trains no epoch that starts after
// train.max_minutes have passed: at most the epoch it was in then ends
// later, and it stops, saying why, far short of max_epochs.
func TestMaxMinutes(t *testing.T) {
	cfg := tinyMiner("diloco")
	cfg.Swarm.MaxEpochs = 1000
	cfg.Loop.MaxMinutes = 0.1
	_, timed, begun, errs := runEvents(t, cfg, 2)
	for i, evs := range timed {
		if errs[i] != nil {
			t.Fatalf("miner %d: %v", i, errs[i])
		}
		// begun is at most Run's own clock, so this deadline is at most
		// the miner's: an epoch the miner ended before its deadline may
		// count as after, never the other way round.
		deadline := begun[i].Add(time.Duration(cfg.Loop.MaxMinutes * float64(time.Minute)))
		before, after := 0, 0
		for _, e := range evs {
			if _, ok := e.ev.(EpochEvent); ok {
				if e.at.Before(deadline) {
					before++
				} else {
					after++
				}
			}
		}
		last, ok := evs[len(evs)-1].ev.(StopEvent)
		t.Logf("miner %d: %d epochs before its deadline, %d after; %+v", i, before, after, evs[len(evs)-1].ev)
		if !ok || last.Reason != "max_minutes" || after > 1 || last.Epoch >= cfg.Swarm.MaxEpochs {
			t.Errorf("miner %d: %d epochs ended after its deadline, then %+v; want at most one, then a stop at max_minutes",
				i, after, evs[len(evs)-1].ev)
		}
	}
}
