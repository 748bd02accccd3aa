package dash

import (
	"slices"
	"time"
)

// Live is what a role knows at the moment beyond its events: the peers
// it is connected to on the run's gossip, the swarm's epoch as the live
// reports make it (node/progress), and the phase of its own epoch.
type Live struct {
	Peers      int    `json:"peers"`
	SwarmEpoch uint64 `json:"swarm_epoch"`
	Epoch      uint64 `json:"own_epoch"` // the epoch its state starts
	Phase      string `json:"phase,omitempty"`
}

// Status is an operator's view of one peer: GET /api/status, and what
// `dtrain status` prints.
type Status struct {
	Summary
	Live      *Live      `json:"live,omitempty"`    // nil: the role reports none
	UptimeS   float64    `json:"uptime_s"`          // of this process
	UpMbps    *float64   `json:"up_mbps,omitempty"` // its own link as last measured
	DownMbps  *float64   `json:"down_mbps,omitempty"`
	Rounds    []RoundRow `json:"last_rounds"` // newest first
	Loads     []Note     `json:"state_loads"` // newest first
	LastEvent *Note      `json:"last_event,omitempty"`
}

// statusRounds and statusLoads bound a Status's lists.
const (
	statusRounds = 5
	statusLoads  = 5
)

// SetLive makes f the source of Status's live part; f is called without
// the board's lock held, at every Status.
func (b *Board) SetLive(f func() Live) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.live = f
}

// Status returns the peer's status now.
func (b *Board) Status() Status {
	s := Status{Summary: b.Summary()}
	b.mu.Lock()
	live := b.live
	now := b.now()
	s.UpMbps, s.DownMbps = b.up, b.down
	b.mu.Unlock()
	if live != nil {
		l := live()
		s.Live = &l
	}
	s.UptimeS = now.Sub(b.created).Round(time.Second).Seconds()
	rounds := b.Rounds()
	s.Rounds = rounds[:min(len(rounds), statusRounds)]
	notes := b.Notes()
	if len(notes) > 0 {
		last := notes[0] // a copy: DeleteFunc below overwrites notes
		s.LastEvent = &last
	}
	s.Loads = slices.DeleteFunc(notes, func(n Note) bool { return n.Kind != "load" })
	s.Loads = s.Loads[:min(len(s.Loads), statusLoads)]
	return s
}
