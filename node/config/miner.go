package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/dtrain-dev/dtrain/node/allreduce"
)

// Miner is a miner's configuration: a training config (the model, the
// data, the inner optimizer and loop, metrics) plus how it joins the
// network and trains with the swarm. In a miner, train.max_steps is the
// length of the learning-rate schedule only: a miner mines until stopped,
// swarm.max_epochs or train.max_minutes. A miner does not
// read train.checkpoint_every, keep_checkpoints, eval_every or log_every:
// LoadMiner rejects them by name, and its template leaves them out (they
// keep the trainer's defaults here, which Validate accepts).
type Miner struct {
	Train
	Net   Net   `toml:"net"`
	Swarm Swarm `toml:"swarm"`
	Hub   Hub   `toml:"hub"`
}

// Hub is the run's public record on the HuggingFace Hub.
type Hub struct {
	Repo        string `toml:"repo" doc:"HF model repo (org/name) the run is published to, and loaded from when no peer offers the swarm's state; empty = none"`
	Endpoint    string `toml:"endpoint" doc:"Hub URL; empty = $HF_ENDPOINT, else https://huggingface.co; the token ($HF_TOKEN) goes to it only if it is the default Hub or $HF_ENDPOINT names it too"`
	UploadEvery int    `toml:"upload_every" doc:"publish the model and state every this many epochs as a commit tagged <run_id>.<epoch> (token from HF_TOKEN); 0 = never"`
}

// Net is the miner's network.
type Net struct {
	Listen    []string `toml:"listen" doc:"multiaddrs to listen on; QUIC first, TCP as fallback"`
	Announce  []string `toml:"announce" doc:"addresses to announce instead of the listen ones (e.g. a public IP behind port forwarding); empty = automatic"`
	Bootstrap []string `toml:"bootstrap" doc:"full multiaddrs (with /p2p/<id>) of bootstrap peers; empty = start a run alone (others bootstrap from this miner)"`
	KeyFile   string   `toml:"key_file" doc:"identity key, created (mode 0600) on first start; relative to out_dir unless absolute"`
	NAT       bool     `toml:"nat" doc:"AutoNAT, UPnP, hole punching and relays, for a miner behind NAT on the internet"`
	// UploadLimit caps the all-reduce's upload (UploadBits).
	UploadLimit string `toml:"upload_limit" doc:"cap on what the all-reduce sends, such as 185Mbit (k, M, G: powers of 1000; the round's frames, before QUIC, UDP and IP headers, about 5% more); empty = none. Set it to about 93% of the uplink's rate: a full uplink queue delays this peer's acknowledgements, which slows what it receives (bench allreduce over 200 Mbit/s links: 0.73-0.84 of the bound without, 0.90-0.92 with 186-188 Mbit/s)"`
}

