package miner

import (
	"encoding/hex"
	"time"
)

// Event is one typed fact a miner reports to Options.Events, besides its
// log: StartEvent, EpochEvent, RoundEvent, LoadEvent, ProbeEvent,
// AnnounceEvent, ErrorEvent and StopEvent. Programs that watch a miner
// (dtrain's metrics.jsonl and Prometheus, dtrain swarm) read these, never
// the log's text.
type Event interface {
	// Kind names the event: "start", "epoch", "round", "load", "probe",
	// "announce", "error" or "stop".
	Kind() string
	// Fields are the event's facts by name, as a JSONL line holds them:
	// durations in seconds (names ending in _s), hashes in hex, an empty
	// error or reason left out.
	Fields() map[string]any
}

// StartEvent: the miner joined the run's gossip and starts the epoch
// protocol from its current state.
type StartEvent struct {
	Peer    string
	Mode    string
	Params  int64  // parameters of the model
	Epoch   uint64 // the epoch it starts at
	Step    int
	Resumed bool // from its checkpoint in out_dir
	Peers   int  // peers on the run's gossip
}

// RoundEvent is one all-reduce round the miner took part in.
type RoundEvent struct {
	Epoch         uint64
	Stage         int // 1: within the group; 2: among the groups' delegates
	Members       int
	Contributors  int // members whose vectors the mean holds; 0 when the round failed
	Took          time.Duration
	BytesSent     int64 // frame bytes written on the round's streams
	BytesReceived int64 // frame bytes read from them
	// Checked and Unchecked are the spans whose owners this miner checked
	// after the round (swarm.check_owners), and those it could not;
	// CheckTook is how long the checks took.
	Checked, Unchecked int
	CheckTook          time.Duration
	Err                string
}

// LoadEvent is one state load, from peers or from the hub: the miner's
// state went from epoch FromEpoch to Epoch, or (Err) stayed.
type LoadEvent struct {
	Epoch       uint64
	FromEpoch   uint64
	Source      string // "peers" or "hub"
	Bytes       int64
	Took        time.Duration
	Donors      int     // peers that served chunks (asked, when the load failed)
	BytesPerSec float64 // Bytes over Took: the miner's download goodput from its donors
	ParamHash   string  // the loaded state's hash, as EpochEvent.ParamHash
	Err         string
}

// ProbeEvent is a probe of the miner's link: a timed upload and download
// of Bytes with each of Peers peers, the fastest of each direction.
type ProbeEvent struct {
	Peers    int
	Bytes    int64
	UpMbps   float64
	DownMbps float64
}

// AnnounceEvent: the role or the link rates the miner announces with its
// Ready changed (rates by 10% or more); the rates are its estimate from
// probes and past rounds (node/links), 0 when it has none.
type AnnounceEvent struct {
	Role     string // "full" or "client"
	Setting  string // swarm.role: full, client or auto
	UpMbps   float64
	DownMbps float64
}

// ErrorEvent is a failure the miner carries on after (a failed round or
// load is its RoundEvent or LoadEvent instead).
type ErrorEvent struct {
	Epoch uint64
	Op    string // what failed, e.g. "hub publish"
	Err   string
}

// StopEvent: Run returned.
type StopEvent struct {
	Epoch  uint64
	Step   int
	Reason string // "max_epochs", "max_minutes", "stopped" (its context ended) or "error"
	Err    string
}

func (StartEvent) Kind() string    { return "start" }
func (EpochEvent) Kind() string    { return "epoch" }
func (RoundEvent) Kind() string    { return "round" }
func (LoadEvent) Kind() string     { return "load" }
func (ProbeEvent) Kind() string    { return "probe" }
func (AnnounceEvent) Kind() string { return "announce" }
func (ErrorEvent) Kind() string    { return "error" }
func (StopEvent) Kind() string     { return "stop" }

func (e StartEvent) Fields() map[string]any {
	return map[string]any{"peer": e.Peer, "mode": e.Mode, "params": e.Params, "epoch": e.Epoch, "step": e.Step,
		"resumed": e.Resumed, "peers": e.Peers}
}

func (e EpochEvent) Fields() map[string]any {
	f := map[string]any{"epoch": e.Epoch, "mode": e.Mode, "loss": e.Loss, "samples": e.Samples, "tokens": e.Tokens,
		"tokens_per_s": e.TokensPerSec, "group": e.Group, "contributors": e.Contributors, "dropped": e.Dropped,
		"sync_s": e.SyncTime.Seconds(), "allreduce_s": e.RoundTime.Seconds(), "span": e.Span, "up_mbps": e.UpMbps,
		"down_mbps": e.DownMbps, "train_s": e.TrainTime.Seconds(), "bytes_sent": e.BytesSent,
		"bytes_received": e.BytesReceived, "param_hash": e.ParamHash, "start_hash": e.StartHash, "data_hash": e.DataHash,
		"peer": e.Peer, "peers": e.Peers}
	if e.ValLoss != 0 {
		f["val_loss"] = e.ValLoss
	}
	if e.Alone != "" {
		f["alone"] = e.Alone
	}
	if e.Role != "" {
		f["role"] = e.Role
	}
	return f
}

func (e RoundEvent) Fields() map[string]any {
	return withErr(map[string]any{"epoch": e.Epoch, "stage": e.Stage, "members": e.Members, "contributors": e.Contributors,
		"took_s": e.Took.Seconds(), "bytes_sent": e.BytesSent, "bytes_received": e.BytesReceived,
		"checked": e.Checked, "unchecked": e.Unchecked, "check_s": e.CheckTook.Seconds()}, e.Err)
}

func (e LoadEvent) Fields() map[string]any {
	f := map[string]any{"epoch": e.Epoch, "from_epoch": e.FromEpoch, "source": e.Source, "bytes": e.Bytes,
		"took_s": e.Took.Seconds(), "donors": e.Donors, "bytes_per_s": e.BytesPerSec}
	if e.ParamHash != "" {
		f["param_hash"] = e.ParamHash
	}
	return withErr(f, e.Err)
}

func (e ProbeEvent) Fields() map[string]any {
	return map[string]any{"peers": e.Peers, "bytes": e.Bytes, "up_mbps": e.UpMbps, "down_mbps": e.DownMbps}
}

func (e AnnounceEvent) Fields() map[string]any {
	return map[string]any{"role": e.Role, "setting": e.Setting, "up_mbps": e.UpMbps, "down_mbps": e.DownMbps}
}

func (e ErrorEvent) Fields() map[string]any {
	return map[string]any{"epoch": e.Epoch, "op": e.Op, "error": e.Err}
}

func (e StopEvent) Fields() map[string]any {
	return withErr(map[string]any{"epoch": e.Epoch, "step": e.Step, "reason": e.Reason}, e.Err)
}

func withErr(f map[string]any, err string) map[string]any {
	if err != "" {
		f["error"] = err
	}
	return f
}

// event hands ev to Options.Events, one call at a time (hub uploads report
// from their own goroutine).
func (m *Miner) event(ev Event) {
	if m.opts.Events == nil {
		return
	}
	m.eventMu.Lock()
	defer m.eventMu.Unlock()
	m.opts.Events(ev)
}

// errText is err's message, "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// shortHash is a state hash as events and logs show it: its first 8 bytes
// in hex.
func shortHash(h [32]byte) string { return hex.EncodeToString(h[:8]) }
