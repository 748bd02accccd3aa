// Package epochnet is what every production driver of node/epoch's
// Machine (the miner, the validator) needs of the run's gossip: the
// decoded messages, and matchmaking envelopes as the Machine's Match. It
// links the libp2p transport (netx), which node/epoch itself must not.
package epochnet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/epoch"
	"github.com/dtrain-dev/dtrain/node/matchmaking"
	"github.com/dtrain-dev/dtrain/node/progress"
	"github.com/dtrain-dev/dtrain/node/roster"
	"github.com/dtrain-dev/dtrain/node/verdicts"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rs/zerolog"
)

// Inbound is one decoded gossip message from peer From: a progress
// report, a matchmaking envelope or a validator's exclusions.
type Inbound struct {
	From     string
	Report   *progress.Report
	Env      *matchmaking.Envelope
	Verdicts *verdicts.List
}

// Handle registers on t the message types Read decodes, so that t takes
// and relays them; a message that does not decode is refused. With a
// roster book (a run whose owner signs its membership), t also takes
// rosters: book adopts the newer ones, refuses invalid ones, and older
// ones are ignored, neither delivered nor relayed.
func Handle(t netx.Topic, book *roster.Book) {
	if book != nil {
		t.Handle(roster.GossipType, func(from peer.ID, body []byte) error {
			err := book.Receive(from, body)
			if errors.Is(err, roster.ErrStale) {
				return fmt.Errorf("%w: %v", netx.ErrIgnore, err)
			}
			return err
		})
	}
	t.Handle(matchmaking.GossipType, func(from peer.ID, body []byte) error {
		_, err := matchmaking.UnmarshalEnvelope(from.String(), body)
		return err
	})
	t.Handle(progress.GossipType, func(from peer.ID, body []byte) error {
		_, err := progress.UnmarshalReport(from.String(), body)
		return err
	})
	t.Handle(verdicts.GossipType, func(_ peer.ID, body []byte) error {
		_, err := verdicts.Unmarshal(body)
		return err
	})
}

// rosterEvery and rosterReload are roster.Loop's rounds; 0 = its
// defaults. Tests shorten them.
var rosterEvery, rosterReload time.Duration

// KeepRoster runs book's loop (roster.Book.Run) on t until ctx ends: the
// node republishes its roster as the loop says, re-reads the roster file,
// and closes its connections with every peer a newer roster no longer
// admits.
func KeepRoster(ctx context.Context, nd netx.Network, t netx.Topic, book *roster.Book, log zerolog.Logger) {
	book.Run(ctx, roster.Loop{
		Self: nd.ID(), Every: rosterEvery, Reload: rosterReload,
		Publish: func(ctx context.Context, enc []byte) error {
			return t.Publish(ctx, netx.GossipMessage{Type: roster.GossipType, Body: enc})
		},
		Adopted: func(r roster.Roster) {
			log.Info().Uint64("version", r.Version).Int("members", len(r.Members)).Int("dropped_peers", nd.Prune()).Msg("roster adopted")
			if !nd.Admits(nd.ID()) {
				log.Warn().Uint64("version", r.Version).Msg("this peer is not in the run's new roster: the other peers drop its connections")
			}
		},
		Log: func(err error, msg string) { log.Warn().Err(err).Msg(msg) },
	})
}

// Read decodes t's messages into in until ctx ends. Messages of other
// types, and any the topic's validators should already have refused, are
// skipped.
func Read(ctx context.Context, t netx.Topic, in chan<- Inbound) {
	for {
		from, msg, err := t.Next(ctx)
		if err != nil {
			return
		}
		g := Inbound{From: from.String()}
		switch msg.Type {
		case progress.GossipType:
			r, err := progress.UnmarshalReport(g.From, msg.Body)
			if err != nil {
				continue
			}
			g.Report = &r
		case matchmaking.GossipType:
			env, err := matchmaking.UnmarshalEnvelope(g.From, msg.Body)
			if err != nil {
				continue
			}
			g.Env = &env
		case verdicts.GossipType:
			l, err := verdicts.Unmarshal(msg.Body)
			if err != nil {
				continue
			}
			g.Verdicts = &l
		default:
			continue
		}
		select {
		case in <- g:
		case <-ctx.Done():
			return
		}
	}
}

// Match is envelope e as the Machine takes it (ReceiveMatch), its key the
// run field of the announcement or view it carries; false for an envelope
// that carries neither.
func Match(e matchmaking.Envelope) (epoch.Match, bool) {
	var key string
	switch {
	case e.Ready != nil:
		key = e.Ready.Run
	case e.Msg.View != nil:
		key = e.Msg.View.Run
	case len(e.Msg.Ready) > 0:
		key = e.Msg.Ready[0].Run
	default:
		return epoch.Match{}, false
	}
	return epoch.Match{To: e.To, Key: key, Epoch: e.Epoch, Ready: e.Ready, Msg: e.Msg}, true
}
