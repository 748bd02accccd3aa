package netx

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Peer exchange on the member protocol: a member asked for its members
// answers with up to exchangeMax of those it is connected to, each with at
// most exchangeAddrs addresses. What it sends are only addresses to dial:
// a peer becomes a member to the asker once it identifies as one
// (watchMembers), as if a lookup had found it, so a lying answer costs the
// asker at most the dials that connect bounds.
const (
	exchangeMax     = 64
	exchangeAddrs   = 8
	exchangeFrame   = 64 << 10 // the answer's largest frame
	exchangeTimeout = 5 * time.Second
	typeMembers     = 1 // the answer's message type
)

// serveMembers answers one exchange request: the request is the stream
// itself, the answer one message of members.
func (r *Run) serveMembers(s network.Stream) {
	fs := NewFramedStream(s, exchangeFrame, exchangeTimeout)
	defer fs.Close()
	body, err := json.Marshal(r.sample(s.Conn().RemotePeer()))
	if err != nil || len(body)+2 > exchangeFrame {
		_ = fs.Reset()
		return
	}
	if err := fs.WriteMessage(r.ctx, Message{Type: typeMembers, Version: 1, Body: body}); err != nil {
		_ = fs.Reset()
	}
}

// sample picks up to exchangeMax connected members other than to, at
// random, with their known addresses.
func (r *Run) sample(to peer.ID) []peer.AddrInfo {
	ids := r.Peers()
	rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	out := make([]peer.AddrInfo, 0, min(len(ids), exchangeMax))
	for _, p := range ids {
		if len(out) == exchangeMax {
			break
		}
		if p == to {
			continue
		}
		addrs := r.node.host.Peerstore().Addrs(p)
		if len(addrs) == 0 {
			continue
		}
		out = append(out, peer.AddrInfo{ID: p, Addrs: addrs[:min(len(addrs), exchangeAddrs)]})
	}
	return out
}

// exchange asks one connected member, drawn at random, for the members it
// knows, and returns those this node is not connected to (at most
// exchangeMax, each with at most exchangeAddrs addresses; nil on any
// failure).
func (r *Run) exchange() []peer.AddrInfo {
	ids := r.Peers()
	if len(ids) == 0 {
		return nil
	}
	from := ids[rand.IntN(len(ids))]
	ctx, cancel := context.WithTimeout(r.ctx, exchangeTimeout)
	defer cancel()
	s, err := r.node.host.NewStream(ctx, from, r.Protocol(memberProtocol))
	if err != nil {
		return nil
	}
	fs := NewFramedStream(s, exchangeFrame, exchangeTimeout)
	defer fs.Close()
	_ = fs.CloseWrite()
	m, err := fs.ReadMessage(ctx)
	if err != nil || m.Type != typeMembers || m.Version != 1 {
		_ = fs.Reset()
		return nil
	}
	var got []peer.AddrInfo
	if err := json.Unmarshal(m.Body, &got); err != nil {
		return nil
	}
	var out []peer.AddrInfo
	for _, ai := range got {
		if len(out) == exchangeMax {
			break
		}
		if ai.ID == "" || ai.ID == r.node.ID() || len(ai.Addrs) == 0 || r.node.host.Network().Connectedness(ai.ID) == network.Connected {
			continue
		}
		ai.Addrs = ai.Addrs[:min(len(ai.Addrs), exchangeAddrs)]
		out = append(out, ai)
	}
	r.node.cfg.Log.Debug().Str("run", r.id).Stringer("from", from).Int("members", len(got)).Int("new", len(out)).Msg("member exchange")
	return out
}
