package config

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/dtrain-dev/dtrain/node/allreduce"
)

// Validator is a validator's configuration: which run it joins and how,
// the run's rules it must follow to join groups as an aux member, how it
// probes miners, how it scores them and where the weights go.
type Validator struct {
	RunID   string         `toml:"run_id" doc:"the run to validate: the miners' run_id"`
	OutDir  string         `toml:"out_dir" doc:"directory for the identity key, the weights file and metrics"`
	Net     Net            `toml:"net"`
	Model   RunModel       `toml:"model"`
	Swarm   ValidatorSwarm `toml:"swarm"`
	Probe   Probe          `toml:"probe"`
	Score   Score          `toml:"score"`
	Weights Weights        `toml:"weights"`
	Verify  Verify         `toml:"verify"`
	Metrics Metrics        `toml:"metrics"`
	Wandb   Wandb          `toml:"wandb"`
	Hub     ValidatorHub   `toml:"hub"`
}

// ValidatorHub is where a validator publishes the swarm's model.
type ValidatorHub struct {
	Repo        string `toml:"repo" doc:"HF model repo (org/name) to publish the swarm's model to (the miners' hub.repo, so they load it when no peer serves the state); empty = none"`
	Endpoint    string `toml:"endpoint" doc:"Hub URL; empty = $HF_ENDPOINT, else https://huggingface.co; the token ($HF_TOKEN) goes to it only if it is the default Hub or $HF_ENDPOINT names it too"`
	UploadEvery int    `toml:"upload_every" doc:"publish the swarm's state every this many epochs (config.json, model.safetensors, miner_state.bin and a model card) as a commit tagged <run_id>.<epoch>; needs work checks (verify.run_config), which load the states; 0 = never"`
	License     string `toml:"license" doc:"the license the model card names (an HF license id)"`
}

// RunModel is the size of the run's model: a validator that joins a round
// as aux must cut the vector into the same spans as the miners.
type RunModel struct {
	NLayer     int `toml:"n_layer" doc:"the miners' model.n_layer"`
	NHead      int `toml:"n_head" doc:"the miners' model.n_head"`
	NEmbd      int `toml:"n_embd" doc:"the miners' model.n_embd"`
	NPositions int `toml:"n_positions" doc:"the miners' model.n_positions"`
	VocabSize  int `toml:"vocab_size" doc:"the miners' model.vocab_size"`
}

// ValidatorSwarm is what a validator must share with the run's miners to
// join their all-reduce groups as an aux member.
type ValidatorSwarm struct {
	Validators   []string `toml:"validators" doc:"peer ids the run trusts as validators, the same list as the miners' swarm.validators: miners refuse an aux member that is not on it, so this validator's own id must be there"`
	MinGroup     int      `toml:"min_group" doc:"the miners' swarm.min_group"`
	MaxGroup     int      `toml:"max_group" doc:"the miners' swarm.max_group"`
	MatchSeconds float64  `toml:"match_seconds" doc:"the miners' swarm.match_seconds: the grid of matchmaking windows"`
	RoundSeconds float64  `toml:"round_seconds" doc:"the miners' swarm.round_seconds: the all-reduce round deadline"`
	Compress     string   `toml:"compress" doc:"the miners' swarm.compress: the all-reduce's wire codec (none, fp16, bf16 or int8)"`
	Aggregation  string   `toml:"aggregation" doc:"the miners' swarm.aggregation: how the owner of a span combines the members' values (mean, trimmed_mean or centered_clip)"`
	Members      []string `toml:"members" doc:"the miners' swarm.members: empty = an open run; else the allowlist of peer ids (with the validators and bootstrap peers) this validator takes connections from"`
	Owner        string   `toml:"owner" doc:"the miners' swarm.owner: the run's owner, whose signed rosters say who is admitted; empty = no roster"`
	RosterFile   string   `toml:"roster_file" doc:"with swarm.owner: this validator's copy of the signed roster (relative to out_dir), as the miners' swarm.roster_file"`
}

// Probe is how often and how hard a validator measures miners' links.
type Probe struct {
	EveryEpochs int     `toml:"every_epochs" doc:"probe each miner once every this many epochs; 0 = never"`
	MaxMiners   int     `toml:"max_miners" doc:"miners probed per epoch at most, oldest-probed first, so that no miner is probed more often than every_epochs"`
	Bytes       int     `toml:"bytes" doc:"bytes moved each way by one bandwidth probe"`
	Seconds     float64 `toml:"seconds" doc:"deadline of one probe (ping and both directions)"`
}

