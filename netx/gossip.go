package netx

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/encoding/protowire"
)

// DefaultMaxGossipSize caps an encoded gossip message: progress reports and
// announcements are small; tensors travel over streams, never gossip.
const DefaultMaxGossipSize = 64 << 10

// maxGossipSizeLimit stays under pubsub's 1 MiB RPC limit with room for
// the signature, key and framing.
const maxGossipSizeLimit = 512 << 10

// ErrGossipTooLarge reports a message over the node's gossip size cap.
var ErrGossipTooLarge = errors.New("gossip message too large")

// ErrIgnore, wrapped by a ValidateFunc's error, marks a message that is
// valid but not worth delivering or relaying (an outdated copy): pubsub
// ignores it instead of penalizing the peer that forwarded it.
var ErrIgnore = errors.New("ignored")

// ErrUnknownType reports a message whose (type, version) no Handle call
// registered.
var ErrUnknownType = errors.New("unregistered gossip message type")

// ValidateFunc checks a message body of a registered type from its signer
// before delivery; a non-nil error rejects the message.
type ValidateFunc func(from peer.ID, body []byte) error

// Gossip is a node's subscription to its run's gossipsub topic,
// "dtrain/<run>/gossip/1". Every message is signed by its author and passes
// the topic validator before it is delivered or forwarded: it decodes, is
// within the size cap, names this run, has a (type, version) registered
// with Handle, and passes that type's ValidateFunc.
type Gossip struct {
	run   *Run
	ps    *pubsub.PubSub
	name  string
	topic *pubsub.Topic
	sub   *pubsub.Subscription
	max   int

	mu       sync.RWMutex
	handlers map[typeVersion]ValidateFunc
}

type typeVersion struct {
	typ     string
	version uint16
}

// JoinGossip joins run runID (JoinRun) and its gossip topic: the node
// advertises itself in the run, connects to its peers and takes part in
// its gossip until ctx ends or the node closes.
func (n *Node) JoinGossip(ctx context.Context, runID string) (Topic, error) {
	r, err := n.JoinRun(ctx, runID)
	if err != nil {
		return nil, err
	}
	g, err := r.Gossip(ctx)
	if err != nil {
		_ = r.Close()
		return nil, err
	}
	return g, nil
}

// Gossip joins the run's gossip topic on the first call and returns the
// same Gossip afterwards.
func (r *Run) Gossip(ctx context.Context) (*Gossip, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("gossip of run %s: %w", r.id, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("gossip of run %s: run closed", r.id)
	}
	if r.gossip != nil {
		return r.gossip, nil
	}
	ps := r.node.ps
	g := &Gossip{
		run: r, ps: ps, name: "dtrain/" + r.id + "/gossip/1", max: r.node.cfg.MaxGossipSize,
		handlers: map[typeVersion]ValidateFunc{},
	}
	if err := ps.RegisterTopicValidator(g.name, pubsub.ValidatorEx(g.validate)); err != nil {
		return nil, fmt.Errorf("gossip of run %s: %w", r.id, err)
	}
	var err error
	if g.topic, err = ps.Join(g.name); err != nil {
		_ = ps.UnregisterTopicValidator(g.name)
		return nil, fmt.Errorf("gossip of run %s: join %s: %w", r.id, g.name, err)
	}
	if g.sub, err = g.topic.Subscribe(); err != nil {
		_ = g.close()
		return nil, fmt.Errorf("gossip of run %s: subscribe: %w", r.id, err)
	}
	r.gossip = g
	return g, nil
}

// newPubSub starts the node's gossipsub router. It must run before the
// node connects to anyone: a router opens its stream to a peer when the
// connection appears and does not retry a peer that had no router yet.
// StrictSign (the default) makes every author sign its messages and every
// receiver verify the signature against the author's key before our
// validator runs.
func newPubSub(ctx context.Context, h host.Host) (*pubsub.PubSub, error) {
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithMessageSignaturePolicy(pubsub.StrictSign))
	if err != nil {
		return nil, fmt.Errorf("start gossipsub: %w", err)
	}
	return ps, nil
}

// Handle registers message type typ at version 1; see HandleVersion.
func (g *Gossip) Handle(typ string, validate ValidateFunc) {
	g.HandleVersion(typ, 1, validate)
}