// Swarm says how the miner trains with the others.
type Swarm struct {
	Mode            string   `toml:"mode" doc:"diloco: inner_steps local AdamW steps, then average the pseudo-gradient and take an outer Nesterov step; gradients: accumulate gradients until the swarm has target_batch_size samples, average them weighted by samples, every peer takes the same AdamW step"`
	InnerSteps      int      `toml:"inner_steps" doc:"diloco: local optimizer steps per epoch"`
	TargetBatchSize int      `toml:"target_batch_size" doc:"gradients: the swarm's samples (sequences) per optimizer step; each miner accumulates micro-batches (at least one) until its own samples and those the others at its epoch report reach it"`
	OuterLR         float64  `toml:"outer_lr" doc:"diloco: outer Nesterov SGD learning rate"`
	OuterMomentum   float64  `toml:"outer_momentum" doc:"diloco: outer Nesterov momentum, in [0, 1)"`
	MinGroup        int      `toml:"min_group" doc:"smallest all-reduce group; with fewer peers ready the epoch is not averaged: a miner drops its update and stays at the epoch (it applies its own only when it has heard no other miner for a report expiry)"`
	MaxGroup        int      `toml:"max_group" doc:"largest all-reduce group; larger swarms split into groups that change every epoch"`
	MatchSeconds    float64  `toml:"match_seconds" doc:"how long a miner waits for others to be ready for an epoch before forming groups with those that are"`
	RoundSeconds    float64  `toml:"round_seconds" doc:"all-reduce round deadline; peers that have not delivered by then are left out"`
	Compress        string   `toml:"compress" doc:"wire codec of the all-reduce: none, fp16, bf16 or int8"`
	Aggregation     string   `toml:"aggregation" doc:"how a span's owner combines the members' values: mean (the exact mean weighted by samples), trimmed_mean (per coordinate, a fifth of the weight cut from each end) or centered_clip (centered clipping from the coordinate-wise median, 3 steps); the robust rules count no member for more than twice the median weight; every miner and validator of a run uses the same"`
	CheckOwners     bool     `toml:"check_owners" doc:"after each round, recompute one sampled range of every span from the contributors' committed values (fetched with proofs) and compare it bit for bit with what the span's owner sent; an owner whose part differs is a liar: the miner drops the epoch's mean and leaves that peer out of its groups for 16 epochs"`
	EvalEvery       int      `toml:"eval_every" doc:"evaluate held-out loss every this many epochs; 0 = never"`
	SaveModelEvery  int      `toml:"save_model_every" doc:"keep the swarm's model as an HF checkpoint (config.json, model.safetensors) in out_dir/checkpoints/step_N every this many epochs, the newest two kept, so that dtrain generate and eval --checkpoint OUT_DIR read it; 0 = never"`
	MaxEpochs       uint64   `toml:"max_epochs" doc:"stop once the run reaches this epoch (its state saved); 0 = mine until stopped (Ctrl-C, SIGTERM) or train.max_minutes; train.max_steps is only the length of the learning-rate schedule, which stays at min_lr after it"`
	StateFromPeers  bool     `toml:"state_from_peers" doc:"accepted for older files and ignored: a miner loads the swarm's state from peers whenever the epoch protocol's rules say so (node/epoch)"`
	Role            string   `toml:"role" doc:"what the miner does in the all-reduce: full (contributes and reduces a span), client (contributes, reduces nothing: for a miner that cannot accept inbound connections), or auto: client while AutoNAT finds the miner unreachable from outside (needs net.nat), full otherwise"`
	Validators      []string `toml:"validators" doc:"peer ids the run trusts as validators: the only peers that may join all-reduce groups as aux members (an aux member reduces the others' values) and fetch this miner's committed contributions for audits; every miner and validator of a run lists the same ones; empty = no validator"`
	Members         []string `toml:"members" doc:"who may take part: empty = anyone (an open run); else an allowlist of peer ids, and a miner or validator of the run takes connections from these, the run's validators and its bootstrap peers only (both ways), so a stranger reaches nothing of it; every miner and validator of the run lists the same"`
	Owner           string   `toml:"owner" doc:"the peer id of the run's owner, whose key signs its rosters (dtrain roster sign): empty = no roster; else the run admits the members of the newest roster signed by this key that a peer has seen (and the owner, the validators and its bootstrap peers), and peers spread new versions by gossip; not with swarm.members"`
	RosterFile      string   `toml:"roster_file" doc:"with swarm.owner: the signed roster file (relative to out_dir): read at start (a file that is not a roster of the run signed by the owner is an error; none = admit the owner, validators and bootstrap peers until a roster arrives), re-read every 5 s so an operator can hand a new version to one peer, and replaced by every newer version gossiped"`
	MeasureLinks    bool     `toml:"measure_links" doc:"measure this miner's upload and download rates (probes to up to 3 peers at start and every 10 epochs, and the bytes and times of its rounds) and announce them, so that its span is sized by its link; false announces none, and a group where no reducer announces a rate splits the vector equally"`
}

// The default ports: a peer's address, which others bootstrap from, stays
// the same across its restarts. `dtrain bootstrap` listens on 4001.
const (
	MinerPort     = 4002
	ValidatorPort = 4003
)

// ListenOn is the default listen addresses on port: QUIC, then TCP, on
// every IPv4 interface.
func ListenOn(port int) []string {
	return []string{fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", port), fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", port)}
}