// Score sets the thresholds of the scoring (node/score).
type Score struct {
	MinMbps    float64 `toml:"min_mbps" doc:"a miner's measured link at or below this many Mbit/s earns no bandwidth score"`
	TargetMbps float64 `toml:"target_mbps" doc:"at or above this many Mbit/s the bandwidth score is full"`
	GoodRTTMs  float64 `toml:"good_rtt_ms" doc:"round-trip time, in ms, at or below which the latency score is full"`
	MaxRTTMs   float64 `toml:"max_rtt_ms" doc:"round-trip time, in ms, at or above which the latency score is 0"`
	Alpha      float64 `toml:"alpha" doc:"weight of a new epoch in each miner's moving averages, in (0, 1]"`
	// ExcludeEpochs is how long a caught miner stays out of groups.
	ExcludeEpochs int `toml:"exclude_epochs" doc:"a miner caught cheating in epoch e is excluded from the all-reduce groups of epochs e+2 to e+2+this·2^(strikes−1) (node/verdicts: the validator gossips the list, miners refuse the miner's announcements and stop expecting it), then averages and is audited again; 0 = never exclude"`
}

// Verify is how a validator checks the work behind the updates it audits.
type Verify struct {
	Mode        string  `toml:"mode" doc:"auto: node/verify's checks of diloco work (AdamW's step bound, replays, copies, stale updates, the lane test on the miners' recomputed batches) whenever run_config is set, the run is in diloco mode and the epoch's state is loaded from the miners; the norm checks otherwise. norm: only the norm checks (non-finite, zero, copied, or far larger per sample than the others), which need no model, data or state"`
	RunConfig   string  `toml:"run_config" doc:"the run's miner config (the TOML file the miners run with): the validator takes the model, the data (data.train must be readable here), seed, optimizer, schedule and swarm.inner_steps from it to recompute each miner's batches and bound its steps; relative to the working directory; empty = the norm checks only"`
	EveryEpochs int     `toml:"every_epochs" doc:"run node/verify's checks in every this many epochs (those whose number is a multiple), the norm checks in the others: its lane test costs about 4 one-window forward passes per window of verify.windows per audited miner (fewer when a miner holds fewer windows), about 0.3 of a demo miner's training at the default 32 (an epoch of 10 steps of 16 windows; 0.1 at 30 steps, which dtrain swarm --validators runs) but 0.1% of a 500-step epoch of 64 windows a step (node/verify, Cost), so a validator of a run with short epochs checks every few"`
	Windows     int     `toml:"windows" doc:"the lane test's sample: of each audited miner's windows this many are evaluated (3/8 from the first half of its claimed samples, 5/8 from the second, at most all of them), against as many windows of a lane only the validator knows; an audit costs about 4 one-window forward passes per window. An honest miner's lane statistics grow as the square root of this, a cheater's do not: the audit lines log them (lane_*) and the medians the test compares its thresholds with (power_*); where a median sits near its threshold the lane test catches no one by it, and the run should raise this (at least 6). On a tiny run (three miners of 60 steps of 4 windows, a 1-layer model 16 wide) the lowest honest 3-audit means were All 1.58 and Tail 1.79 at 32, at the thresholds of 1.5 and 2 (the power rule then catches no one by them), and 2.76 and 3.19 at 96; with dtrain swarm's demo model (6.85M parameters) honest statistics are 6 to 12 at 32"`
	PowerZ      float64 `toml:"power_z" doc:"how far, in noise widths of the statistic compared (1 for one audit's, 1/sqrt(3) for a 3-audit mean), the honest miners' median must clear a threshold of the lane test before that threshold calls anyone a cheat (node/verify's PowerZ): at the margin an honest miner falls under a one-audit threshold with probability about P(Z < -power_z) per audit (2.3% at 2, 0.13% at 3); higher calls fewer honest miners cheats in weak runs and lets a cheater through in more of them"`
	Device      string  `toml:"device" doc:"where the validator's model runs its forward passes: cpu, cuda or cuda:N"`
}

// Weights says where a validator writes the weights it sets every epoch.
type Weights struct {
	JSONL   string `toml:"jsonl" doc:"JSONL file of every epoch's weights, relative to out_dir unless absolute; empty = none"`
	HTTPURL string `toml:"http_url" doc:"POST every epoch's weights as JSON to this URL; empty = none"`
}

const validatorHeader = `dtrain validator configuration.

Every key is listed with its default value; change what you need and delete
the rest (a missing key keeps its default). Validate with

    dtrain validator --config validator.toml

and check a file without starting with

    dtrain config check --role validator --config validator.toml

[model] and [swarm] must match the miners' config, and this validator's
peer id (logged at start) must be in swarm.validators of every miner.
`