// HandleVersion registers message type typ at version v, with validate (nil
// accepts any body) run on every such message before delivery. Messages of
// unregistered types or versions are dropped, neither delivered nor
// forwarded, so peers running newer software do not disturb older ones.
func (g *Gossip) HandleVersion(typ string, v uint16, validate ValidateFunc) {
	if validate == nil {
		validate = func(peer.ID, []byte) error { return nil }
	}
	g.mu.Lock()
	g.handlers[typeVersion{typ, v}] = validate
	g.mu.Unlock()
}

// Publish signs and sends m to the run's peers. Version 0 means 1. The
// node's own validator checks m first, so an unregistered type or an
// oversized body is an error here rather than a silent drop elsewhere.
func (g *Gossip) Publish(ctx context.Context, m GossipMessage) error {
	if m.Version == 0 {
		m.Version = 1
	}
	data, err := encodeGossip(g.run.id, m)
	if err != nil {
		return fmt.Errorf("publish %s: %w", m.Type, err)
	}
	if len(data) > g.max {
		return fmt.Errorf("publish %s: %w: %d bytes, cap %d", m.Type, ErrGossipTooLarge, len(data), g.max)
	}
	if err := g.topic.Publish(ctx, data); err != nil {
		return fmt.Errorf("publish %s on run %s: %w", m.Type, g.run.id, err)
	}
	return nil
}

// Next returns the next validated message from another peer, with its
// author (the signer, not the peer that forwarded it). The node's own
// messages are skipped.
func (g *Gossip) Next(ctx context.Context) (peer.ID, GossipMessage, error) {
	for {
		msg, err := g.sub.Next(ctx)
		if err != nil {
			return "", GossipMessage{}, fmt.Errorf("gossip of run %s: %w", g.run.id, err)
		}
		from := msg.GetFrom()
		if from == g.run.node.ID() {
			continue
		}
		m, ok := msg.ValidatorData.(GossipMessage)
		if !ok { // unreachable: every delivered message passed validate
			continue
		}
		return from, m, nil
	}
}

// Peers are the peers subscribed to the run's topic that this node knows.
func (g *Gossip) Peers() []peer.ID { return g.topic.ListPeers() }

// validate is the topic validator. Malformed, oversized, unsigned or
// foreign-run messages are rejected (the forwarding peer is penalized);
// unregistered types, authors the node does not admit and what a type's
// ValidateFunc marks with ErrIgnore are ignored.
func (g *Gossip) validate(_ context.Context, _ peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	from, err := g.check(msg)
	if err != nil {
		g.run.node.cfg.Log.Debug().Err(err).Str("run", g.run.id).Stringer("peer", from).Msg("gossip rejected")
		if errors.Is(err, ErrUnknownType) || errors.Is(err, ErrIgnore) {
			return pubsub.ValidationIgnore
		}
		return pubsub.ValidationReject
	}
	return pubsub.ValidationAccept
}

func (g *Gossip) check(msg *pubsub.Message) (peer.ID, error) {
	if len(msg.Data) > g.max {
		return "", fmt.Errorf("%w: %d bytes, cap %d", ErrGossipTooLarge, len(msg.Data), g.max)
	}
	// pubsub verified the signature against the key of From (StrictSign);
	// refuse anything that reached us without one all the same.
	if len(msg.Signature) == 0 {
		return "", errors.New("unsigned message")
	}
	from, err := peer.IDFromBytes(msg.From)
	if err != nil {
		return "", fmt.Errorf("author: %w", err)
	}
	if from != g.run.node.ID() && !g.run.node.Admits(from) {
		// A forwarder whose admission is behind ours (an older roster)
		// relays it in good faith.
		return from, fmt.Errorf("%w: author %s is not admitted to the run", ErrIgnore, from)
	}
	run, m, err := decodeGossip(msg.Data)
	if err != nil {
		return from, err
	}
	if run != g.run.id {
		return from, fmt.Errorf("message for run %q on run %q's topic", run, g.run.id)
	}
	g.mu.RLock()
	validate, ok := g.handlers[typeVersion{m.Type, m.Version}]
	g.mu.RUnlock()
	if !ok {
		return from, fmt.Errorf("%w: %q version %d", ErrUnknownType, m.Type, m.Version)
	}
	if err := validate(from, m.Body); err != nil {
		return from, fmt.Errorf("%s message: %w", m.Type, err)
	}
	msg.ValidatorData = m
	return from, nil
}

