package allreduce

import "fmt"

// Phase says which half of the butterfly a PartMsg belongs to.
type Phase byte

// The two phases of a round.
const (
	ReduceScatter Phase = iota + 1 // a contributor's values of a span, to its owner
	AllGather                      // an owner's weighted mean of its span, to every member
)

// String names the phase.
func (p Phase) String() string {
	switch p {
	case ReduceScatter:
		return "reduce-scatter"
	case AllGather:
		return "all-gather"
	}
	return fmt.Sprintf("phase(%d)", byte(p))
}

// Msg is a message of a round. Size is its size in bytes on the wire, used
// by the simulator to charge links; a wire encoding is a later concern.
type Msg interface {
	Size() int
	roundMsg()
}

// PartMsg carries one part of one span: Part is the index of the part within
// the span (parts are PartSize elements, the last may be shorter), Payload is
// the part encoded with Codec. In ReduceScatter, Weight is the sender's
// weight (checked against the group) and Set is 0; in a committed round,
// Proof is the range proof of the part's chunks against the sender's root
// (commit.go). In AllGather, Weight is 0, Proof empty, and Set names the
// contributors the mean is over (SetHash), so a part sent before the
// contributors were agreed is used only if the agreement picks that same
// set.
type PartMsg struct {
	Phase   Phase
	Span    int // index into the round's spans
	Part    int
	Codec   CodecID
	Weight  float64
	Set     uint64
	Payload []byte
	Proof   [][32]byte
}

// partHeaderBytes is what a wire frame adds to a part's payload: phase,
// codec, span, part, weight and set.
const partHeaderBytes = 2 + 4 + 4 + 8 + 8

// Size is the part's size on the wire.
func (m PartMsg) Size() int {
	if len(m.Proof) > 0 {
		return partHeaderBytes + len(m.Payload) + 4 + 32*len(m.Proof)
	}
	return partHeaderBytes + len(m.Payload)
}

func (PartMsg) roundMsg() {}

// ReportMsg is an owner's vote in the agreement step: Have lists, ascending,
// the member indices whose every part of the owner's span it received before
// it stopped waiting. The round's contributors are the intersection of all
// owners' reports, so every owner averages over the same peers.
type ReportMsg struct {
	Span int
	Have []int
}

// Size is the report's size on the wire.
func (m ReportMsg) Size() int { return 8 + 4*len(m.Have) }

func (ReportMsg) roundMsg() {}

// Outgoing is a message the caller must send to member To.
type Outgoing struct {
	To  int
	Msg Msg
}

// LostMsg says that member Owner, the current owner of span Span, is
// believed lost: its report or its all-gather parts stopped arriving. A
// member that receives one accepts it (a false suspicion only costs a
// re-reduction) and moves every span Owner held to the next live reducer.
type LostMsg struct {
	Span  int
	Owner int
}

// Size is the message's size on the wire.
func (LostMsg) Size() int { return 8 }

func (LostMsg) roundMsg() {}
