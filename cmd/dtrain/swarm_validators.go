package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/urfave/cli/v2"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/node/config"
	"github.com/dtrain-dev/dtrain/node/miner"
)

// validatorEvents is the file in a validator's out dir that the swarm
// reads its weights from (its weights.jsonl sink).
const validatorEvents = "weights.jsonl"

// parseValidatorOptions reads --validators, --cheat and --cheat-from. A
// cheat needs someone to catch it: --cheat alone brings one validator,
// and no scripted churn (a killed or late miner would blur what the
// weights show).
func parseValidatorOptions(c *cli.Context, o *swarmOptions) error {
	o.validators, o.cheat, o.cheatFrom, o.verify = c.Int("validators"), c.String("cheat"), c.Uint64("cheat-from"), c.String("verify")
	if o.verify != "auto" && o.verify != "norm" {
		return fmt.Errorf("--verify %q: want auto or norm", o.verify)
	}
	if o.validators < 0 || o.validators > 4 {
		return fmt.Errorf("--validators must be 0 to 4, got %d", o.validators)
	}
	if c.IsSet("cheat-from") && o.cheat == "" {
		return fmt.Errorf("--cheat-from is for --cheat")
	}
	if o.cheat == "" {
		return nil
	}
	if !slices.Contains(swarmCheats(), o.cheat) {
		return fmt.Errorf("--cheat %q: want one of %s", o.cheat, strings.Join(swarmCheats(), ", "))
	}
	if o.chaos {
		return fmt.Errorf("--cheat does not go with --chaos")
	}
	if !c.IsSet("validators") {
		o.validators = 1
	}
	for _, f := range []string{"late-after", "kill-after"} {
		if c.IsSet(f) {
			return fmt.Errorf("--%s does not go with --cheat, which runs without churn", f)
		}
	}
	o.churn = false
	return nil
}

// cheater is the miner that plays --cheat (the last of the first ones),
// 0 without; copySource is the one whose updates a copy cheater copies.
func (o swarmOptions) cheater() int {
	if o.cheat == "" {
		return 0
	}
	return o.miners
}

func (o swarmOptions) copySource() int {
	if o.cheat == "copy" {
		return 1
	}
	return 0
}

// validatorDir is validator v's out dir (v ≥ 1).
func (s *swarm) validatorDir(v int) string {
	return filepath.Join(s.dir, fmt.Sprintf("validator-%d", v))
}

// validatorKeys creates (or reads, in a reused work dir) each validator's
// identity, so that the miners' config can trust them before they start.
func validatorKeys(dir string, n int) ([]string, error) {
	var ids []string
	for v := 1; v <= n; v++ {
		d := filepath.Join(dir, fmt.Sprintf("validator-%d", v))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		key, err := netx.LoadOrCreateKey(filepath.Join(d, "identity.key"))
		if err != nil {
			return nil, fmt.Errorf("validator %d's key: %w", v, err)
		}
		id, err := peer.IDFromPrivateKey(key)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id.String())
	}
	return ids, nil
}

// writeValidatorConfig writes the validators' configuration: the miners'
// run, model and swarm rules, loopback, and probes small and every other
// epoch so that a demo's short epochs see every miner probed.
func writeValidatorConfig(path string, cfg config.Miner, verifyMode string) error {
	v := config.DefaultValidator()
	v.RunID, v.OutDir = cfg.RunID, "."
	v.Net.Listen, v.Net.Announce, v.Net.NAT, v.Net.Bootstrap = cfg.Net.Listen, []string{}, false, []string{}
	v.Net.KeyFile = "identity.key"
	m := cfg.Model
	v.Model = config.RunModel{NLayer: m.NLayer, NHead: m.NHead, NEmbd: m.NEmbd, NPositions: m.NPositions, VocabSize: m.VocabSize}
	v.Swarm = config.ValidatorSwarmOf(cfg.Swarm)
	v.Probe.EveryEpochs, v.Probe.Bytes, v.Probe.Seconds = 2, 256<<10, 5
	v.Weights.JSONL, v.Metrics.JSONL = validatorEvents, "metrics.jsonl"
	// node/verify's work checks read the miners' config (written beside
	// this one, the swarm's miner.toml) for their model, data and schedule.
	v.Verify.RunConfig, v.Verify.Mode = filepath.Join(filepath.Dir(path), "miner.toml"), verifyMode
	text, err := config.MarshalValidator(v)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append([]byte("# written by `dtrain swarm` for its validators\n"), text...), 0o644); err != nil {
		return err
	}
	if _, err := config.LoadValidator(path); err != nil {
		return fmt.Errorf("written validator configuration: %w", err)
	}
	return nil
}

// startValidator starts validator v (child -v, so that miners keep the
// positive numbers).
func (s *swarm) startValidator(v int) error {
	// One libtorch thread, as the miners: on a machine shared by every
	// process of the swarm, a thread pool wider than a process's share of
	// the cores waits on its descheduled threads (an audit of 12 CPU
	// seconds took 44 s of wall time with two).
	args := []string{"--log-level", "info", "--threads", "1", "validator", "--config", filepath.Join(s.dir, "validator.toml"),
		"--listen", s.listen(-v), "--bootstrap", s.boot, "--out-dir", s.validatorDir(v)}
	if v == 1 && s.dash != "" {
		args = append(args, "--http", s.dash)
	}
	if s.vtails[v] == nil {
		s.vtails[v] = newEventTail(filepath.Join(s.validatorDir(v), validatorEvents))
	}
	logPath := filepath.Join(s.dir, fmt.Sprintf("validator-%d.log", v))
	c, err := s.start(-v, 1, args, logPath)
	if err != nil {
		return err
	}
	s.rep.event(time.Now(), "process", fmt.Sprintf("validator %d up (pid %d), trusted by the miners; weights in %s",
		v, c.pid(), filepath.Join(s.validatorDir(v), validatorEvents)),
		map[string]any{"role": "validator", "validator": v, "pid": c.pid(), "log": logPath})
	return nil
}

// minerCheatArgs are the hidden `dtrain miner` flags that make miner i
// cheat, if it is the swarm's cheater or the copy cheater's source.
func (s *swarm) minerCheatArgs(i int) []string {
	o, kind := s.opts, cheatOf(s.opts, i)
	if kind == "" {
		return nil
	}
	return []string{"--cheat", kind, "--cheat-from", fmt.Sprint(o.cheatFrom), "--cheat-dir", filepath.Join(s.dir, "copy"),
		"--cheat-seed", fmt.Sprint(o.seed + uint64(i))}
}

// copyNote says, for --cheat copy, whose updates the cheater copies.
func copyNote(o swarmOptions) string {
	if o.copySource() == 0 {
		return ""
	}
	return fmt.Sprintf(" (miner %d, its sybil partner, shares its updates with it through the work dir)", o.copySource())
}

// cheatOf is the cheat miner i plays: --cheat for the cheater,
// "copysource" for the copy cheater's source, "" for the others.
func cheatOf(o swarmOptions, i int) string {
	switch i {
	case o.cheater():
		return o.cheat
	case o.copySource():
		return miner.CheatCopySource
	}
	return ""
}

// swarmCheats are what --cheat takes: the cheats a validator catches
// (miner.CheatKinds) and the lying owner, whom the other members catch.
func swarmCheats() []string { return append(slices.Clone(miner.CheatKinds), miner.CheatLyingOwner) }