// close leaves the topic. pubsub refuses to drop a topic until it has
// processed the subscription's cancellation, so it retries briefly.
func (g *Gossip) close() error {
	if g.sub != nil {
		g.sub.Cancel()
	}
	var err error
	for range 50 {
		if err = g.topic.Close(); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return errors.Join(err, g.ps.UnregisterTopicValidator(g.name))
}

// GossipMessage is one gossip message: an application-defined Type (at most
// MaxGossipTypeLen bytes), the Version of that type's body schema, and the Body.
type GossipMessage struct {
	Type    string
	Version uint16
	Body    []byte
}

// MaxGossipTypeLen bounds GossipMessage.Type.
const MaxGossipTypeLen = 64

// Wire format of a gossip message: protobuf wire encoding (protowire) of
//
//	1: run     bytes   the run id; must equal the topic's run
//	2: type    bytes   GossipMessage.Type, 1..MaxGossipTypeLen bytes
//	3: version varint  GossipMessage.Version, 1..65535
//	4: body    bytes   GossipMessage.Body
//
// in this order; each field exactly once except body (absent means empty).
// Unknown fields are rejected: a new layout gets a new topic version.
const (
	fieldRun     protowire.Number = 1
	fieldType    protowire.Number = 2
	fieldVersion protowire.Number = 3
	fieldBody    protowire.Number = 4
)

func encodeGossip(run string, m GossipMessage) ([]byte, error) {
	if m.Type == "" || len(m.Type) > MaxGossipTypeLen {
		return nil, fmt.Errorf("message type %q: want 1..%d bytes", m.Type, MaxGossipTypeLen)
	}
	if m.Version == 0 {
		return nil, errors.New("message version 0")
	}
	b := make([]byte, 0, len(run)+len(m.Type)+len(m.Body)+16)
	b = protowire.AppendTag(b, fieldRun, protowire.BytesType)
	b = protowire.AppendString(b, run)
	b = protowire.AppendTag(b, fieldType, protowire.BytesType)
	b = protowire.AppendString(b, m.Type)
	b = protowire.AppendTag(b, fieldVersion, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(m.Version))
	if len(m.Body) > 0 {
		b = protowire.AppendTag(b, fieldBody, protowire.BytesType)
		b = protowire.AppendBytes(b, m.Body)
	}
	return b, nil
}

// decodeGossip parses the wire format strictly; Body aliases data.
func decodeGossip(data []byte) (run string, m GossipMessage, err error) {
	next := fieldRun
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return "", GossipMessage{}, fmt.Errorf("decode gossip message: tag: %w", protowire.ParseError(n))
		}
		data = data[n:]
		if num < next || num > fieldBody {
			return "", GossipMessage{}, fmt.Errorf("decode gossip message: unexpected field %d", num)
		}
		want := protowire.BytesType
		if num == fieldVersion {
			want = protowire.VarintType
		}
		if typ != want {
			return "", GossipMessage{}, fmt.Errorf("decode gossip message: field %d has wire type %d, want %d", num, typ, want)
		}
		if num == fieldVersion {
			v, n := protowire.ConsumeVarint(data)
			if n < 0 {
				return "", GossipMessage{}, fmt.Errorf("decode gossip message: version: %w", protowire.ParseError(n))
			}
			if v == 0 || v > 0xffff {
				return "", GossipMessage{}, fmt.Errorf("decode gossip message: version %d out of range 1..65535", v)
			}
			m.Version, data = uint16(v), data[n:]
		} else {
			v, n := protowire.ConsumeBytes(data)
			if n < 0 {
				return "", GossipMessage{}, fmt.Errorf("decode gossip message: field %d: %w", num, protowire.ParseError(n))
			}
			data = data[n:]
			switch num {
			case fieldRun:
				run = string(v)
			case fieldType:
				m.Type = string(v)
			case fieldBody:
				m.Body = v
			}
		}
		next = num + 1
	}
	// Fields come in order, so a version skipped on the way to the body
	// is missing too: Version is 0 only if field 3 never came.
	if next <= fieldVersion || m.Version == 0 {
		return "", GossipMessage{}, fmt.Errorf("decode gossip message: missing field %d", max(next, fieldVersion))
	}
	if err := ValidateRunID(run); err != nil {
		return "", GossipMessage{}, fmt.Errorf("decode gossip message: %w", err)
	}
	if m.Type == "" || len(m.Type) > MaxGossipTypeLen {
		return "", GossipMessage{}, fmt.Errorf("decode gossip message: type of %d bytes, want 1..%d", len(m.Type), MaxGossipTypeLen)
	}
	return run, m, nil
}
