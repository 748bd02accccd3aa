package epoch

import (
	"fmt"

	"github.com/dtrain-dev/dtrain/node/matchmaking"
	"github.com/dtrain-dev/dtrain/node/progress"
)

// Kind says what an Action asks the caller to do.
type Kind int

// The actions. Those that start work (Train, Average, Apply, ApplyAlone,
// Load) are answered by the matching Machine method once the work is done.
const (
	// Publish: gossip Report on the run's topic.
	Publish Kind = iota + 1
	// PublishMatch: send Match, to Match.To or, when empty, on the topic.
	PublishMatch
	// Train: do the local work of Epoch from the current state; answer
	// with Trained.
	Train
	// Average: run the all-reduce round of Group (Stage 1 within a group,
	// 2 among the groups' delegates) with Weight; answer with Averaged.
	Average
	// Apply: apply the mean of the Stage round just ended as Epoch's
	// update; answer with Advanced.
	Apply
	// ApplyAlone: apply this peer's own update (no other peer is live);
	// answer with Advanced.
	ApplyAlone
	// Restore: drop the epoch's update and go back to the state the epoch
	// started from. Nothing to answer.
	Restore
	// Load: fetch the state (Epoch, Hash) from Donors and make it this
	// peer's; answer with Loaded.
	Load
)

var kindNames = [...]string{"", "publish", "publish-match", "train", "average", "apply", "apply-alone", "restore", "load"}

func (k Kind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Action is one thing for the caller to do; Kind says which fields count.
type Action struct {
	Kind   Kind
	Epoch  uint64
	Report progress.Report // Publish
	Match  Match           // PublishMatch
	// Average: the group, this peer's weight and the round's stage.
	Group  matchmaking.Group
	Weight float64
	Stage  int
	// Apply: how many contributors the mean is over.
	Contributors int
	// Load: the state to fetch and who offers it, sorted.
	Hash   [32]byte
	Donors []string
	// Restore, ApplyAlone: why the epoch was not averaged.
	Reason string
}

// Match is a matchmaking message on the run's gossip. Key names the
// matchmaking it belongs to (run, stage and the state the senders start
// from; Ready.Run and View.Run carry it too), Ready repeats the sender's
// own announcement, since gossip may deliver a view before it. The
// messages of one matchmaking share their Ready and the matchmaker's
// slices: a Match is read, never written, by whoever it reaches.
type Match struct {
	To    string
	Key   string
	Epoch uint64
	Ready *matchmaking.Ready
	Msg   matchmaking.Msg
}