// DefaultMiner is a tiny GPT-2 that a few miners on one CPU train together
// in minutes: the swarm demo's model.
func DefaultMiner() Miner {
	t := DefaultTrain()
	t.RunID, t.OutDir = "swarm", "runs/miner"
	t.Model = Model{NLayer: 2, NHead: 2, NEmbd: 128, NPositions: 128, VocabSize: 50257}
	t.Data.SeqLen = 64
	t.Optim.LR, t.Optim.MinLR, t.Optim.WarmupSteps = 3e-3, 3e-4, 10
	t.Loop = Loop{MaxSteps: 400, BatchTokens: 1024, MicroBatch: 16, EvalTokens: 8192, KeepCheckpoints: 2, LogEvery: 10}
	return Miner{
		Train: t,
		Net: Net{Listen: ListenOn(MinerPort), Announce: []string{}, Bootstrap: []string{},
			KeyFile: "identity.key"},
		Swarm: Swarm{
			Mode: "diloco", InnerSteps: 10, TargetBatchSize: 64, OuterLR: 0.7, OuterMomentum: 0.9,
			MinGroup: 2, MaxGroup: 16, MatchSeconds: 20, RoundSeconds: 60, Compress: "none", Aggregation: "mean",
			CheckOwners: true, EvalEvery: 1, SaveModelEvery: 1, StateFromPeers: true, Role: "auto", MeasureLinks: true, Validators: []string{}, Members: []string{},
			RosterFile: "roster.bin",
		},
	}
}

// Validate reports every impossible value in m, like Train.Validate.
func (m Miner) Validate() error {
	var c check
	for _, e := range fieldErrors(m.Train.Validate()) {
		c.errs = append(c.errs, e)
	}
	s := m.Swarm
	switch s.Mode {
	case "diloco":
		c.atLeast("swarm.inner_steps", s.InnerSteps, 1)
	case "gradients":
		c.atLeast("swarm.target_batch_size", s.TargetBatchSize, 1)
	default:
		c.fail("swarm.mode", "must be diloco or gradients", s.Mode)
	}
	if c.finite("swarm.outer_lr", s.OuterLR) && s.OuterLR <= 0 {
		c.fail("swarm.outer_lr", "must be > 0", s.OuterLR)
	}
	if c.finite("swarm.outer_momentum", s.OuterMomentum) && (s.OuterMomentum < 0 || s.OuterMomentum >= 1) {
		c.fail("swarm.outer_momentum", "must be in [0, 1)", s.OuterMomentum)
	}
	if c.atLeast("swarm.min_group", s.MinGroup, 1) && s.MaxGroup < s.MinGroup {
		c.fail("swarm.max_group", fmt.Sprintf("must be at least min_group (%d)", s.MinGroup), s.MaxGroup)
	}
	if c.finite("swarm.match_seconds", s.MatchSeconds) && s.MatchSeconds <= 0 {
		c.fail("swarm.match_seconds", "must be > 0", s.MatchSeconds)
	}
	if c.finite("swarm.round_seconds", s.RoundSeconds) && s.RoundSeconds <= 0 {
		c.fail("swarm.round_seconds", "must be > 0", s.RoundSeconds)
	}
	if _, err := allreduce.ParseCodec(s.Compress); err != nil {
		c.fail("swarm.compress", "must be none, fp16, bf16 or int8", s.Compress)
	}
	checkAggregation(&c, "swarm.aggregation", s.Aggregation)
	c.atLeast("swarm.eval_every", s.EvalEvery, 0)
	c.atLeast("swarm.save_model_every", s.SaveModelEvery, 0)
	switch s.Role {
	case "auto", "full", "client":
	default:
		c.fail("swarm.role", "must be auto, full or client", s.Role)
	}
	checkValidators(&c, "swarm.validators", s.Validators)
	checkValidators(&c, "swarm.members", s.Members)
	checkOwner(&c, s.Owner, s.RosterFile, s.Members)
	c.atLeast("hub.upload_every", m.Hub.UploadEvery, 0)
	if r := m.Hub.Repo; r != "" && strings.Count(r, "/") != 1 {
		c.fail("hub.repo", "must be org/name", r)
	}
	if m.Hub.UploadEvery > 0 && m.Hub.Repo == "" {
		c.fail("hub.upload_every", "needs hub.repo", m.Hub.UploadEvery)
	}
	if len(m.Net.Listen) == 0 {
		c.fail("net.listen", "must name at least one address", m.Net.Listen)
	}
	m.Net.validate(&c)
	return errors.Join(c.errs...)
}

// MaxEpochSamples is the most samples (sequences) a miner of this run can
// train in one epoch: diloco's inner steps of batch_tokens each, or in
// gradients mode the target batch and the micro-batch that may cross it.
// A miner announcing more is refused by the others' matchmaking.
func (m Miner) MaxEpochSamples() int64 {
	if m.Swarm.Mode == "gradients" {
		return int64(m.Swarm.TargetBatchSize) + int64(m.Loop.MicroBatch)
	}
	return int64(m.Swarm.InnerSteps) * int64(m.AccumSteps()) * int64(m.Loop.MicroBatch)
}
