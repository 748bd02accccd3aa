package matchmaking

import (
	"encoding/json"
	"errors"
	"fmt"
)

// GossipType is the gossip message type of matchmaking envelopes on a
// run's topic.
const GossipType = "match"

// MaxPeerIDLen bounds peer ids in envelopes (a libp2p id is ~52 bytes).
const MaxPeerIDLen = 128

// Envelope is one matchmaking message on the run's gossip: To is the peer
// it is for, "" for everyone. Gossip is signed, so the sender is the
// message's author, not a field.
//
// Gossip does not keep one sender's messages in order, so a view can
// arrive before its sender's announcement, which the matchmaker would then
// refuse. Every envelope therefore repeats its sender's own announcement
// (Ready), which the receiver feeds first: an echo it already holds is
// ignored.
type Envelope struct {
	To    string `json:"to,omitempty"`
	Epoch uint64 `json:"epoch"`
	Ready *Ready `json:"ready,omitempty"`
	Msg   Msg    `json:"msg"`
}

// Marshal encodes e; gossip caps its size.
func (e Envelope) Marshal() ([]byte, error) {
	return json.Marshal(e)
}

// UnmarshalEnvelope parses and bounds a matchmaking message from peer from:
// a Ready must be its sender's own (a relay cannot announce for others)
// and ids are length-capped. The Matchmaker checks the rest.
func UnmarshalEnvelope(from string, b []byte) (Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("match message from %s: %w", from, err)
	}
	if len(e.To) > MaxPeerIDLen {
		return e, errors.New("match message: recipient id too long")
	}
	rs := e.Msg.Ready
	if e.Ready != nil {
		rs = append([]Ready{*e.Ready}, rs...)
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
			if len(m.ID) > MaxPeerIDLen {
				return e, errors.New("match message: member id too long")
			}
		}
	}
	return e, nil
}