// validatorSectionDocs describe the tables of the validator config.
var validatorSectionDocs = map[string]string{
	"model":   "The run's model, as the miners' [model] sizes: the validator cuts the all-reduce's vector the way they do.",
	"net":     "The validator's network: where it listens, whom it asks first, its identity.",
	"swarm":   "The run's rules the validator follows to join the miners' groups as an aux member: the same values as the miners' [swarm].",
	"probe":   "Probes of the miners' links (RTT, upload and download), on a schedule bounded per miner.",
	"score":   "Thresholds of the scores that become weights.",
	"weights": "Where the weights of every epoch go.",
	"verify":  "How the updates the validator fetches from miners are checked for the work behind them.",
	"metrics": "Where the validator's metrics go besides the log.",
	"hub":     "Publishing the swarm's model to the HuggingFace Hub, with a model card.",
	"wandb":   "Weights & Biases logging: one W&B run per dtrain run and validator, a history row per epoch (on when $WANDB_API_KEY is set).",
}

// ValidatorSwarmOf is what a validator takes from the miners' swarm
// section: the rules of their groups and rounds.
func ValidatorSwarmOf(s Swarm) ValidatorSwarm {
	vs, ms := slices.Clone(s.Validators), slices.Clone(s.Members)
	if vs == nil {
		vs = []string{}
	}
	if ms == nil {
		ms = []string{}
	}
	return ValidatorSwarm{Validators: vs, MinGroup: s.MinGroup, MaxGroup: s.MaxGroup,
		MatchSeconds: s.MatchSeconds, RoundSeconds: s.RoundSeconds, Compress: s.Compress, Aggregation: s.Aggregation,
		Members: ms, Owner: s.Owner, RosterFile: s.RosterFile}
}

// DefaultValidator follows the swarm demo's run (DefaultMiner).
func DefaultValidator() Validator {
	m := DefaultMiner()
	return Validator{
		RunID: m.RunID, OutDir: "runs/validator",
		Net: Net{Listen: ListenOn(ValidatorPort), Announce: []string{}, Bootstrap: []string{}, KeyFile: m.Net.KeyFile},
		Model: RunModel{NLayer: m.Model.NLayer, NHead: m.Model.NHead, NEmbd: m.Model.NEmbd,
			NPositions: m.Model.NPositions, VocabSize: m.Model.VocabSize},
		Swarm:   ValidatorSwarmOf(m.Swarm),
		Probe:   Probe{EveryEpochs: 5, MaxMiners: 4, Bytes: 1 << 20, Seconds: 10},
		Score:   Score{MinMbps: 10, TargetMbps: 200, GoodRTTMs: 20, MaxRTTMs: 500, Alpha: 0.3, ExcludeEpochs: 5},
		Weights: Weights{JSONL: "weights.jsonl"},
		Verify:  Verify{Mode: "auto", EveryEpochs: 1, Windows: 32, PowerZ: 2, Device: "cpu"},
		Metrics: Metrics{JSONL: "metrics.jsonl"},
		Wandb:   Wandb{Project: "dtrain"},
		Hub:     ValidatorHub{License: "other"},
	}
}

// LoadValidator reads a validator config the way LoadTrain reads a train
// config.
func LoadValidator(path string) (Validator, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Validator{}, fmt.Errorf("load validator config: %w", err)
	}
	return decode(path, string(data), DefaultValidator(), validatorSchema, Validator.Validate)
}

