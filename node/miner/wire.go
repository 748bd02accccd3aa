package miner

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dtrain-dev/dtrain/node/matchmaking"
)

// gossipMatch is the gossip type of matchmaking messages.
const gossipMatch = "match"

// maxPeerIDLen bounds peer ids in messages (a libp2p id is ~52 bytes).
const maxPeerIDLen = 128

// matchEnvelope is one matchmaking message on the run's gossip: To is the
// peer it is for, "" for everyone. Gossip is signed, so the sender is the
// message's author, not a field.
//
// Gossip does not keep one sender's messages in order, so a view can
// arrive before its sender's announcement, which the matchmaker would then
// refuse. Every envelope therefore repeats its sender's own announcement
// (Ready), which the receiver feeds first: an echo it already holds is
// ignored.
type matchEnvelope struct {
	To    string             `json:"to,omitempty"`
	Epoch uint64             `json:"epoch"`
	Ready *matchmaking.Ready `json:"ready,omitempty"`
	Msg   matchmaking.Msg    `json:"msg"`
}

// encodeMatch encodes e; gossip caps its size.
func encodeMatch(e matchEnvelope) ([]byte, error) {
	return json.Marshal(e)
}

// decodeMatch parses and bounds a matchmaking message from peer from: a
// Ready must be its sender's own (a relay cannot announce for others) and
// ids are length-capped. The matchmaker checks the rest.
func decodeMatch(from string, b []byte) (matchEnvelope, error) {
	var e matchEnvelope
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("match message from %s: %w", from, err)
	}
	if len(e.To) > maxPeerIDLen {
		return e, errors.New("match message: recipient id too long")
	}
	rs := e.Msg.Ready
	if e.Ready != nil {
		rs = append([]matchmaking.Ready{*e.Ready}, rs...)
	}
	for _, r := range rs {
		if r.Peer != from {
			return e, fmt.Errorf("match message from %s announces %q", from, r.Peer)
		}
		if r.Epoch != e.Epoch {
			return e, fmt.Errorf("match message for epoch %d announces epoch %d", e.Epoch, r.Epoch)
		}
	}
	if v := e.Msg.View; v != nil {
		if v.Epoch != e.Epoch {
			return e, fmt.Errorf("match message for epoch %d carries a view of epoch %d", e.Epoch, v.Epoch)
		}
		for _, m := range v.Members {
			if len(m.ID) > maxPeerIDLen {
				return e, errors.New("match message: member id too long")
			}
		}
	}
	return e, nil
}