// Validate reports every impossible value in v, like Train.Validate.
func (v Validator) Validate() error {
	var c check
	c.runID("run_id", v.RunID)
	v.Metrics.validate(&c)
	c.atLeast("hub.upload_every", v.Hub.UploadEvery, 0)
	if r := v.Hub.Repo; r != "" && strings.Count(r, "/") != 1 {
		c.fail("hub.repo", "must be org/name", r)
	}
	if v.Hub.UploadEvery > 0 && v.Hub.Repo == "" {
		c.fail("hub.upload_every", "needs hub.repo", v.Hub.UploadEvery)
	}
	v.Wandb.validate(&c)
	if v.OutDir == "" {
		c.fail("out_dir", "must not be empty", v.OutDir)
	}
	md := v.Model
	c.atLeast("model.n_layer", md.NLayer, 1)
	c.atLeast("model.n_positions", md.NPositions, 1)
	c.atLeast("model.vocab_size", md.VocabSize, 1)
	if c.atLeast("model.n_head", md.NHead, 1) && c.atLeast("model.n_embd", md.NEmbd, 1) && md.NEmbd%md.NHead != 0 {
		c.fail("model.n_embd", fmt.Sprintf("must be a multiple of n_head (%d)", md.NHead), md.NEmbd)
	}
	s := v.Swarm
	checkValidators(&c, "swarm.validators", s.Validators)
	checkValidators(&c, "swarm.members", s.Members)
	checkOwner(&c, s.Owner, s.RosterFile, s.Members)
	if c.atLeast("swarm.min_group", s.MinGroup, 1) && s.MaxGroup < s.MinGroup {
		c.fail("swarm.max_group", fmt.Sprintf("must be at least min_group (%d)", s.MinGroup), s.MaxGroup)
	}
	positiveFloat(&c, "swarm.match_seconds", s.MatchSeconds)
	positiveFloat(&c, "swarm.round_seconds", s.RoundSeconds)
	if _, err := allreduce.ParseCodec(s.Compress); err != nil {
		c.fail("swarm.compress", "must be none, fp16, bf16 or int8", s.Compress)
	}
	checkAggregation(&c, "swarm.aggregation", s.Aggregation)
	p := v.Probe
	c.atLeast("probe.every_epochs", p.EveryEpochs, 0)
	c.atLeast("probe.max_miners", p.MaxMiners, 1)
	c.atLeast("probe.bytes", p.Bytes, 1)
	positiveFloat(&c, "probe.seconds", p.Seconds)
	sc := v.Score
	if nonNegativeFloat(&c, "score.min_mbps", sc.MinMbps) && positiveFloat(&c, "score.target_mbps", sc.TargetMbps) && sc.TargetMbps <= sc.MinMbps {
		c.fail("score.target_mbps", fmt.Sprintf("must exceed min_mbps (%g)", sc.MinMbps), sc.TargetMbps)
	}
	if positiveFloat(&c, "score.good_rtt_ms", sc.GoodRTTMs) && positiveFloat(&c, "score.max_rtt_ms", sc.MaxRTTMs) && sc.MaxRTTMs <= sc.GoodRTTMs {
		c.fail("score.max_rtt_ms", fmt.Sprintf("must exceed good_rtt_ms (%g)", sc.GoodRTTMs), sc.MaxRTTMs)
	}
	c.atLeast("score.exclude_epochs", sc.ExcludeEpochs, 0)
	if positiveFloat(&c, "score.alpha", sc.Alpha) && sc.Alpha > 1 {
		c.fail("score.alpha", "must be in (0, 1]", sc.Alpha)
	}
	if u := v.Weights.HTTPURL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		c.fail("weights.http_url", "must be an http:// or https:// URL", u)
	}
	switch v.Verify.Mode {
	case "auto", "norm":
	default:
		c.fail("verify.mode", "must be auto or norm", v.Verify.Mode)
	}
	c.atLeast("verify.every_epochs", v.Verify.EveryEpochs, 1)
	c.atLeast("verify.windows", v.Verify.Windows, 6) // node/verify's MinWindows: two in each half
	if c.finite("verify.power_z", v.Verify.PowerZ) && v.Verify.PowerZ <= 0 {
		c.fail("verify.power_z", "must be > 0", v.Verify.PowerZ)
	}
	if !validDevice(v.Verify.Device) {
		c.fail("verify.device", "must be cpu, cuda or cuda:N", v.Verify.Device)
	}
	if len(v.Net.Listen) == 0 {
		c.fail("net.listen", "must name at least one address", v.Net.Listen)
	}
	v.Net.validate(&c)
	return errors.Join(c.errs...)
}

// positiveFloat checks that v is finite and > 0.
func positiveFloat(c *check, key string, v float64) bool {
	if !c.finite(key, v) {
		return false
	}
	if v <= 0 {
		c.fail(key, "must be > 0", v)
		return false
	}
	return true
}

// nonNegativeFloat checks that v is finite and >= 0.
func nonNegativeFloat(c *check, key string, v float64) bool {
	if !c.finite(key, v) {
		return false
	}
	if v < 0 {
		c.fail(key, "must be >= 0", v)
		return false
	}
	return true
}

// checkAggregation checks an all-reduce aggregation rule's name.
func checkAggregation(c *check, key, name string) {
	if _, err := allreduce.ParseAggregation(name); err != nil {
		c.fail(key, "must be one of "+strings.Join(allreduce.Aggregations, ", "), name)
	}
}
